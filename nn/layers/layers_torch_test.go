package layers_test

import (
	"math"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
	G "gorgonia.org/gorgonia"
)

// fixture reads tensors of a safetensors file written by a testdata script.
type fixture struct {
	t *testing.T
	f *safetensors.File
}

func loadFixture(t *testing.T, path string) fixture {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{t, f}
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

func (fx fixture) shape(name string) []int {
	fx.t.Helper()
	ts := fx.f.Tensor(name)
	if ts == nil {
		fx.t.Fatalf("fixture lacks %q", name)
	}
	return ts.Shape
}

// param makes a parameter from a fixture tensor.
func (fx fixture) param(ps *layers.Params, name string) *layers.Param {
	p := ps.Add(name, fx.shape(name)...)
	copy(p.Data(), fx.get(name))
	return p
}

func (fx fixture) compare(name string, got []float32, tol float64) {
	fx.t.Helper()
	want := fx.get(name)
	if len(got) != len(want) {
		fx.t.Errorf("%s: %d values, PyTorch has %d", name, len(got), len(want))
		return
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/(1+math.Abs(float64(want[i]))))
	}
	if worst > tol {
		fx.t.Errorf("%s: max difference from PyTorch %.3g", name, worst)
	}
}

// runLayer computes y = layer(x) and the gradients of Σ y·r for the
// fixture's x and r, and compares y and every gradient with PyTorch's.
func runLayer(t *testing.T, fx fixture, prefix string, ps *layers.Params, layer func(b *layers.Builder, x *G.Node) *G.Node) {
	t.Helper()
	x := fx.param(ps, prefix+".x")
	b := layers.NewBuilder()
	y := layer(b, b.Param(x))
	r := b.Input("r", fx.shape(prefix+".r")...)
	copy(layers.Data(r), fx.get(prefix+".r"))
	loss := b.Apply("loss", func() (*G.Node, error) {
		p, err := G.HadamardProd(y, r)
		if err != nil {
			return nil, err
		}
		return G.Sum(p)
	})
	prog, err := layers.Compile(b, loss, ps.Trainable(), y)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare(prefix+".y", prog.Output(1), 1e-5)
	for i, p := range ps.Trainable() {
		name := p.Name[strings.LastIndexByte(p.Name, '.')+1:]
		fx.compare(prefix+".d"+name, prog.Grad(i), 1e-5)
	}
}

func TestLayersMatchPyTorch(t *testing.T) {
	file := loadFixture(t, "testdata/torch_layers.safetensors").f
	t.Run("GroupNorm", func(t *testing.T) {
		fx := fixture{t, file}
		ps := layers.NewParams()
		w, bias := fx.param(ps, "gn.weight"), fx.param(ps, "gn.bias")
		runLayer(t, fx, "gn", ps, func(b *layers.Builder, x *G.Node) *G.Node { return b.GroupNorm(x, 3, w, bias) })
	})
	t.Run("BatchNorm2d", func(t *testing.T) {
		fx := fixture{t, file}
		ps := layers.NewParams()
		bn := layers.NewBatchNorm2d(layers.NewParams(), "bn", 4)
		copy(bn.Weight.Data(), fx.get("bn.weight"))
		copy(bn.Bias.Data(), fx.get("bn.bias"))
		copy(bn.RunningMean.Data(), fx.get("bn.running_mean0"))
		copy(bn.RunningVar.Data(), fx.get("bn.running_var0"))
		// The layer's weight and bias are added to ps so their gradients
		// are computed alongside x's.
		layers.AppendParams(ps, bn.Weight, bn.Bias)
		runLayer(t, fx, "bn", ps, func(b *layers.Builder, x *G.Node) *G.Node { return b.BatchNorm2d(x, bn, true) })
		fx.compare("bn.running_mean1", bn.RunningMean.Data(), 1e-6)
		fx.compare("bn.running_var1", bn.RunningVar.Data(), 1e-6)
		fx.compare("bn.num_batches_tracked1", bn.NumBatchesTracked.Data(), 0)

		ps = layers.NewParams()
		layers.AppendParams(ps, bn.Weight, bn.Bias)
		runLayer(t, fx, "bn_eval", ps, func(b *layers.Builder, x *G.Node) *G.Node { return b.BatchNorm2d(x, bn, false) })
		fx.compare("bn.running_mean1", bn.RunningMean.Data(), 0)
	})
	t.Run("Upsample", func(t *testing.T) {
		fx := fixture{t, file}
		runLayer(t, fx, "up", layers.NewParams(), func(b *layers.Builder, x *G.Node) *G.Node { return b.Upsample(x, 2) })
	})
	t.Run("SiLU", func(t *testing.T) {
		fx := fixture{t, file}
		runLayer(t, fx, "silu", layers.NewParams(), func(b *layers.Builder, x *G.Node) *G.Node { return b.SiLU(x) })
	})
	t.Run("SelfAttention", func(t *testing.T) {
		fx := fixture{t, file}
		runLayer(t, fx, "attn", layers.NewParams(), func(b *layers.Builder, x *G.Node) *G.Node { return b.SelfAttention(x) })
	})
}
