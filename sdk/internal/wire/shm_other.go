//go:build !linux

package wire

import (
	"errors"
	"fmt"
)

// NewSharedMemory creates shared memory for one plugin process. Only Linux
// supports it; here it returns an error that wraps errors.ErrUnsupported,
// and hosts use the inline path.
func NewSharedMemory(size int) (*SharedMemory, error) {
	return nil, fmt.Errorf("sdk: shared memory: %w on this operating system", errors.ErrUnsupported)
}

// MapSharedMemoryFromEnv maps nothing: plugins use the inline path.
func MapSharedMemoryFromEnv() (*Peer, error) { return nil, nil }
