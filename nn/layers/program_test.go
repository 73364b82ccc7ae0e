package layers

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

// tinyNet is conv -> leaky -> convT -> linear -> bce, covering every custom
// op, sized so finite differences are cheap.
func tinyNet(ps *Params, b *Builder, x, t *G.Node) *G.Node {
	h := b.Conv2d(x, ps.Get("c.weight"), ps.Get("c.bias"), 2, 1)
	h = b.LeakyReLU(h, 0.2)
	h = b.ConvTranspose2d(h, ps.Get("ct.weight"), ps.Get("ct.bias"), 2, 1, 0)
	h = b.Reshape(h, 2, 2*6*6)
	h = b.Linear(h, ps.Get("fc.weight"), ps.Get("fc.bias"))
	return b.BCEWithLogitsSum(h, t)
}

func tinyParams(seed uint64) *Params {
	ps := NewParams()
	rng := nn.NewRNG(seed)
	for _, p := range []struct {
		n     string
		shape []int
	}{{"c.weight", []int{3, 2, 4, 4}}, {"c.bias", []int{3}}, {"ct.weight", []int{3, 2, 4, 4}}, {"ct.bias", []int{2}}, {"fc.weight", []int{5, 72}}, {"fc.bias", []int{5}}} {
		rng.Normal(ps.Add(p.n, p.shape...).Data(), 0.5)
	}
	return ps
}

func TestGradientsMatchFiniteDifferences(t *testing.T) {
	ps := tinyParams(3)
	b := NewBuilder()
	x := b.Input("x", 2, 2, 6, 6)
	tg := b.Input("t", 2, 5)
	rng := nn.NewRNG(4)
	rng.Normal(Data(x), 1)
	rng.Uniform(Data(tg), 0, 1)
	loss := tinyNet(ps, b, x, tg)
	prog, err := Compile(b, loss, ps.Trainable())
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	base := prog.Scalar(0)
	checkGradients(t, "tiny net", prog, ps.Trainable(), 7, 2e-2)
	prog.Run()
	if got := prog.Scalar(0); got != base {
		t.Errorf("loss changed after restoring weights: %v vs %v", got, base)
	}
}
