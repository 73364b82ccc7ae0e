package layers_test

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// TestTranslateLayersMatchPyTorch reproduces the forward values and
// gradients that testdata/torch_translate.py recorded for the translate
// family's layers.
func TestTranslateLayersMatchPyTorch(t *testing.T) {
	file := loadFixture(t, "testdata/torch_translate.safetensors").f
	for _, tc := range []struct{ prefix string }{{"pad3"}, {"pad1"}} {
		t.Run("ReflectionPad2d/"+tc.prefix, func(t *testing.T) {
			fx := fixture{t, file}
			pad := int(tc.prefix[3] - '0')
			runLayer(t, fx, tc.prefix, layers.NewParams(), func(b *layers.Builder, x *G.Node) *G.Node {
				return b.ReflectionPad2d(x, pad)
			})
		})
	}
	t.Run("InstanceNorm2d", func(t *testing.T) {
		fx := fixture{t, file}
		ps := layers.NewParams()
		in := layers.NewScope(layers.NewParams(), nn.NewRNG(1)).InstanceNorm2d("in", 4, false)
		runLayer(t, fx, "in", ps, in.Forward)
	})
	t.Run("InstanceNorm2d/affine", func(t *testing.T) {
		fx := fixture{t, file}
		ps := layers.NewParams()
		in := layers.NewScope(layers.NewParams(), nn.NewRNG(1)).InstanceNorm2d("in_affine", 4, true)
		copy(in.Weight.Data(), fx.get("in_affine.weight"))
		copy(in.Bias.Data(), fx.get("in_affine.bias"))
		layers.AppendParams(ps, in.Weight, in.Bias)
		runLayer(t, fx, "in_affine", ps, in.Forward)
	})
	t.Run("Dropout", func(t *testing.T) {
		fx := fixture{t, file}
		runLayer(t, fx, "drop", layers.NewParams(), func(b *layers.Builder, x *G.Node) *G.Node {
			y, m := b.Dropout(x, "drop", 0.5)
			if m != nil {
				copy(layers.Data(m.Node), fx.get("drop.mask"))
			}
			return y
		})
	})
	t.Run("L1", func(t *testing.T) {
		fx := fixture{t, file}
		ps := layers.NewParams()
		pred, target := fx.param(ps, "l1.pred"), fx.param(ps, "l1.target")
		b := layers.NewBuilder()
		loss := b.L1(b.Param(pred), b.Param(target))
		prog, err := layers.Compile(b, loss, ps.Trainable())
		if err != nil {
			t.Fatal(err)
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		fx.compare("l1.loss", prog.Output(0), 1e-6)
		fx.compare("l1.dpred", prog.Grad(0), 1e-7)
		fx.compare("l1.dtarget", prog.Grad(1), 1e-7)
	})
	t.Run("ResnetBlock", func(t *testing.T) {
		fx := fixture{t, file}
		ps := layers.NewParams()
		blk := newResBlock(layers.NewScope(ps, nn.NewRNG(1)).In("res"), 4)
		for _, p := range ps.All() {
			copy(p.Data(), fx.get(p.Name))
		}
		x := fx.param(ps, "res.x")
		b := layers.NewBuilder()
		y := blk.forward(b, b.Param(x))
		r := b.Input("r", fx.shape("res.r")...)
		copy(layers.Data(r), fx.get("res.r"))
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
		fx.compare("res.y", prog.Output(1), 1e-5)
		for i, p := range ps.Trainable() {
			want := "res.d" + p.Name[len("res"):]
			if p.Name == "res.x" {
				want = "res.dx"
			}
			fx.compare(want, prog.Grad(i), 1e-5)
		}
	})
}
