package diffusion

import (
	"math"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// fixture reads testdata/torch_diffusion.safetensors, written by
// testdata/torch_diffusion.py fixture.
type fixture struct {
	t *testing.T
	f *safetensors.File
}

func (fx fixture) get(name string) []float32 {
	fx.t.Helper()
	ts := fx.f.Tensor(name)
	if ts == nil {
		fx.t.Fatalf("fixture lacks %q", name)
	}
	v, err := ts.Float32()
	if err != nil {
		fx.t.Fatal(err)
	}
	return v
}

func (fx fixture) compare(name string, got []float32, tol float64) {
	fx.t.Helper()
	want := fx.get(name)
	if len(got) != len(want) {
		fx.t.Fatalf("%s: %d values, PyTorch has %d", name, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/(1+math.Abs(float64(want[i]))))
	}
	if worst > tol {
		fx.t.Errorf("%s: max difference from PyTorch %.3g (tolerance %.g)", name, worst, tol)
	}
}

// TestMatchesPyTorch loads the twin's state_dicts (a small U-Net with
// attention and labels, an MLP) into the Go models and must reproduce the
// twin's predicted noise, and its cosine schedule.
func TestMatchesPyTorch(t *testing.T) {
	f, err := safetensors.ReadFile("testdata/torch_diffusion.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	fx := fixture{t, f}
	for _, c := range []struct {
		prefix string
		arch   Arch
	}{
		{"unet", Arch{Kind: UNet, Ch: 1, Size: 8, Base: 8, TDim: 16, Groups: 2, Attn: true, Classes: 3}},
		{"mlp", Arch{Kind: MLP, Ch: 6, Base: 12, Blocks: 2, TDim: 8, Classes: 3}},
	} {
		t.Run(c.prefix, func(t *testing.T) {
			fx := fixture{t, f}
			m, err := NewModel(c.arch, nn.NewRNG(1))
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, ts := range f.Tensors {
				if strings.HasPrefix(ts.Name, c.prefix+".") && !strings.HasPrefix(ts.Name, c.prefix+".io.") {
					n++
				}
			}
			// The data shift and scale buffers are applied outside the
			// network (the twin has none).
			if n != len(m.Params.Trainable()) {
				t.Fatalf("the twin has %d tensors, the Go model %d:\n%s", n, len(m.Params.Trainable()), m.Params.Names())
			}
			for _, p := range m.Params.Trainable() {
				v := fx.get(c.prefix + "." + p.Name)
				if len(v) != len(p.Data()) {
					t.Fatalf("%s: %d values, PyTorch %d", p.Name, len(p.Data()), len(v))
				}
				copy(p.Data(), v)
			}
			x := fx.get(c.prefix + ".io.x")
			ts, ls := fx.get(c.prefix+".io.t"), fx.get(c.prefix+".io.labels")
			b := layers.NewBuilder()
			in := m.NewInputs(b, len(ts))
			copy(layers.Data(in.X), x)
			tf := make([]float64, len(ts))
			labels := make([]int, len(ls))
			for i := range ts {
				tf[i], labels[i] = float64(ts[i]), int(ls[i])
			}
			sinusoidal(layers.Data(in.Feats), tf, c.arch.features())
			if c.prefix == "unet" {
				fx.compare("unet.io.feats", layers.Data(in.Feats), 1e-6)
			}
			oneHot(layers.Data(in.Labels), labels, c.arch.Classes)
			prog, err := layers.Compile(b, nil, nil, m.Forward(b, in))
			if err != nil {
				t.Fatal(err)
			}
			if err := prog.Run(); err != nil {
				t.Fatal(err)
			}
			fx.compare(c.prefix+".io.y", prog.Output(0), 2e-5)
		})
	}
	ab := Cosine(T).AlphaBar
	got := make([]float32, len(ab))
	for i, v := range ab {
		got[i] = float32(v)
	}
	fx.compare("schedule.alpha_bar", got, 1e-6)
}
