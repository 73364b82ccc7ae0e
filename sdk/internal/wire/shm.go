package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// The shared-memory data plane.
//
// gRPC stays the control plane of every call, but on Linux the bytes of
// image tensors do not travel in gRPC messages: protobuf encoding, HTTP/2
// framing and the socket copy cost about 0.7 ms of CPU per 256x256 RGB
// image, an order of magnitude more than a memcpy. Instead the host creates
// one anonymous shared memory file (memfd) per plugin process, maps it, and
// hands it to the child as an inherited file descriptor named by
// GENPIPE_SHM_FD and GENPIPE_SHM_SIZE. The plugin (sdk.Serve) maps it too and says so in
// its description (echoing a random token from the memory's header, which
// proves it mapped the right file). From then on, for each call:
//
//   - the host takes one block of the memory from an arena (a state word,
//     the input bytes, room for the output), copies the input tensor in and
//     sends only its offset and length;
//   - the plugin hands the implementation a tensor whose Data points into
//     the mapping (no copy), copies the returned tensor into the output room
//     when it fits (else answers inline, as without shared memory) and marks
//     the call's state word done;
//   - the host copies the output out into memory of its own and frees the
//     block.
//
// Every offset and length received is checked against the mapping (and, on
// the host, against the block it offered), so a buggy or malicious peer
// gets an error, never an access outside the mapping. The memfd is sealed
// against shrinking, so neither side can make the other's mapping fault.
// A call that ends on the host before the plugin finished with it (the
// context was cancelled, the connection broke) leaves its block pending until
// the plugin marks it done, so a late plugin never writes into a block that
// another call uses; the blocks of a dead process go with its memory.
//
// When the arena has no room for a call (the memory is bounded), that call
// goes inline: a call never waits for shared memory. Hosts and plugins that
// do not know about shared memory, other operating systems and
// GENPIPE_SHM=off all use the inline path.

// SharedMemoryEnv names the environment variable that switches the
// shared-memory data plane off when set to "off" (also "0", "false", "no").
// The host reads it when it starts a plugin process; a plugin process that
// sees it refuses the memory it is offered.
const SharedMemoryEnv = "GENPIPE_SHM"

// DefaultSharedMemoryBytes is the size of the shared memory a host creates
// per plugin process. Pages are allocated when first touched, so the size
// costs nothing until calls use it; it bounds how many bytes of concurrent
// calls can go through shared memory (the rest go inline).
const DefaultSharedMemoryBytes = 256 << 20

// Environment variables that pass the memory to the plugin process.
const (
	shmFDEnv   = "GENPIPE_SHM_FD"
	shmSizeEnv = "GENPIPE_SHM_SIZE"
)

// Layout of the memory: a header page (magic, token, size), then the arena.
const (
	HeaderBytes = 4096
	shmMagic    = "genpipe\x01"
	tokenBytes  = 16
	// shmAlign aligns every block (a cache line; the state word needs 8).
	shmAlign = 64
	// MinBytes is the smallest call that uses shared memory; below it
	// the bytes are too few for the arena's bookkeeping to pay off.
	MinBytes = 1024
)

// States of a call's state word.
const (
	StateBusy uint32 = 1 // set by the host before the call
	StateDone uint32 = 2 // set by the plugin when it no longer touches the block
)

// ErrSharedMemory reports a shared-memory reference that is malformed or
// points outside the memory or the region offered for the call.
var ErrSharedMemory = errors.New("bad shared-memory reference")

// SharedMemoryEnabled reports whether the environment allows the
// shared-memory data plane (see [SharedMemoryEnv]).
func SharedMemoryEnabled() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(SharedMemoryEnv))) {
	case "off", "0", "false", "no":
		return false
	}
	return true
}

// SharedMemory is the memory a host shares with one plugin process to carry
// tensor bytes (Linux only; see [NewSharedMemory]). A host creates one per
// process it starts, passes it to the process with Attach before the start,
// turns it on with the client's UseSharedMemory after the handshake, and closes
// it when the process is gone. It is safe for concurrent use.
type SharedMemory struct {
	mem   []byte
	file  *os.File
	token [tokenBytes]byte
	unmap func([]byte) error

	mu      sync.Mutex
	free    []span // sorted by offset, coalesced
	pending []span // blocks of calls the plugin may still touch
	inUse   int
	leases  int // blocks the host is copying from or to
	closed  bool

	calls, fallbacks atomic.Uint64
}

// SharedMemoryStats describes the use of a [SharedMemory].
type SharedMemoryStats struct {
	// Size is the size of the memory in bytes.
	Size int
	// InUse is the number of bytes held by calls now (pending included).
	InUse int
	// Pending counts blocks of calls that ended on the host before the
	// plugin finished with them; they are reused once it has.
	Pending int
	// Calls counts calls whose tensors went through the memory.
	Calls uint64
	// Fallbacks counts calls that found no room and went inline.
	Fallbacks uint64
}

// span is a range of the memory.
type span struct{ off, n int }

func alignUp(n int) int { return (n + shmAlign - 1) &^ (shmAlign - 1) }

// newSharedMemory sets up the header and the arena over a fresh mapping.
func newSharedMemory(mem []byte, file *os.File, unmap func([]byte) error, token [tokenBytes]byte) *SharedMemory {
	m := &SharedMemory{mem: mem, file: file, unmap: unmap, token: token}
	copy(mem, shmMagic)
	copy(mem[len(shmMagic):], token[:])
	binary.LittleEndian.PutUint64(mem[len(shmMagic)+tokenBytes:], uint64(len(mem)))
	if end := len(mem) &^ (shmAlign - 1); end > HeaderBytes {
		m.free = []span{{HeaderBytes, end - HeaderBytes}}
	}
	return m
}

// Size is the size of the memory in bytes.
func (m *SharedMemory) Size() int { return len(m.mem) }

// Token is the random token in the memory's header: a plugin that mapped
// the memory echoes it in its description.
func (m *SharedMemory) Token() []byte { return m.token[:] }

// NewInProcessMemory returns a SharedMemory of size bytes over ordinary
// memory, for tests that run host and plugin in one process (on every OS);
// [SharedMemory.Peer] is the plugin's view of it.
func NewInProcessMemory(size int) *SharedMemory {
	return newSharedMemory(make([]byte, size), nil, nil, [tokenBytes]byte{1, 2, 3})
}

// Peer returns the plugin's view of the memory in this process (for
// in-process tests).
func (m *SharedMemory) Peer() (*Peer, error) { return newPeer(m.mem) }

// Bytes returns the memory itself (for in-process tests).
func (m *SharedMemory) Bytes() []byte { return m.mem }

// Attach makes cmd inherit the memory: it appends the memory's file to
// cmd.ExtraFiles and names it in cmd.Env (starting from os.Environ() when
// cmd.Env is nil, as exec would). Call it once, before the process starts.
func (m *SharedMemory) Attach(cmd *exec.Cmd) {
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = slices.DeleteFunc(cmd.Env, isShmEnv)
	cmd.ExtraFiles = append(cmd.ExtraFiles, m.file)
	fd := 2 + len(cmd.ExtraFiles) // entry i becomes descriptor 3+i
	cmd.Env = append(cmd.Env, shmFDEnv+"="+strconv.Itoa(fd), shmSizeEnv+"="+strconv.Itoa(len(m.mem)))
}

// isShmEnv matches the variables that pass a memory to a plugin, so an
// inherited pair never names a descriptor the child does not have.
func isShmEnv(kv string) bool {
	return strings.HasPrefix(kv, shmFDEnv+"=") || strings.HasPrefix(kv, shmSizeEnv+"=")
}

// Close releases the memory. Calls still copying keep it mapped until they
// are done; calls started afterwards go inline.
func (m *SharedMemory) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	last := m.leases == 0
	m.mu.Unlock()
	if last {
		return m.release()
	}
	return nil
}

// release unmaps the memory once nothing uses it.
func (m *SharedMemory) release() error {
	var err error
	if m.unmap != nil {
		err = m.unmap(m.mem)
	}
	if m.file != nil {
		if cerr := m.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Stats returns counters of the memory's use.
func (m *SharedMemory) Stats() SharedMemoryStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return SharedMemoryStats{
		Size:      len(m.mem),
		InUse:     m.inUse,
		Pending:   len(m.pending),
		Calls:     m.calls.Load(),
		Fallbacks: m.fallbacks.Load(),
	}
}

// StateWord is the state word at off of mem (8-aligned, inside the
// memory). Tests use it to play a call's host side.
func StateWord(mem []byte, off int) *uint32 { return word(mem, off) }

// word is the state word at off (8-aligned, inside the memory).
func word(mem []byte, off int) *uint32 {
	return (*uint32)(unsafe.Pointer(&mem[off]))
}

// Lease is one call's block: the state word, the input bytes and room
// for the output. The host copies through it until release.
type Lease struct {
	m     *SharedMemory
	block span
	in    span
	out   span
}

// Lease takes a block for a call with inBytes of input and room for outCap
// bytes of output. It returns nil when the memory is closed or full.
func (m *SharedMemory) Lease(inBytes, outCap int) *Lease {
	size := shmAlign + alignUp(inBytes) + alignUp(outCap)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.sweepLocked()
	off, ok := m.allocLocked(size)
	if !ok {
		m.fallbacks.Add(1)
		return nil
	}
	m.leases++
	m.inUse += size
	m.calls.Add(1)
	atomic.StoreUint32(word(m.mem, off), StateBusy)
	return &Lease{
		m:     m,
		block: span{off, size},
		in:    span{off + shmAlign, inBytes},
		out:   span{off + shmAlign + alignUp(inBytes), alignUp(outCap)},
	}
}

// Release ends the host's use of the block: it is free again if the plugin
// is done with it, else pending until it is.
func (l *Lease) Release() {
	m := l.m
	m.mu.Lock()
	if atomic.LoadUint32(word(m.mem, l.block.off)) == StateDone {
		m.freeLocked(l.block)
	} else {
		m.pending = append(m.pending, l.block)
	}
	m.leases--
	last := m.closed && m.leases == 0
	m.mu.Unlock()
	if last {
		_ = m.release()
	}
}

// sweepLocked frees the pending blocks the plugin has finished with.
func (m *SharedMemory) sweepLocked() {
	if len(m.pending) == 0 {
		return
	}
	keep := m.pending[:0]
	for _, b := range m.pending {
		if atomic.LoadUint32(word(m.mem, b.off)) == StateDone {
			m.freeLocked(b)
		} else {
			keep = append(keep, b)
		}
	}
	m.pending = keep
}

// allocLocked takes size bytes first-fit, so the low pages (already
// touched) are reused and the memory's resident size stays at the peak of
// concurrent use.
func (m *SharedMemory) allocLocked(size int) (int, bool) {
	for i, f := range m.free {
		if f.n < size {
			continue
		}
		if f.n == size {
			m.free = slices.Delete(m.free, i, i+1)
		} else {
			m.free[i] = span{f.off + size, f.n - size}
		}
		return f.off, true
	}
	return 0, false
}

// freeLocked returns a block to the free list, merging neighbours.
func (m *SharedMemory) freeLocked(b span) {
	m.inUse -= b.n
	i, _ := slices.BinarySearchFunc(m.free, b.off, func(s span, off int) int { return s.off - off })
	m.free = slices.Insert(m.free, i, b)
	if i+1 < len(m.free) && m.free[i].off+m.free[i].n == m.free[i+1].off {
		m.free[i].n += m.free[i+1].n
		m.free = slices.Delete(m.free, i+1, i+2)
	}
	if i > 0 && m.free[i-1].off+m.free[i-1].n == m.free[i].off {
		m.free[i-1].n += m.free[i].n
		m.free = slices.Delete(m.free, i, i+1)
	}
}

// TensorIn puts data, the bytes of tensor t (whose own Data is ignored),
// into the block and returns t's wire form carrying only their place.
func (l *Lease) TensorIn(t *pb.Tensor, data []byte) *pb.Tensor {
	copy(l.m.mem[l.in.off:l.in.off+l.in.n], data)
	return &pb.Tensor{Shape: t.Shape, Dtype: t.Dtype, Space: t.Space, Shm: &pb.ShmRegion{Offset: uint64(l.in.off), Length: uint64(l.in.n)}}
}

// Call is the request's invitation to answer through the block.
func (l *Lease) Call() *pb.ShmCall {
	c := &pb.ShmCall{State: uint64(l.block.off)}
	if l.out.n > 0 {
		c.Out = &pb.ShmRegion{Offset: uint64(l.out.off), Length: uint64(l.out.n)}
	}
	return c
}

// Resolve returns a response tensor with its bytes inline: one that
// answers through shared memory must lie inside the output room of the
// call's lease l (nil when none was offered); its bytes are copied out, so
// the result outlives the lease. A tensor without a reference is returned
// as it is.
func Resolve(t *pb.Tensor, l *Lease) (*pb.Tensor, error) {
	if t == nil || t.Shm == nil {
		return t, nil
	}
	if l == nil || l.out.n == 0 {
		return nil, fmt.Errorf("%w: the plugin answered through shared memory, which the host did not offer for this call", ErrSharedMemory)
	}
	if len(t.Data) != 0 {
		return nil, fmt.Errorf("%w: the answer has both inline data and a shared-memory reference", ErrSharedMemory)
	}
	off, n := t.Shm.Offset, t.Shm.Length
	lo, hi := uint64(l.out.off), uint64(l.out.off+l.out.n)
	if off < lo || off > hi || n > hi-off {
		return nil, fmt.Errorf("%w: the answer's bytes [%d, +%d) are outside the region [%d, %d) offered for it", ErrSharedMemory, off, n, lo, hi)
	}
	// append, unlike make and copy, does not zero the new memory first.
	data := append([]byte(nil), l.m.mem[off:off+n]...)
	return &pb.Tensor{Shape: t.Shape, Dtype: t.Dtype, Space: t.Space, Data: data}, nil
}

// Peer is the plugin's mapping of the host's memory.
type Peer struct {
	mem   []byte
	token []byte
}

// newPeer checks the header of a mapping made from the host's memory.
func newPeer(mem []byte) (*Peer, error) {
	if len(mem) < HeaderBytes {
		return nil, fmt.Errorf("the shared memory is %d bytes, less than its %d-byte header", len(mem), HeaderBytes)
	}
	if string(mem[:len(shmMagic)]) != shmMagic {
		return nil, errors.New("the shared memory does not start with the expected header")
	}
	if n := binary.LittleEndian.Uint64(mem[len(shmMagic)+tokenBytes:]); n != uint64(len(mem)) {
		return nil, fmt.Errorf("the shared memory's header says %d bytes, the mapping has %d", n, len(mem))
	}
	token := bytes.Clone(mem[len(shmMagic) : len(shmMagic)+tokenBytes])
	return &Peer{mem: mem, token: token}, nil
}

// Token is the token read from the memory's header.
func (p *Peer) Token() []byte { return p.token }

// Size is the size of the mapping in bytes.
func (p *Peer) Size() int { return len(p.mem) }

// region returns the bytes a reference names, after checking that they lie
// in the arena. The slice's capacity ends with it, so an append by the
// implementation reallocates instead of writing past the region.
func (p *Peer) region(what string, r *pb.ShmRegion) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: %s is in shared memory, but this plugin process has none", ErrSharedMemory, what)
	}
	size := uint64(len(p.mem))
	if r.Offset < HeaderBytes || r.Offset > size || r.Length > size-r.Offset {
		return nil, fmt.Errorf("%w: %s [%d, +%d) is outside the shared memory's arena [%d, %d)", ErrSharedMemory, what, r.Offset, r.Length, HeaderBytes, size)
	}
	lo, hi := int(r.Offset), int(r.Offset+r.Length)
	return p.mem[lo:hi:hi], nil
}

// state returns the call's state word after checking its place.
func (p *Peer) state(off uint64) (*uint32, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: the call has a shared-memory state word, but this plugin process has no shared memory", ErrSharedMemory)
	}
	if off < HeaderBytes || off%8 != 0 || off > uint64(len(p.mem))-8 {
		return nil, fmt.Errorf("%w: state word at %d is not an 8-aligned offset in the arena [%d, %d)", ErrSharedMemory, off, HeaderBytes, len(p.mem))
	}
	return word(p.mem, int(off)), nil
}

// contains reports whether b points into the mapping.
func (p *Peer) contains(b []byte) bool {
	if p == nil || len(b) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(p.mem)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return at >= start && at < start+uintptr(len(p.mem))
}

// Call is the plugin's side of one call's use of shared memory.
type Call struct {
	peer  *Peer
	state *uint32
	out   []byte
	outAt uint64
}

// BeginCall checks a request's shared-memory fields. The caller must defer
// Done on the result.
func (p *Peer) BeginCall(c *pb.ShmCall) (*Call, error) {
	if c == nil {
		return &Call{peer: p}, nil
	}
	st, err := p.state(c.State)
	if err != nil {
		return nil, err
	}
	sc := &Call{peer: p, state: st}
	if c.Out != nil {
		if sc.out, err = p.region("the output region", c.Out); err != nil {
			return nil, err
		}
		sc.outAt = c.Out.Offset
	}
	return sc, nil
}

// Done tells the host the plugin no longer touches the call's block. It is
// the last thing a call does with shared memory.
func (c *Call) Done() {
	if c != nil && c.state != nil {
		atomic.CompareAndSwapUint32(c.state, StateBusy, StateDone)
	}
}

// TensorIn returns a request tensor with its bytes in place: bytes in
// shared memory are not copied, so the tensor is valid only during the
// call. A tensor without a reference is returned as it is.
func (c *Call) TensorIn(what string, t *pb.Tensor) (*pb.Tensor, error) {
	if t == nil || t.Shm == nil {
		return t, nil
	}
	if len(t.Data) != 0 {
		return nil, fmt.Errorf("%w: %s has both inline data and a shared-memory reference", ErrSharedMemory, what)
	}
	data, err := c.peer.region(what, t.Shm)
	if err != nil {
		return nil, err
	}
	return &pb.Tensor{Shape: t.Shape, Dtype: t.Dtype, Space: t.Space, Data: data}, nil
}

// Response builds the answer for p, the wire form of the returned tensor
// with its data inline: through the output region when the host offered
// one and the bytes fit, else inline. Inline bytes never point into shared
// memory (an implementation may return its input), because the host may
// reuse the block once the call is marked done, while gRPC still sends.
func (c *Call) Response(p *pb.Tensor) *pb.TensorResponse {
	switch n := len(p.Data); {
	case c.out != nil && n > 0 && n <= len(c.out):
		copy(c.out, p.Data)
		p.Data = nil
		p.Shm = &pb.ShmRegion{Offset: c.outAt, Length: uint64(n)}
	case c.peer.contains(p.Data):
		p.Data = bytes.Clone(p.Data)
	}
	return &pb.TensorResponse{Tensor: p}
}
