package sdk

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// Tests of the plugin side of the shared-memory data plane inside one
// process: the server's view of the memory is the test's own slice. The
// arena is tested in sdk/internal/wire, whole calls in sdk/client and with
// real processes in sdk/client and pipeline/pluginhost.

// servedMemory returns a server for impl that takes tensor bytes through
// in-process memory of the given size.
func servedMemory(t *testing.T, impl Plugin, size int) (*server, *wire.SharedMemory) {
	t.Helper()
	s, err := newServer(impl, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	m := wire.NewInProcessMemory(size)
	peer, err := m.Peer()
	if err != nil {
		t.Fatal(err)
	}
	s.useSharedMemory(peer)
	return s, m
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

// TestServerRefusesBadReferences sends requests with references outside the
// memory: the server answers InvalidArgument and touches nothing.
func TestServerRefusesBadReferences(t *testing.T) {
	s, m := servedMemory(t, &mirror{}, 1<<16)
	ctx := context.Background()
	resp, err := s.Load(ctx, &pb.LoadRequest{Capability: "translate", Preset: "same"})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(m.Size())
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
			for i := range m.Bytes()[wire.HeaderBytes:] {
				m.Bytes()[wire.HeaderBytes+i] = 0
			}
			atomic.StoreUint32(wire.StateWord(m.Bytes(), 4096), wire.StateBusy)
			req := good()
			tt.change(req)
			out, err := s.Translate(ctx, req)
			if tt.want == "" {
				if err != nil || out.Tensor.Shm == nil || out.Tensor.Shm.Offset != 12288 {
					t.Fatalf("got %v, %v", out, err)
				}
				if atomic.LoadUint32(wire.StateWord(m.Bytes(), 4096)) != wire.StateDone {
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
	if _, err := batchFromProto(good(), nil); !errors.Is(err, wire.ErrSharedMemory) {
		t.Errorf("train batch with a reference: got %v", err)
	}
}

// TestPanicMarksDone: a call that panics in the implementation still tells
// the host it is done with the block.
func TestPanicMarksDone(t *testing.T) {
	s, m := servedMemory(t, liar{}, 1<<16)
	ctx := context.Background()
	resp, err := s.Load(ctx, &pb.LoadRequest{Capability: "translate", Preset: "panic"})
	if err != nil {
		t.Fatal(err)
	}
	atomic.StoreUint32(wire.StateWord(m.Bytes(), 4096), wire.StateBusy)
	_, err = s.Translate(ctx, &pb.BatchRequest{
		Handle: resp.Handle,
		Tensor: &pb.Tensor{Shape: []int64{3, 1, 2, 2}, Dtype: pb.DType_UINT8, Shm: &pb.ShmRegion{Offset: 8192, Length: 12}},
		Shm:    &pb.ShmCall{State: 4096},
	})
	if status.Code(err) != codes.Internal {
		t.Fatalf("got %v, want the panic as Internal", err)
	}
	if atomic.LoadUint32(wire.StateWord(m.Bytes(), 4096)) != wire.StateDone {
		t.Error("a panicking call was not marked done")
	}
}
