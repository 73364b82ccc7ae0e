package layers

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

// TestGradientPenaltyThroughConv checks second derivatives through the
// custom convolution ops, what WGAN-GP needs: the penalty ||∇x D(x)||²
// of a conv critic, differentiated again with respect to the critic's
// weights, against finite differences of the penalty.
func TestGradientPenaltyThroughConv(t *testing.T) {
	ps := NewParams()
	rng := nn.NewRNG(11)
	rng.Normal(ps.Add("c.weight", 3, 2, 3, 3).Data(), 0.4)
	rng.Normal(ps.Add("c.bias", 3).Data(), 0.1)
	rng.Normal(ps.Add("fc.weight", 1, 3*3*3).Data(), 0.4)
	b := NewBuilder()
	x := b.Input("x", 2, 2, 5, 5)
	rng.Normal(Data(x), 1)
	h := b.LeakyReLU(b.Conv2d(x, ps.Get("c.weight"), ps.Get("c.bias"), 2, 1), 0.2)
	h = b.Reshape(h, 2, 27)
	score := b.Linear(h, ps.Get("fc.weight"), nil)
	var gp *G.Node
	b.Apply("penalty", func() (*G.Node, error) {
		s, err := G.Sum(score)
		if err != nil {
			return nil, err
		}
		gx, err := G.Grad(s, x)
		if err != nil {
			return nil, err
		}
		sq, err := G.Square(gx[0])
		if err != nil {
			return nil, err
		}
		gp, err = G.Sum(sq)
		return gp, err
	})
	// The bias only moves LeakyReLU's kinks, so the penalty has no gradient
	// in it (gorgonia reports it as not differentiable): check the weights.
	wrt := []*Param{ps.Get("c.weight"), ps.Get("fc.weight")}
	prog, err := Compile(b, gp, wrt)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	checked := checkGradients(t, "gradient penalty", prog, wrt, 20, 2e-2)
	if checked < 30 {
		t.Fatalf("only %d entries checked", checked)
	}
}
