package wire

import (
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// Tests of the shared-memory arena and of the references each side
// checks, inside one process: host and plugin see the same Go slice as
// their "mapping". Tests of whole calls are in sdk (the plugin side) and
// sdk/client (a client paired with a server).

// testMemory is a SharedMemory over ordinary memory, so these tests run on
// every OS.
func testMemory(size int) *SharedMemory { return NewInProcessMemory(size) }

func TestArena(t *testing.T) {
	m := testMemory(HeaderBytes + 64*1024)
	arena := 64 * 1024
	if st := m.Stats(); st.InUse != 0 || st.Size != HeaderBytes+arena {
		t.Fatalf("fresh memory: %+v", st)
	}
	// Three blocks of 16 KiB (64 bytes of state each) leave room for no
	// fourth.
	var ls []*Lease
	for i := range 3 {
		l := m.Lease(16<<10-2*shmAlign, shmAlign)
		if l == nil {
			t.Fatalf("lease %d: memory full", i)
		}
		if l.block.off%shmAlign != 0 || l.block.off < HeaderBytes || l.block.off+l.block.n > len(m.mem) {
			t.Fatalf("lease %d: block %+v outside the arena", i, l.block)
		}
		if l.in.off < l.block.off+shmAlign || l.out.off < l.in.off+l.in.n || l.out.off+l.out.n > l.block.off+l.block.n {
			t.Fatalf("lease %d: regions in %+v out %+v do not fit block %+v", i, l.in, l.out, l.block)
		}
		ls = append(ls, l)
	}
	if l := m.Lease(20<<10, 0); l != nil {
		t.Fatal("a 20 KiB lease fit into 16 KiB of free memory")
	}
	if st := m.Stats(); st.Fallbacks != 1 || st.Calls != 3 || st.InUse != 3*16<<10 {
		t.Fatalf("after exhaustion: %+v", st)
	}
	// Freed blocks merge: releasing the first two makes room for 32 KiB.
	for _, l := range ls[:2] {
		atomic.StoreUint32(word(m.mem, l.block.off), StateDone)
		l.Release()
	}
	big := m.Lease(32<<10-shmAlign, 0)
	if big == nil || big.block.off != HeaderBytes {
		t.Fatalf("freed neighbours did not merge into one block at the start: %+v", big)
	}
	// A block the plugin is not done with stays taken after release, until
	// the plugin marks it done.
	ls[2].Release()
	if st := m.Stats(); st.Pending != 1 || st.InUse != 48<<10 {
		t.Fatalf("released before done: %+v", st)
	}
	if l := m.Lease(32<<10, 0); l != nil {
		t.Fatal("a pending block was handed out again")
	}
	atomic.StoreUint32(word(m.mem, ls[2].block.off), StateDone)
	atomic.StoreUint32(word(m.mem, big.block.off), StateDone)
	big.Release()
	if l := m.Lease(arena-2*shmAlign, 0); l == nil {
		t.Fatalf("after every block was done the whole arena is not free: %+v", m.Stats())
	}
	if st := m.Stats(); st.Pending != 0 {
		t.Fatalf("pending blocks were not swept: %+v", st)
	}
}

func TestArenaConcurrent(t *testing.T) {
	m := testMemory(1 << 20)
	var wg sync.WaitGroup
	var got atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				l := m.Lease(1000*(g+1)+i, 3000)
				if l == nil {
					continue
				}
				got.Add(1)
				// Each block is written whole; an overlap would show as
				// another goroutine's byte.
				b := m.mem[l.in.off : l.out.off+l.out.n]
				for k := range b {
					b[k] = byte(g)
				}
				for k := range b {
					if b[k] != byte(g) {
						t.Errorf("goroutine %d: block %+v overlaps another", g, l.block)
						return
					}
				}
				atomic.StoreUint32(word(m.mem, l.block.off), StateDone)
				l.Release()
			}
		})
	}
	wg.Wait()
	if st := m.Stats(); st.InUse != 0 || st.Pending != 0 || int64(st.Calls) != got.Load() {
		t.Fatalf("after every release: %+v (leases %d)", st, got.Load())
	}
	if len(m.free) != 1 {
		t.Fatalf("free list not merged back into one span: %v", m.free)
	}
}

func TestCloseWaitsForLeases(t *testing.T) {
	unmapped := 0
	m := newSharedMemory(make([]byte, 1<<16), nil, func([]byte) error { unmapped++; return nil }, [tokenBytes]byte{})
	l := m.Lease(100, 100)
	if err := m.Close(); err != nil || unmapped != 0 {
		t.Fatalf("Close with a lease out: err %v, unmapped %d times", err, unmapped)
	}
	if m.Lease(100, 100) != nil {
		t.Fatal("lease after Close")
	}
	l.Release()
	if unmapped != 1 {
		t.Fatalf("unmapped %d times after the last lease, want 1", unmapped)
	}
	_ = m.Close()
	if unmapped != 1 {
		t.Fatalf("a second Close unmapped again")
	}
}

func TestPeerChecksReferences(t *testing.T) {
	const size = 1 << 16
	m := testMemory(size)
	p, err := newPeer(m.mem)
	if err != nil {
		t.Fatal(err)
	}
	regions := []struct {
		name        string
		off, length uint64
		ok          bool
	}{
		{"inside", HeaderBytes, 100, true},
		{"up to the end", size - 100, 100, true},
		{"empty at the end", size, 0, true},
		{"in the header", 8, 16, false},
		{"past the end", size - 100, 101, false},
		{"offset past the end", size + 1, 0, false},
		{"overflowing length", HeaderBytes, math.MaxUint64, false},
		{"overflowing offset", math.MaxUint64, 2, false},
	}
	for _, tt := range regions {
		t.Run("region "+tt.name, func(t *testing.T) {
			b, err := p.region("x", &pb.ShmRegion{Offset: tt.off, Length: tt.length})
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrSharedMemory) {
				t.Errorf("error %v does not wrap ErrSharedMemory", err)
			}
			if err == nil && (len(b) != int(tt.length) || cap(b) != int(tt.length)) {
				t.Errorf("got len %d cap %d, want both %d", len(b), cap(b), tt.length)
			}
		})
	}
	states := []struct {
		name string
		off  uint64
		ok   bool
	}{
		{"aligned", HeaderBytes, true},
		{"last word", size - 8, true},
		{"in the header", 0, false},
		{"unaligned", HeaderBytes + 4, false},
		{"past the end", size, false},
		{"huge", math.MaxUint64 - 7, false},
	}
	for _, tt := range states {
		t.Run("state "+tt.name, func(t *testing.T) {
			if _, err := p.state(tt.off); (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
	var none *Peer
	if _, err := none.region("the tensor", &pb.ShmRegion{Offset: HeaderBytes, Length: 1}); err == nil || !strings.Contains(err.Error(), "this plugin process has none") {
		t.Errorf("a process without shared memory: got %v", err)
	}
	if _, err := newPeer(make([]byte, size)); err == nil {
		t.Error("a mapping without the header was accepted")
	}
}

func TestHostChecksAnswers(t *testing.T) {
	m := testMemory(1 << 16)
	l := m.Lease(2000, 1000)
	defer l.Release()
	out := uint64(l.out.off)
	shape := func(n uint64) []int64 { return []int64{1, 1, 1, int64(n)} }
	tests := []struct {
		name      string
		off, n    uint64
		data      []byte
		lease     *Lease
		wantError string
	}{
		{"inside the offered room", out, 1000, nil, l, ""},
		{"at its end", out + 24, 1000, nil, l, ""},
		{"in the input region", uint64(l.in.off), 1000, nil, l, "outside the region"},
		{"past the room", out + 100, 1000, nil, l, "outside the region"},
		{"overflowing", out, math.MaxUint64, nil, l, "outside the region"},
		{"not offered", out, 10, nil, nil, "did not offer"},
		{"with inline data too", out, 1, []byte{1}, l, "both inline data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &pb.Tensor{Shape: shape(tt.n), Dtype: pb.DType_UINT8, Data: tt.data, Shm: &pb.ShmRegion{Offset: tt.off, Length: tt.n}}
			got, err := Resolve(r, tt.lease)
			if tt.wantError == "" {
				if err != nil || len(got.Data) != int(tt.n) {
					t.Fatalf("got %v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrSharedMemory) || !strings.Contains(err.Error(), tt.wantError) {
				t.Fatalf("got %v, want an ErrSharedMemory saying %q", err, tt.wantError)
			}
		})
	}
}
