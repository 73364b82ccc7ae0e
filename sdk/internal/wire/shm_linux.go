package wire

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// NewSharedMemory creates size bytes of anonymous shared memory (a sealed
// memfd) for one plugin process. Only Linux supports it; elsewhere it
// returns an error that wraps errors.ErrUnsupported and hosts use the inline
// path.
func NewSharedMemory(size int) (*SharedMemory, error) {
	if size < 2*HeaderBytes {
		return nil, fmt.Errorf("sdk: shared memory: size %d is too small (at least %d bytes)", size, 2*HeaderBytes)
	}
	fd, err := unix.MemfdCreate("genpipe-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("sdk: shared memory: memfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "genpipe-shm")
	fail := func(what string, err error) (*SharedMemory, error) {
		file.Close()
		return nil, fmt.Errorf("sdk: shared memory: %s: %w", what, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail("ftruncate", err)
	}
	// Sealed, so the plugin cannot shrink the file under the host's
	// mapping (touching a page past the end would kill the host).
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
		return fail("sealing", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fail("mmap", err)
	}
	var token [tokenBytes]byte
	_, _ = rand.Read(token[:])
	return newSharedMemory(mem, file, unix.Munmap, token), nil
}

// MapSharedMemoryFromEnv maps the memory the host passed to this process,
// if any. It clears the variables that named it and closes the descriptor
// (the mapping keeps the memory), so a process this plugin starts inherits
// neither.
func MapSharedMemoryFromEnv() (*Peer, error) {
	fdStr, sizeStr := os.Getenv(shmFDEnv), os.Getenv(shmSizeEnv)
	if fdStr == "" {
		return nil, nil
	}
	os.Unsetenv(shmFDEnv)
	os.Unsetenv(shmSizeEnv)
	fd, err := strconv.Atoi(fdStr)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q is not a file descriptor above 2", shmFDEnv, fdStr)
	}
	defer unix.Close(fd)
	if !SharedMemoryEnabled() {
		return nil, nil
	}
	size, err := strconv.Atoi(sizeStr)
	if err != nil || size < HeaderBytes {
		return nil, fmt.Errorf("%s=%q is not a size of at least %d bytes", shmSizeEnv, sizeStr, HeaderBytes)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("descriptor %d: %w", fd, err)
	}
	if st.Size < int64(size) {
		return nil, fmt.Errorf("descriptor %d has %d bytes, %s says %d", fd, st.Size, shmSizeEnv, size)
	}
	// Only a file sealed against shrinking is safe to map: otherwise a
	// truncation would make this process fault on its next access.
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_SHRINK == 0 {
		return nil, errors.New("the shared memory is not sealed against shrinking")
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	p, err := newPeer(mem)
	if err != nil {
		_ = unix.Munmap(mem)
		return nil, err
	}
	return p, nil
}
