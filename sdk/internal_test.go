package sdk

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
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
	t := NewTensor(Uint8, len(req.Seeds), 1, 2, 2)
	for i, s := range req.Seeds {
		for k := 0; k < 4; k++ {
			t.Data[i*4+k] = byte(s)
		}
	}
	return &pb.TensorResponse{Tensor: tensorToProto(t)}, nil
}

func fakeClient(f *fakeRPC, out *ImageSpec) *Client {
	c := &Client{rpc: f, handles: map[Handle]*handleInfo{}, desc: &Description{Name: "fake"}}
	c.handles[1] = &handleInfo{cap: CapTranslate, preset: &Preset{Name: "p", Output: out}}
	c.handles[2] = &handleInfo{cap: CapGenerate, preset: &Preset{Name: "p", Output: out}}
	return c
}

func sequence(n, item int) *Tensor {
	t := NewTensor(Uint8, n, 1, 1, item)
	for i := range t.Data {
		t.Data[i] = byte(i / item)
	}
	return t
}

func TestClientSplitsBatches(t *testing.T) {
	tests := []struct {
		name      string
		n, item   int
		out       *ImageSpec
		failAbove int
		wantItems []int
	}{
		{"fits in one call", 10, 1 << 10, nil, 0, []int{10}},
		{"1 MiB items", 40, 1 << 20, nil, 0, []int{16, 16, 8}},
		{"output 4x the input", 10, 1 << 20, &ImageSpec{DType: Float32}, 0, []int{4, 4, 2}},
		{"output of fixed larger size", 10, 1 << 20, &ImageSpec{Channels: 1, Height: 1, Width: 8 << 20, DType: Uint8}, 0, []int{2, 2, 2, 2, 2}},
		{"response too large: halves", 16, 1 << 10, nil, 5, []int{4, 4, 4, 4}},
		{"empty batch", 0, 16, nil, 0, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRPC{failAbove: tt.failAbove}
			c := fakeClient(f, tt.out)
			in := sequence(tt.n, tt.item)
			out, err := c.Translate(context.Background(), 1, &Batch{Tensor: in})
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
		out       *ImageSpec
		wantItems []int
	}{
		{"unknown output size: capped count", 150, nil, []int{64, 64, 22}},
		{"known output size", 12, &ImageSpec{Channels: 3, Height: 512, Width: 512, DType: Float32}, []int{5, 5, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRPC{}
			c := fakeClient(f, tt.out)
			seeds := make([]uint64, tt.n)
			for i := range seeds {
				seeds[i] = uint64(i)
			}
			out, err := c.Generate(context.Background(), 2, GenerateRequest{Seeds: seeds})
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
	_, err := c.Translate(context.Background(), 1, &Batch{Tensor: NewTensor(Uint8, 1, 1, 1, MaxMessageBytes)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "plugin fake: translate: message too large: one item is 67108864 bytes") {
		t.Fatalf("got %v", err)
	}
}

// liar is a plugin whose models break the contract in the way its preset
// name says.
type liar struct{}

func (liar) Describe() Description {
	spec := &ImageSpec{Channels: 1, Height: 2, Width: 2, DType: Uint8, Max: 255}
	var presets []Preset
	for _, n := range []string{"ok", "short", "dtype", "nil", "noiface", "nomodel", "panic"} {
		presets = append(presets, Preset{Name: n, Capabilities: []Capability{CapTranslate}, Input: spec, Output: spec})
	}
	return Description{Name: "liar", Version: "1", Capabilities: []CapabilitySpec{{Name: CapTranslate}}, Presets: presets}
}

func (liar) Load(_ context.Context, req LoadRequest) (Model, error) {
	switch req.Preset {
	case "noiface":
		return struct{}{}, nil
	case "nomodel":
		return nil, nil
	}
	return liarModel(req.Preset), nil
}

type liarModel string

func (m liarModel) Translate(_ context.Context, in *Batch) (*Tensor, error) {
	switch m {
	case "short":
		return in.Slice(0, in.Len()-1), nil
	case "dtype":
		return NewTensor(Float32, append([]int(nil), in.Shape...)...), nil
	case "nil":
		return nil, nil
	case "panic":
		var a []int
		_ = a[3]
	}
	return in.Tensor, nil
}

func TestServerChecksTheImplementation(t *testing.T) {
	s, err := newServer(liar{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		preset, want string
		code         codes.Code
	}{
		{"ok", "", codes.OK},
		{"short", "plugin liar: translate: returned 2 items (shape [2 1 2 2]) for a batch of 3", codes.Unknown},
		{"dtype", "plugin liar: translate: returned output is 1x2x2 float32, expected 1x2x2 uint8", codes.Unknown},
		{"nil", "plugin liar: translate: returned no tensor and no error", codes.Unknown},
		{"noiface", "plugin liar: load: model struct {} does not implement sdk.Translator", codes.Unknown},
		{"nomodel", "plugin liar: load: Load returned no model and no error", codes.Unknown},
		{"panic", "plugin liar: translate: panic: runtime error: index out of range [3] with length 0", codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			err := func() error {
				resp, err := s.Load(ctx, &pb.LoadRequest{Capability: "translate", Preset: tt.preset})
				if err != nil {
					return err
				}
				in := tensorToProto(NewTensor(Uint8, 3, 1, 2, 2))
				_, err = s.Translate(ctx, &pb.BatchRequest{Handle: resp.Handle, Tensor: in})
				return err
			}()
			if status.Code(err) != tt.code || (tt.want != "" && status.Convert(err).Message() != tt.want) {
				t.Errorf("got %v (%s), want %q (%s)", err, status.Code(err), tt.want, tt.code)
			}
		})
	}
}

func TestValidateDescription(t *testing.T) {
	good := func() Description {
		img := &ImageSpec{Channels: 1, Height: 28, Width: 28, DType: Uint8, Max: 255}
		return Description{
			Name: "ok", Version: "1",
			Capabilities: []CapabilitySpec{
				{Name: CapTranslate, Params: []Param{
					{Name: "k", Type: Int, Default: 3, Min: Bound(1), Max: Bound(9)},
					{Name: "mode", Type: String, Default: "a", Enum: []string{"a", "b"}},
					{Name: "ops", Type: List, Elem: &Param{Type: Object, OneOf: true, Fields: []Param{{Name: "flip", Type: Bool}}}},
				}},
				{Name: CapEncode},
			},
			Presets: []Preset{{Name: "p", Capabilities: []Capability{CapTranslate, CapEncode}, Input: img, Output: img, Latent: &LatentSpec{Space: "ok/z", Dim: 4}}},
		}
	}
	tests := []struct {
		name   string
		break_ func(d *Description)
		want   string
	}{
		{"good", func(*Description) {}, ""},
		{"no name", func(d *Description) { d.Name = "" }, "description: empty name"},
		{"bad name", func(d *Description) { d.Name = "My Plugin" }, `name "My Plugin" must be lowercase`},
		{"no version", func(d *Description) { d.Version = "" }, "empty version"},
		{"unknown capability", func(d *Description) { d.Capabilities[1].Name = "upscale" }, `capability "upscale": unknown`},
		{"default out of range", func(d *Description) { d.Capabilities[0].Params[0].Default = 12 }, "translate.params.k: default 12 fails its own spec: 12 is out of range [1, 9]"},
		{"default not in enum", func(d *Description) { d.Capabilities[0].Params[1].Default = "c" }, `translate.params.mode: default c fails its own spec`},
		{"empty enum value", func(d *Description) { d.Capabilities[0].Params[1].Enum = []string{"a", ""} }, "empty enum value"},
		{"min above max", func(d *Description) { d.Capabilities[0].Params[0].Min = Bound(10) }, "min 10 is above max 9"},
		{"object without fields", func(d *Description) { d.Capabilities[0].Params[2].Elem.Fields = nil }, "translate.params.ops[]: object has no fields"},
		{"preset capability not declared", func(d *Description) { d.Presets[0].Capabilities = append(d.Presets[0].Capabilities, CapDenoise) }, `preset "p": capability "denoise" is not declared`},
		{"no preset for capability", func(d *Description) { d.Presets[0].Capabilities = d.Presets[0].Capabilities[:1] }, `capability "encode": no preset supports it`},
		{"missing latent", func(d *Description) { d.Presets[0].Latent = nil }, `preset "p": encode needs a Latent spec`},
		{"empty range", func(d *Description) { d.Presets[0].Input = &ImageSpec{Channels: 1, DType: Uint8} }, `preset "p": input: value range [0, 0] is empty`},
		{"bad dtype", func(d *Description) { d.Presets[0].Output = &ImageSpec{Max: 1} }, `preset "p": output: unknown dtype dtype(0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := good()
			tt.break_(&d)
			errs := ValidateDescription(d)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			all := strings.Join(msgs, "\n")
			if tt.want == "" && len(errs) > 0 || tt.want != "" && !strings.Contains(all, tt.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", all, tt.want)
			}
		})
	}
}

func TestParamsRoundTrip(t *testing.T) {
	specs := []Param{
		{Name: "n", Type: Int},
		{Name: "x", Type: Float},
		{Name: "s", Type: String},
		{Name: "b", Type: Bool},
		{Name: "l", Type: List, Elem: &Param{Type: Int}},
		{Name: "ops", Type: List, Elem: &Param{Type: Object, OneOf: true, Fields: []Param{
			{Name: "resize", Type: Object, Fields: []Param{{Name: "width", Type: Int}}},
			{Name: "grayscale", Type: Object, Fields: []Param{{Name: "keep", Type: Bool, Default: false}}},
		}}},
	}
	in := Params{"n": 3, "x": 0.5, "s": "hi", "b": true, "l": []int{1, 2},
		"ops": []any{map[string]any{"resize": map[string]any{"width": 64}}, "grayscale"}}
	pbv, err := paramsToProto(in)
	if err != nil {
		t.Fatal(err)
	}
	got, errs := CheckParams(specs, paramsFromProto(pbv), "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := Params{"n": 3, "x": 0.5, "s": "hi", "b": true, "l": []any{1, 2},
		"ops": []any{map[string]any{"resize": map[string]any{"width": 64}}, map[string]any{"grayscale": map[string]any{"keep": false}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	if _, err := paramsToProto(Params{"f": func() {}}); err == nil {
		t.Error("a func value was encoded")
	}
}

// TestTensorCodecIsPlainProtobuf checks that the split encoding decodes with
// the standard protobuf decoder, and the codec decodes standard encodings.
func TestTensorCodecIsPlainProtobuf(t *testing.T) {
	big := NewTensor(Uint8, 2, 3, 128, 128)
	for i := range big.Data {
		big.Data[i] = byte(i * 7)
	}
	lat := NewTensor(Float32, 20000, 4)
	lat.Space = "x/z4"
	msgs := []proto.Message{
		&pb.BatchRequest{Handle: 7, Tensor: tensorToProto(big), Seeds: []uint64{1, 2}, Labels: []int64{-1, 3}},
		&pb.TensorResponse{Tensor: tensorToProto(big)},
		&pb.GenerateRequest{Handle: 1, Seeds: make([]uint64, 20000), Latents: tensorToProto(lat)},
		&pb.BatchRequest{Handle: 7, Tensor: tensorToProto(NewTensor(Uint8, 1, 1, 2, 2))}, // small: not split
		&pb.Description{Name: "n", Version: "1"},
	}
	c := tensorCodec{}
	for _, m := range msgs {
		bs, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		wire := bs.Materialize()
		std := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(wire, std); err != nil {
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
