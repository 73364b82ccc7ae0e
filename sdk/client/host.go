package client

import (
	"fmt"
	"os/exec"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// ProtocolVersion is the version of the plugin wire protocol this host
// speaks; go-plugin's handshake negotiates it.
const ProtocolVersion = wire.ProtocolVersion

// Message size limits. Both sides accept messages of up to
// MaxMessageBytes; a [Client] splits batches so that no request nor
// expected response exceeds ChunkBytes.
const (
	MaxMessageBytes = wire.MaxMessageBytes
	ChunkBytes      = wire.ChunkBytes
)

// DialOptions are the gRPC dial options a host uses for a plugin
// connection: explicit message limits, the same as the plugin's. They
// override go-plugin's own (2 GiB) call limits.
func DialOptions() []grpc.DialOption { return wire.DialOptions() }

// NewClientConfig returns a go-plugin client configuration that launches cmd
// as a plugin: the shared handshake, the versioned plugin set, gRPC only and
// the dial options above. Callers add Logger, Stderr, Managed, SecureConfig
// or replace Cmd with a RunnerFunc as they need.
func NewClientConfig(cmd *exec.Cmd) *plugin.ClientConfig {
	return &plugin.ClientConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: wire.PluginSets(nil),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  DialOptions(),
	}
}

// Dispense connects a started (or startable) go-plugin client and returns the
// model client. It starts the process if needed.
func Dispense(pc *plugin.Client) (*Client, error) {
	rpc, err := pc.Client()
	if err != nil {
		return nil, err
	}
	raw, err := rpc.Dispense(wire.PluginKey)
	if err != nil {
		return nil, err
	}
	cc, ok := raw.(*grpc.ClientConn)
	if !ok {
		return nil, fmt.Errorf("sdk: dispense: got %T, want *grpc.ClientConn", raw)
	}
	return NewClient(cc), nil
}

// Shared memory: on Linux a host gives each plugin process memory that
// carries the tensor bytes of its calls (gRPC carries the rest). Make it
// with [NewSharedMemory], pass it to the process with Attach before the
// start, turn it on with [Client.UseSharedMemory] after the handshake, and
// close it when the process is gone.
type (
	// SharedMemory is the memory a host shares with one plugin process.
	// It is safe for concurrent use.
	SharedMemory = wire.SharedMemory
	// SharedMemoryStats describes the use of a [SharedMemory].
	SharedMemoryStats = wire.SharedMemoryStats
)

// SharedMemoryEnv names the environment variable that switches the
// shared-memory data plane off when set to "off" (also "0", "false", "no").
// The host reads it when it starts a plugin process; a plugin process that
// sees it refuses the memory it is offered.
const SharedMemoryEnv = wire.SharedMemoryEnv

// DefaultSharedMemoryBytes is the size of the shared memory a host creates
// per plugin process. Pages are allocated when first touched, so the size
// costs nothing until calls use it; it bounds how many bytes of concurrent
// calls can go through shared memory (the rest go inline).
const DefaultSharedMemoryBytes = wire.DefaultSharedMemoryBytes

// ErrSharedMemory reports a shared-memory reference that is malformed or
// points outside the memory or the region offered for the call.
var ErrSharedMemory = wire.ErrSharedMemory

// NewSharedMemory creates size bytes of anonymous shared memory (a sealed
// memfd) for one plugin process. Only Linux supports it; elsewhere it
// returns an error that wraps errors.ErrUnsupported and hosts use the inline
// path.
func NewSharedMemory(size int) (*SharedMemory, error) { return wire.NewSharedMemory(size) }

// SharedMemoryEnabled reports whether the environment allows the
// shared-memory data plane (see [SharedMemoryEnv]).
func SharedMemoryEnabled() bool { return wire.SharedMemoryEnabled() }
