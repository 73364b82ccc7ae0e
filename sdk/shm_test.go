package sdk

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// Tests of the shared-memory data plane inside one process: host and
// plugin see the same Go slice as their "mapping". Tests with real
// processes and memfds are in client_test.go and pipeline/pluginhost.

// testMemory is a SharedMemory over ordinary memory, so these tests run on
// every OS.
func testMemory(size int) *SharedMemory {
	return newSharedMemory(make([]byte, size), nil, nil, [shmTokenBytes]byte{1, 2, 3})
}

func TestArena(t *testing.T) {
	m := testMemory(shmHeaderBytes + 64*1024)
	arena := 64 * 1024
	if st := m.Stats(); st.InUse != 0 || st.Size != shmHeaderBytes+arena {
		t.Fatalf("fresh memory: %+v", st)
	}
	// Three blocks of 16 KiB (64 bytes of state each) leave room for no
	// fourth.
	var ls []*shmLease
	for i := range 3 {
		l := m.lease(16<<10-2*shmAlign, shmAlign)
		if l == nil {
			t.Fatalf("lease %d: memory full", i)
		}
		if l.block.off%shmAlign != 0 || l.block.off < shmHeaderBytes || l.block.off+l.block.n > len(m.mem) {
			t.Fatalf("lease %d: block %+v outside the arena", i, l.block)
		}
		if l.in.off < l.block.off+shmAlign || l.out.off < l.in.off+l.in.n || l.out.off+l.out.n > l.block.off+l.block.n {
			t.Fatalf("lease %d: regions in %+v out %+v do not fit block %+v", i, l.in, l.out, l.block)
		}
		ls = append(ls, l)
	}
	if l := m.lease(20<<10, 0); l != nil {
		t.Fatal("a 20 KiB lease fit into 16 KiB of free memory")
	}
	if st := m.Stats(); st.Fallbacks != 1 || st.Calls != 3 || st.InUse != 3*16<<10 {
		t.Fatalf("after exhaustion: %+v", st)
	}
	// Freed blocks merge: releasing the first two makes room for 32 KiB.
	for _, l := range ls[:2] {
		atomic.StoreUint32(word(m.mem, l.block.off), shmDone)
		l.release()
	}
	big := m.lease(32<<10-shmAlign, 0)
	if big == nil || big.block.off != shmHeaderBytes {
		t.Fatalf("freed neighbours did not merge into one block at the start: %+v", big)
	}
	// A block the plugin is not done with stays taken after release, until
	// the plugin marks it done.
	ls[2].release()
	if st := m.Stats(); st.Pending != 1 || st.InUse != 48<<10 {
		t.Fatalf("released before done: %+v", st)
	}
	if l := m.lease(32<<10, 0); l != nil {
		t.Fatal("a pending block was handed out again")
	}
	atomic.StoreUint32(word(m.mem, ls[2].block.off), shmDone)
	atomic.StoreUint32(word(m.mem, big.block.off), shmDone)
	big.release()
	if l := m.lease(arena-2*shmAlign, 0); l == nil {
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
				l := m.lease(1000*(g+1)+i, 3000)
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
				atomic.StoreUint32(word(m.mem, l.block.off), shmDone)
				l.release()
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
	m := newSharedMemory(make([]byte, 1<<16), nil, func([]byte) error { unmapped++; return nil }, [shmTokenBytes]byte{})
	l := m.lease(100, 100)
	if err := m.Close(); err != nil || unmapped != 0 {
		t.Fatalf("Close with a lease out: err %v, unmapped %d times", err, unmapped)
	}
	if m.lease(100, 100) != nil {
		t.Fatal("lease after Close")
	}
	l.release()
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
	p, err := newShmPeer(m.mem)
	if err != nil {
		t.Fatal(err)
	}
	regions := []struct {
		name        string
		off, length uint64
		ok          bool
	}{
		{"inside", shmHeaderBytes, 100, true},
		{"up to the end", size - 100, 100, true},
		{"empty at the end", size, 0, true},
		{"in the header", 8, 16, false},
		{"past the end", size - 100, 101, false},
		{"offset past the end", size + 1, 0, false},
		{"overflowing length", shmHeaderBytes, math.MaxUint64, false},
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
		{"aligned", shmHeaderBytes, true},
		{"last word", size - 8, true},
		{"in the header", 0, false},
		{"unaligned", shmHeaderBytes + 4, false},
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
	var none *shmPeer
	if _, err := none.region("the tensor", &pb.ShmRegion{Offset: shmHeaderBytes, Length: 1}); err == nil || !strings.Contains(err.Error(), "this plugin process has none") {
		t.Errorf("a process without shared memory: got %v", err)
	}
	if _, err := newShmPeer(make([]byte, size)); err == nil {
		t.Error("a mapping without the header was accepted")
	}
}

func TestHostChecksAnswers(t *testing.T) {
	m := testMemory(1 << 16)
	l := m.lease(2000, 1000)
	defer l.release()
	out := uint64(l.out.off)
	shape := func(n uint64) []int64 { return []int64{1, 1, 1, int64(n)} }
	tests := []struct {
		name      string
		off, n    uint64
		data      []byte
		lease     *shmLease
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
			got, err := tensorFromLease(r, tt.lease)
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
	// The plain conversion refuses references: only leased calls take them.
	if _, err := tensorFromProto(&pb.Tensor{Shape: []int64{1}, Dtype: pb.DType_UINT8, Shm: &pb.ShmRegion{Offset: out, Length: 1}}); !errors.Is(err, ErrSharedMemory) {
		t.Errorf("tensorFromProto accepted a reference: %v", err)
	}
}

// mirror is a plugin for the in-process tests. Its presets: "same"
// returns a copy, "alias" returns the input tensor itself, "double" returns
// items twice as wide (more than the room the host offers), "gen" generates
// 1x4x4 images.
type mirror struct {
	mu       sync.Mutex
	retained [][]byte // input Data seen, to check where it pointed
}

func (*mirror) Describe() Description {
	any8 := &ImageSpec{DType: Uint8}
	return Description{Name: "mirror", Version: "1",
		Capabilities: []CapabilitySpec{{Name: CapTranslate}, {Name: CapGenerate}},
		Presets: []Preset{
			{Name: "same", Capabilities: []Capability{CapTranslate}},
			{Name: "alias", Capabilities: []Capability{CapTranslate}},
			{Name: "double", Capabilities: []Capability{CapTranslate}, Input: any8},
			{Name: "gen", Capabilities: []Capability{CapGenerate}, Output: &ImageSpec{Channels: 1, Height: 16, Width: 16, DType: Uint8}},
		}}
}

func (p *mirror) Load(_ context.Context, req LoadRequest) (Model, error) {
	return &mirrorModel{p: p, preset: req.Preset}, nil
}

type mirrorModel struct {
	p      *mirror
	preset string
}

func (m *mirrorModel) Translate(_ context.Context, in *Batch) (*Tensor, error) {
	m.p.mu.Lock()
	m.p.retained = append(m.p.retained, in.Data)
	m.p.mu.Unlock()
	switch m.preset {
	case "alias":
		return in.Tensor, nil
	case "double":
		shape := append([]int(nil), in.Shape...)
		shape[len(shape)-1] *= 2
		out := NewTensor(in.DType, shape...)
		for i := range out.Data {
			out.Data[i] = in.Data[i/2]
		}
		return out, nil
	}
	return &Tensor{Shape: in.Shape, DType: in.DType, Data: append([]byte(nil), in.Data...)}, nil
}

func (m *mirrorModel) Generate(_ context.Context, req GenerateRequest) (*Tensor, error) {
	out := NewTensor(Uint8, len(req.Seeds), 1, 16, 16)
	for i, s := range req.Seeds {
		for k := range 256 {
			out.Data[i*256+k] = byte(s)
		}
	}
	return out, nil
}

// directRPC calls a server in the same process, without gRPC.
type directRPC struct {
	pb.PluginClient
	s *server
}

func (d directRPC) Describe(ctx context.Context, req *pb.DescribeRequest, _ ...grpc.CallOption) (*pb.Description, error) {
	return d.s.Describe(ctx, req)
}

func (d directRPC) Load(ctx context.Context, req *pb.LoadRequest, _ ...grpc.CallOption) (*pb.LoadResponse, error) {
	return d.s.Load(ctx, req)
}

func (d directRPC) Translate(ctx context.Context, req *pb.BatchRequest, _ ...grpc.CallOption) (*pb.TensorResponse, error) {
	return d.s.Translate(ctx, req)
}

func (d directRPC) Generate(ctx context.Context, req *pb.GenerateRequest, _ ...grpc.CallOption) (*pb.TensorResponse, error) {
	return d.s.Generate(ctx, req)
}

// sharedPair returns a client and the server it calls, sharing memory of
// the given size.
func sharedPair(t *testing.T, size int) (*Client, *server, *mirror, *SharedMemory) {
	t.Helper()
	impl := &mirror{}
	s, err := newServer(impl, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	m := testMemory(size)
	if s.shm, err = newShmPeer(m.mem); err != nil {
		t.Fatal(err)
	}
	s.descPB.ShmToken, s.descPB.ShmSize = s.shm.token, uint64(len(m.mem))
	c := NewClient(nil)
	c.rpc = directRPC{s: s}
	ok, err := c.UseSharedMemory(context.Background(), m)
	if err != nil || !ok {
		t.Fatalf("UseSharedMemory: %v, %v", ok, err)
	}
	return c, s, impl, m
}

func TestSharedRoundTrip(t *testing.T) {
	c, _, impl, m := sharedPair(t, 1<<20)
	ctx := context.Background()
	u8 := NewTensor(Uint8, 4, 3, 16, 16)
	for i := range u8.Data {
		u8.Data[i] = byte(i * 31)
	}
	f32 := FromFloat32(make([]float32, 2*3*8*8), 2, 3, 8, 8)
	for i := range 2 * 3 * 8 * 8 {
		f32.Data[4*i+1] = byte(i)
	}
	tests := []struct {
		name, preset string
		in           *Tensor
	}{
		{"uint8", "same", u8},
		{"float32", "same", f32},
		{"implementation returns its input", "alias", u8},
		{"answer larger than the room: inline", "double", u8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := c.Load(ctx, LoadRequest{Capability: CapTranslate, Preset: tt.preset})
			if err != nil {
				t.Fatal(err)
			}
			before := m.Stats()
			impl.retained = nil
			out, err := c.Translate(ctx, h, &Batch{Tensor: tt.in})
			if err != nil {
				t.Fatal(err)
			}
			after := m.Stats()
			if after.Calls != before.Calls+1 || after.InUse != 0 || after.Pending != 0 {
				t.Errorf("stats before %+v after %+v: want one more call and nothing held", before, after)
			}
			if len(impl.retained) != 1 || !c.shm.Load().containsForTest(impl.retained[0]) {
				t.Errorf("the implementation's input did not point into shared memory")
			}
			want := tt.in.Data
			if tt.preset == "double" {
				want = make([]byte, 2*len(tt.in.Data))
				for i := range want {
					want[i] = tt.in.Data[i/2]
				}
			}
			if out.DType != tt.in.DType || string(out.Data) != string(want) {
				t.Fatalf("got %s %v, want the mirror of the input", out.DType, out.Shape)
			}
			if c.shm.Load().containsForTest(out.Data) {
				t.Error("the returned tensor points into shared memory")
			}
		})
	}
	h, err := c.Load(ctx, LoadRequest{Capability: CapGenerate, Preset: "gen"})
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats().Calls
	g, err := c.Generate(ctx, h, GenerateRequest{Seeds: []uint64{5, 6, 7, 8, 9, 10, 11, 12}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Shape, []int{8, 1, 16, 16}) || g.Data[0] != 5 || g.Data[7*256+255] != 12 || m.Stats().Calls != before+1 {
		t.Errorf("generate through shared memory: %v, stats %+v", g.Shape, m.Stats())
	}
}

func (m *SharedMemory) containsForTest(b []byte) bool { return (&shmPeer{mem: m.mem}).contains(b) }

// TestSharedFallsBackWhenFull checks that a call that finds no room goes
// inline, and that small calls never use shared memory.
func TestSharedFallsBackWhenFull(t *testing.T) {
	c, _, _, m := sharedPair(t, 64<<10)
	ctx := context.Background()
	h, err := c.Load(ctx, LoadRequest{Capability: CapTranslate, Preset: "same"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name             string
		in               *Tensor
		calls, fallbacks uint64
	}{
		{"too large for the arena", NewTensor(Uint8, 2, 1, 100, 200), 0, 1},
		{"too small to bother", NewTensor(Uint8, 1, 1, 2, 2), 0, 0},
		{"fits", NewTensor(Uint8, 2, 1, 20, 200), 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.in.Data {
				tt.in.Data[i] = byte(i)
			}
			before := m.Stats()
			out, err := c.Translate(ctx, h, &Batch{Tensor: tt.in})
			if err != nil || string(out.Data) != string(tt.in.Data) {
				t.Fatalf("got %v", err)
			}
			after := m.Stats()
			if after.Calls-before.Calls != tt.calls || after.Fallbacks-before.Fallbacks != tt.fallbacks {
				t.Errorf("calls +%d fallbacks +%d, want +%d +%d", after.Calls-before.Calls, after.Fallbacks-before.Fallbacks, tt.calls, tt.fallbacks)
			}
		})
	}
}

// TestServerRefusesBadReferences sends requests with references outside the
// memory: the server answers InvalidArgument and touches nothing.
func TestServerRefusesBadReferences(t *testing.T) {
	_, s, _, m := sharedPair(t, 1<<16)
	ctx := context.Background()
	resp, err := s.Load(ctx, &pb.LoadRequest{Capability: "translate", Preset: "same"})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(len(m.mem))
	good := func() *pb.BatchRequest {
		return &pb.BatchRequest{
			Handle: resp.Handle,
			Tensor: &pb.Tensor{Shape: []int64{1, 1, 1, 64}, Dtype: pb.DType_UINT8, Shm: &pb.ShmRegion{Offset: 8192, Length: 64}},
			Shm:    &pb.ShmCall{State: 4096, Out: &pb.ShmRegion{Offset: 12288, Length: 64}},
		}
	}
	tests := []struct {
		name   string
		change func(*pb.BatchRequest)
		want   string
	}{
		{"valid", func(*pb.BatchRequest) {}, ""},
		{"input past the end", func(r *pb.BatchRequest) { r.Tensor.Shm.Offset = size - 32 }, "the tensor [65504, +64) is outside"},
		{"input length overflows", func(r *pb.BatchRequest) { r.Tensor.Shm.Length = math.MaxUint64 - 100 }, "is outside the shared memory"},
		{"input in the header", func(r *pb.BatchRequest) { r.Tensor.Shm.Offset = 0 }, "is outside the shared memory"},
		{"input length does not match the shape", func(r *pb.BatchRequest) { r.Tensor.Shm.Length = 63 }, "needs 64 bytes, got 63"},
		{"inline data and a reference", func(r *pb.BatchRequest) { r.Tensor.Data = []byte{1} }, "both inline data"},
		{"output past the end", func(r *pb.BatchRequest) { r.Shm.Out.Offset = size }, "the output region"},
		{"output overflows", func(r *pb.BatchRequest) { r.Shm.Out.Offset, r.Shm.Out.Length = 1<<63, 1<<63 }, "the output region"},
		{"state word unaligned", func(r *pb.BatchRequest) { r.Shm.State = 4097 }, "state word at 4097"},
		{"state word past the end", func(r *pb.BatchRequest) { r.Shm.State = size }, "state word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range m.mem[shmHeaderBytes:] {
				m.mem[shmHeaderBytes+i] = 0
			}
			atomic.StoreUint32(word(m.mem, 4096), shmBusy)
			req := good()
			tt.change(req)
			out, err := s.Translate(ctx, req)
			if tt.want == "" {
				if err != nil || out.Tensor.Shm == nil || out.Tensor.Shm.Offset != 12288 {
					t.Fatalf("got %v, %v", out, err)
				}
				if atomic.LoadUint32(word(m.mem, 4096)) != shmDone {
					t.Error("the call was not marked done")
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want InvalidArgument saying %q", err, tt.want)
			}
		})
	}
	// Train batches and processes without shared memory take no references.
	s.shm = nil
	if _, err := s.Translate(ctx, good()); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "has no shared memory") {
		t.Errorf("server without shared memory: got %v", err)
	}
	if _, err := batchFromProto(good(), nil); !errors.Is(err, ErrSharedMemory) {
		t.Errorf("train batch with a reference: got %v", err)
	}
}

// TestPanicMarksDone: a call that panics in the implementation still tells
// the host it is done with the block.
func TestPanicMarksDone(t *testing.T) {
	m := testMemory(1 << 16)
	s, err := newServer(liar{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if s.shm, err = newShmPeer(m.mem); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := s.Load(ctx, &pb.LoadRequest{Capability: "translate", Preset: "panic"})
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32(word(m.mem, 4096), shmBusy)
	_, err = s.Translate(ctx, &pb.BatchRequest{
		Handle: resp.Handle,
		Tensor: &pb.Tensor{Shape: []int64{3, 1, 2, 2}, Dtype: pb.DType_UINT8, Shm: &pb.ShmRegion{Offset: 8192, Length: 12}},
		Shm:    &pb.ShmCall{State: 4096},
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("got %v, want the panic as Internal", err)
	}
	if atomic.LoadUint32(word(m.mem, 4096)) != shmDone {
		t.Error("a panicking call was not marked done")
	}
}
