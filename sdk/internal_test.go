package sdk

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// liar is a plugin whose models break the contract in the way its preset
// name says.
type liar struct{}

func (liar) Describe() Description {
	spec := &ImageSpec{Channels: 1, Height: 2, Width: 2, DType: Uint8, Max: 255}
	var presets []Preset
	for _, n := range []string{"ok", "short", "dtype", "nil", "noiface", "nomodel", "panic", "widen", "widenbad", "scored", "undeclared", "shortscore"} {
		presets = append(presets, Preset{Name: n, Capabilities: []Capability{CapTranslate}, Input: spec, Output: spec})
	}
	return Description{Name: "liar", Version: "1", Capabilities: []CapabilitySpec{{Name: CapTranslate, Scores: []ScoreSpec{{Name: "s"}, {Name: "t"}}}}, Presets: presets}
}

func (liar) Load(_ context.Context, req LoadRequest) (Model, error) {
	switch req.Preset {
	case "noiface":
		return struct{}{}, nil
	case "nomodel":
		return nil, nil
	case "widen", "widenbad":
		return widener{bad: req.Preset == "widenbad"}, nil
	}
	return liarModel(req.Preset), nil
}

// widener refines its preset's 1-channel output to 3 channels at load
// (OutputSpecer); the bad one then returns 1 channel anyway.
type widener struct{ bad bool }

func (w widener) OutputSpec() *ImageSpec { return &ImageSpec{Channels: 3, DType: Uint8, Max: 255} }

func (w widener) Translate(_ context.Context, in *Batch) (*Tensor, error) {
	if w.bad {
		return in.Tensor, nil
	}
	return NewTensor(Uint8, in.Len(), 3, in.Shape[2], in.Shape[3]), nil
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
	case "scored", "undeclared", "shortscore":
		out := *in.Tensor
		n := in.Len()
		out.Scores = map[string][]float64{"s": make([]float64, n)}
		switch m {
		case "undeclared":
			out.Scores["u"] = make([]float64, n)
		case "shortscore":
			out.Scores["t"] = make([]float64, n-1)
		}
		return &out, nil
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
		{"widen", "", codes.OK},
		{"widenbad", "plugin liar: translate: returned output is 1x2x2 uint8, expected 3x2x2 uint8", codes.Unknown},
		{"scored", "", codes.OK},
		{"undeclared", `plugin liar: translate: returned score "u", which the capability does not declare (it declares s, t)`, codes.Unknown},
		{"shortscore", `plugin liar: translate: returned 2 values of score "t" for a batch of 3`, codes.Unknown},
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
	// gen adds a generate preset g whose data are latents (lat nil:
	// none) and whose output is out.
	gen := func(lat *LatentSpec, out *ImageSpec) func(d *Description) {
		return func(d *Description) {
			d.Capabilities = append(d.Capabilities, CapabilitySpec{Name: CapGenerate})
			d.Presets = append(d.Presets, Preset{Name: "g", Capabilities: []Capability{CapGenerate, CapTrain}, LatentData: lat, Output: out})
			d.Capabilities = append(d.Capabilities, CapabilitySpec{Name: CapTrain})
		}
	}
	img := &ImageSpec{Channels: 1, DType: Float32, Max: 1}
	tests := []struct {
		name   string
		break_ func(d *Description)
		want   string
	}{
		{"good", func(*Description) {}, ""},
		{"latent data", gen(&LatentSpec{Space: "vae/z", Dim: 4}, nil), ""},
		{"generate of nothing", gen(nil, nil), `preset "g": generate needs an Output image spec, or LatentData when it emits latents`},
		{"latent data and output", gen(&LatentSpec{Space: "vae/z", Dim: 4}, img), `preset "g": latent data and an Output image spec: generate emits one or the other`},
		{"latent data without space", gen(&LatentSpec{Dim: 4}, nil), `preset "g": latent data: empty space id`},
		{"latent data without dim", gen(&LatentSpec{Space: "vae/z"}, nil), `preset "g": latent data: dim 0, want > 0`},
		{"no name", func(d *Description) { d.Name = "" }, "description: empty name"},
		{"scores", func(d *Description) { d.Capabilities[0].Scores = []ScoreSpec{{Name: "bits_per_dim"}} }, ""},
		{"bad score name", func(d *Description) { d.Capabilities[0].Scores = []ScoreSpec{{Name: "Bits/dim"}} }, `capability "translate": score "Bits/dim": a score name must be lowercase`},
		{"score twice", func(d *Description) { d.Capabilities[0].Scores = []ScoreSpec{{Name: "a"}, {Name: "a"}} }, `capability "translate": score "a" declared twice`},
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
		{"scale", func(d *Description) { d.Presets[0].Output = &ImageSpec{DType: Uint8, Max: 255, Size: ScaleSize(3, 2)} }, ""},
		{"any", func(d *Description) { d.Presets[0].Output = &ImageSpec{DType: Uint8, Max: 255, Size: AnySize} }, ""},
		{"scale without factor", func(d *Description) {
			d.Presets[0].Output = &ImageSpec{DType: Uint8, Max: 255, Size: Size{Rule: SizeScale}}
		}, `preset "p": output: size rule "scale" needs a factor Num/Den with both > 0, got 0/0`},
		{"scale with a size", func(d *Description) {
			d.Presets[0].Output = &ImageSpec{Height: 28, Width: 28, DType: Uint8, Max: 255, Size: ScaleSize(2, 1)}
		}, `preset "p": output: size rule "scale" with a fixed size 28x28`},
		{"fixed without a size", func(d *Description) { d.Presets[0].Output = &ImageSpec{DType: Uint8, Max: 255, Size: FixedSize} }, `size rule "fixed" needs Height and Width, got 0x0`},
		{"unknown size rule", func(d *Description) {
			d.Presets[0].Output = &ImageSpec{DType: Uint8, Max: 255, Size: Size{Rule: "double"}}
		}, `unknown size rule "double"`},
		{"factor without scale", func(d *Description) {
			d.Presets[0].Output = &ImageSpec{DType: Uint8, Max: 255, Size: Size{Rule: SizeAny, Num: 2, Den: 1}}
		}, `size factor 2/1 set with rule "any"`},
		{"size rule on input", func(d *Description) { d.Presets[0].Input = &ImageSpec{DType: Uint8, Max: 255, Size: ScaleSize(2, 1)} }, `preset "p": input: size rule scale x2 is for outputs`},
		{"pattern", func(d *Description) { d.Capabilities[0].Params[1].Pattern = "[a-c]" }, ""},
		{"bad pattern", func(d *Description) { d.Capabilities[0].Params[1].Pattern = "(a" }, `translate.params.mode: invalid pattern "(a": error parsing regexp: missing closing ): ` + "`^(?:(a)$`"},
		{"default fails pattern", func(d *Description) { d.Capabilities[0].Params[1].Pattern = "b" }, `translate.params.mode: default a fails its own spec: expected a string matching b, got "a"`},
		{"pattern on an int", func(d *Description) { d.Capabilities[0].Params[0].Pattern = "[0-9]" }, `translate.params.k: pattern set on a int`},
		{"unknown format", func(d *Description) { d.Capabilities[0].Params[1].Format = "colour" }, `translate.params.mode: unknown format "colour" (want one of [color duration image])`},
		{"format on a bool", func(d *Description) { d.Capabilities[0].Params[2].Elem.Fields[0].Format = FormatColor }, `translate.params.ops[].flip: format set on a bool`},
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
