package client

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/genpipe/genpipe/sdk"
	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// fakeRPC stands in for a plugin connection to test how the client splits
// batches. Translate echoes its input; Generate returns 1x2x2 uint8 images
// filled with the seed.
type fakeRPC struct {
	pb.PluginClient
	mu        sync.Mutex
	items     []int // items per request, in order
	bytes     []int // request tensor bytes
	failAbove int   // ResourceExhausted for requests with more items
}

func (f *fakeRPC) Translate(_ context.Context, req *pb.BatchRequest, _ ...grpc.CallOption) (*pb.TensorResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int(req.Tensor.Shape[0])
	if f.failAbove > 0 && n > f.failAbove {
		return nil, status.Error(codes.ResourceExhausted, "grpc: received message larger than max")
	}
	f.items = append(f.items, n)
	f.bytes = append(f.bytes, len(req.Tensor.Data))
	return &pb.TensorResponse{Tensor: req.Tensor}, nil
}

func (f *fakeRPC) Generate(_ context.Context, req *pb.GenerateRequest, _ ...grpc.CallOption) (*pb.TensorResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items = append(f.items, len(req.Seeds))
	t := sdk.NewTensor(sdk.Uint8, len(req.Seeds), 1, 2, 2)
	for i, s := range req.Seeds {
		for k := 0; k < 4; k++ {
			t.Data[i*4+k] = byte(s)
		}
	}
	return &pb.TensorResponse{Tensor: tensorToProto(t)}, nil
}

func fakeClient(f *fakeRPC, out *sdk.ImageSpec) *Client {
	c := &Client{rpc: f, handles: map[Handle]*handleInfo{}, desc: &sdk.Description{Name: "fake"}}
	c.handles[1] = &handleInfo{cap: sdk.CapTranslate, preset: &sdk.Preset{Name: "p", Output: out}}
	c.handles[2] = &handleInfo{cap: sdk.CapGenerate, preset: &sdk.Preset{Name: "p", Output: out}}
	return c
}

func sequence(n, item int) *sdk.Tensor {
	t := sdk.NewTensor(sdk.Uint8, n, 1, 1, item)
	for i := range t.Data {
		t.Data[i] = byte(i / item)
	}
	return t
}

func TestClientSplitsBatches(t *testing.T) {
	tests := []struct {
		name      string
		n, item   int
		out       *sdk.ImageSpec
		failAbove int
		wantItems []int
	}{
		{"fits in one call", 10, 1 << 10, nil, 0, []int{10}},
		{"1 MiB items", 40, 1 << 20, nil, 0, []int{16, 16, 8}},
		{"output 4x the input", 10, 1 << 20, &sdk.ImageSpec{DType: sdk.Float32}, 0, []int{4, 4, 2}},
		{"output of fixed larger size", 10, 1 << 20, &sdk.ImageSpec{Channels: 1, Height: 1, Width: 8 << 20, DType: sdk.Uint8}, 0, []int{2, 2, 2, 2, 2}},
		{"response too large: halves", 16, 1 << 10, nil, 5, []int{4, 4, 4, 4}},
		{"empty batch", 0, 16, nil, 0, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRPC{failAbove: tt.failAbove}
			c := fakeClient(f, tt.out)
			in := sequence(tt.n, tt.item)
			out, err := c.Translate(context.Background(), 1, &sdk.Batch{Tensor: in})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.items, tt.wantItems) {
				t.Errorf("items per call %v, want %v", f.items, tt.wantItems)
			}
			for _, b := range f.bytes {
				if b > ChunkBytes {
					t.Errorf("a request carried %d bytes, more than ChunkBytes", b)
				}
			}
			if !reflect.DeepEqual(out.Shape, in.Shape) || string(out.Data) != string(in.Data) {
				t.Errorf("joined result differs from the input (shape %v vs %v)", out.Shape, in.Shape)
			}
		})
	}
}

func TestClientSplitsGenerate(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		out       *sdk.ImageSpec
		wantItems []int
	}{
		{"unknown output size: capped count", 150, nil, []int{64, 64, 22}},
		{"known output size", 12, &sdk.ImageSpec{Channels: 3, Height: 512, Width: 512, DType: sdk.Float32}, []int{5, 5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRPC{}
			c := fakeClient(f, tt.out)
			seeds := make([]uint64, tt.n)
			for i := range seeds {
				seeds[i] = uint64(i)
			}
			out, err := c.Generate(context.Background(), 2, sdk.GenerateRequest{Seeds: seeds})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.items, tt.wantItems) {
				t.Errorf("items per call %v, want %v", f.items, tt.wantItems)
			}
			for i := 0; i < tt.n; i++ {
				if out.Data[i*4] != byte(i) {
					t.Fatalf("item %d came from seed %d: parts joined out of order", i, out.Data[i*4])
				}
			}
		})
	}
}

func TestClientRefusesHugeItem(t *testing.T) {
	c := fakeClient(&fakeRPC{}, nil)
	_, err := c.Translate(context.Background(), 1, &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 1, 1, 1, MaxMessageBytes)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "plugin fake: translate: message too large: one item is 67108864 bytes") {
		t.Fatalf("got %v", err)
	}
}
func TestParamsRoundTrip(t *testing.T) {
	specs := []sdk.Param{
		{Name: "n", Type: sdk.Int},
		{Name: "x", Type: sdk.Float},
		{Name: "s", Type: sdk.String},
		{Name: "b", Type: sdk.Bool},
		{Name: "l", Type: sdk.List, Elem: &sdk.Param{Type: sdk.Int}},
		{Name: "ops", Type: sdk.List, Elem: &sdk.Param{Type: sdk.Object, OneOf: true, Fields: []sdk.Param{
			{Name: "resize", Type: sdk.Object, Fields: []sdk.Param{{Name: "width", Type: sdk.Int}}},
			{Name: "grayscale", Type: sdk.Object, Fields: []sdk.Param{{Name: "keep", Type: sdk.Bool, Default: false}}},
		}}},
	}
	in := sdk.Params{"n": 3, "x": 0.5, "s": "hi", "b": true, "l": []int{1, 2},
		"ops": []any{map[string]any{"resize": map[string]any{"width": 64}}, "grayscale"}}
	pbv, err := wire.ParamsToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	got, errs := sdk.CheckParams(specs, wire.ParamsFromProto(pbv), "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := sdk.Params{"n": 3, "x": 0.5, "s": "hi", "b": true, "l": []any{1, 2},
		"ops": []any{map[string]any{"resize": map[string]any{"width": 64}}, map[string]any{"grayscale": map[string]any{"keep": false}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if _, err := wire.ParamsToProto(sdk.Params{"f": func() {}}); err == nil {
		t.Error("a func value was encoded")
	}
}

// TestTensorCodecIsPlainProtobuf checks that the split encoding decodes with
// the standard protobuf decoder, and the codec decodes standard encodings.
func TestTensorCodecIsPlainProtobuf(t *testing.T) {
	big := sdk.NewTensor(sdk.Uint8, 2, 3, 128, 128)
	for i := range big.Data {
		big.Data[i] = byte(i * 7)
	}
	lat := sdk.NewTensor(sdk.Float32, 20000, 4)
	lat.Space = "x/z4"
	msgs := []proto.Message{
		&pb.BatchRequest{Handle: 7, Tensor: tensorToProto(big), Seeds: []uint64{1, 2}, Labels: []int64{-1, 3}},
		&pb.TensorResponse{Tensor: tensorToProto(big)},
		&pb.GenerateRequest{Handle: 1, Seeds: make([]uint64, 20000), Latents: tensorToProto(lat)},
		&pb.BatchRequest{Handle: 7, Tensor: tensorToProto(sdk.NewTensor(sdk.Uint8, 1, 1, 2, 2))}, // small: not split
		&pb.Description{Name: "n", Version: "1"},
	}
	c := encoding.GetCodecV2("genpipe-proto")
	for _, m := range msgs {
		bs, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		enc := bs.Materialize()
		std := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(enc, std); err != nil {
			t.Fatalf("%T: standard decoder: %v", m, err)
		}
		if !proto.Equal(std, m) {
			t.Errorf("%T: the standard decoder read a different message", m)
		}
		stdWire, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back := m.ProtoReflect().New().Interface()
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(stdWire)}, back); err != nil {
			t.Fatalf("%T: codec decoder: %v", m, err)
		}
		if !proto.Equal(back, m) {
			t.Errorf("%T: the codec read a different message", m)
		}
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

func (*mirror) Describe() sdk.Description {
	any8 := &sdk.ImageSpec{DType: sdk.Uint8}
	return sdk.Description{Name: "mirror", Version: "1",
		Capabilities: []sdk.CapabilitySpec{{Name: sdk.CapTranslate}, {Name: sdk.CapGenerate}},
		Presets: []sdk.Preset{
			{Name: "same", Capabilities: []sdk.Capability{sdk.CapTranslate}},
			{Name: "alias", Capabilities: []sdk.Capability{sdk.CapTranslate}},
			{Name: "double", Capabilities: []sdk.Capability{sdk.CapTranslate}, Input: any8},
			{Name: "gen", Capabilities: []sdk.Capability{sdk.CapGenerate}, Output: &sdk.ImageSpec{Channels: 1, Height: 16, Width: 16, DType: sdk.Uint8}},
		}}
}

func (p *mirror) Load(_ context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	return &mirrorModel{p: p, preset: req.Preset}, nil
}

type mirrorModel struct {
	p      *mirror
	preset string
}

func (m *mirrorModel) Translate(_ context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	m.p.mu.Lock()
	m.p.retained = append(m.p.retained, in.Data)
	m.p.mu.Unlock()
	switch m.preset {
	case "alias":
		return in.Tensor, nil
	case "double":
		shape := append([]int(nil), in.Shape...)
		shape[len(shape)-1] *= 2
		out := sdk.NewTensor(in.DType, shape...)
		for i := range out.Data {
			out.Data[i] = in.Data[i/2]
		}
		return out, nil
	}
	return &sdk.Tensor{Shape: in.Shape, DType: in.DType, Data: append([]byte(nil), in.Data...)}, nil
}

func (m *mirrorModel) Generate(_ context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	out := sdk.NewTensor(sdk.Uint8, len(req.Seeds), 1, 16, 16)
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
	s pb.PluginServer
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
func sharedPair(t *testing.T, size int) (*Client, pb.PluginServer, *mirror, *SharedMemory) {
	t.Helper()
	impl := &mirror{}
	m := wire.NewInProcessMemory(size)
	peer, err := m.Peer()
	if err != nil {
		t.Fatal(err)
	}
	s, err := wire.NewServer(impl, hclog.NewNullLogger(), peer)
	if err != nil {
		t.Fatal(err)
	}
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
	u8 := sdk.NewTensor(sdk.Uint8, 4, 3, 16, 16)
	for i := range u8.Data {
		u8.Data[i] = byte(i * 31)
	}
	f32 := sdk.FromFloat32(make([]float32, 2*3*8*8), 2, 3, 8, 8)
	for i := range 2 * 3 * 8 * 8 {
		f32.Data[4*i+1] = byte(i)
	}
	tests := []struct {
		name, preset string
		in           *sdk.Tensor
	}{
		{"uint8", "same", u8},
		{"float32", "same", f32},
		{"implementation returns its input", "alias", u8},
		{"answer larger than the room: inline", "double", u8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := c.Load(ctx, sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: tt.preset})
			if err != nil {
				t.Fatal(err)
			}
			before := m.Stats()
			impl.retained = nil
			out, err := c.Translate(ctx, h, &sdk.Batch{Tensor: tt.in})
			if err != nil {
				t.Fatal(err)
			}
			after := m.Stats()
			if after.Calls != before.Calls+1 || after.InUse != 0 || after.Pending != 0 {
				t.Errorf("stats before %+v after %+v: want one more call and nothing held", before, after)
			}
			if len(impl.retained) != 1 || !containsForTest(c.shm.Load(), impl.retained[0]) {
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
			if containsForTest(c.shm.Load(), out.Data) {
				t.Error("the returned tensor points into shared memory")
			}
		})
	}
	h, err := c.Load(ctx, sdk.LoadRequest{Capability: sdk.CapGenerate, Preset: "gen"})
	if err != nil {
		t.Fatal(err)
	}
	before := m.Stats().Calls
	g, err := c.Generate(ctx, h, sdk.GenerateRequest{Seeds: []uint64{5, 6, 7, 8, 9, 10, 11, 12}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Shape, []int{8, 1, 16, 16}) || g.Data[0] != 5 || g.Data[7*256+255] != 12 || m.Stats().Calls != before+1 {
		t.Errorf("generate through shared memory: %v, stats %+v", g.Shape, m.Stats())
	}
}

// containsForTest reports whether b points into m.
func containsForTest(m *SharedMemory, b []byte) bool {
	mem := m.Bytes()
	if len(b) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return at >= start && at < start+uintptr(len(mem))
}

// TestSharedFallsBackWhenFull checks that a call that finds no room goes
// inline, and that small calls never use shared memory.
func TestSharedFallsBackWhenFull(t *testing.T) {
	c, _, _, m := sharedPair(t, 64<<10)
	ctx := context.Background()
	h, err := c.Load(ctx, sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: "same"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name             string
		in               *sdk.Tensor
		calls, fallbacks uint64
	}{
		{"too large for the arena", sdk.NewTensor(sdk.Uint8, 2, 1, 100, 200), 0, 1},
		{"too small to bother", sdk.NewTensor(sdk.Uint8, 1, 1, 2, 2), 0, 0},
		{"fits", sdk.NewTensor(sdk.Uint8, 2, 1, 20, 200), 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := range tt.in.Data {
				tt.in.Data[i] = byte(i)
			}
			before := m.Stats()
			out, err := c.Translate(ctx, h, &sdk.Batch{Tensor: tt.in})
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

// TestTensorFromProtoRefusesReferences: outside the calls that lease
// shared memory, a reference is a peer's mistake.
func TestTensorFromProtoRefusesReferences(t *testing.T) {
	if _, err := tensorFromProto(&pb.Tensor{Shape: []int64{1}, Dtype: pb.DType_UINT8, Shm: &pb.ShmRegion{Offset: 4096, Length: 1}}); !errors.Is(err, ErrSharedMemory) {
		t.Errorf("tensorFromProto accepted a reference: %v", err)
	}
}

// TestOutItemBytesFollowsSizeRule: the room offered for a call's answer is
// the size the preset's rule gives, so an upscaler's answer fits it.
func TestOutItemBytesFollowsSizeRule(t *testing.T) {
	in := sdk.NewTensor(sdk.Uint8, 2, 3, 10, 12)
	for _, tt := range []struct {
		out  sdk.ImageSpec
		want int
	}{
		{sdk.ImageSpec{DType: sdk.Uint8}, 3 * 10 * 12},                            // same
		{sdk.ImageSpec{Channels: 1, DType: sdk.Float32}, 1 * 10 * 12 * 4},         // same size, 1 float channel
		{sdk.ImageSpec{Height: 4, Width: 5, DType: sdk.Uint8}, 3 * 4 * 5},         // fixed
		{sdk.ImageSpec{DType: sdk.Uint8, Size: sdk.ScaleSize(2, 1)}, 3 * 20 * 24}, // x2
		{sdk.ImageSpec{DType: sdk.Uint8, Size: sdk.ScaleSize(1, 2)}, 3 * 5 * 6},   // /2
		{sdk.ImageSpec{DType: sdk.Uint8, Size: sdk.AnySize}, 0},                   // unknown
	} {
		c := &Client{handles: map[Handle]*handleInfo{1: {cap: sdk.CapTranslate, preset: &sdk.Preset{Output: &tt.out}}}}
		if got := c.outItemBytes(1, sdk.CapTranslate, in); got != tt.want {
			t.Errorf("%+v: %d bytes, want %d", tt.out, got, tt.want)
		}
	}
}
