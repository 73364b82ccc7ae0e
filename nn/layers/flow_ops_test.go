package layers

import (
	"fmt"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/ops"
	G "gorgonia.org/gorgonia"
)

// TestFlowOpGradients checks the fused flow ops (channel slice, affine
// coupling and its log-determinant, Gaussian log-density) against finite
// differences, for an odd and an even channel count. As in a flow, the
// coupling network's output depends on x's first half through a slice, so
// x's gradient accumulates over two paths.
func TestFlowOpGradients(t *testing.T) {
	for _, c := range []int{3, 4} {
		ps, rng := NewParams(), nn.NewRNG(uint64(c))
		ca, cb := c/2, c-c/2
		x := randParam(ps, rng, "x", 2, c, 2, 3)
		h := randParam(ps, rng, "h", 2, 2*cb, 2, 3)
		p := randParam(ps, rng, "p", 2, 2*c, 2, 3)
		gradCheck(t, fmt.Sprintf("coupling, %d channels", c), ps, func(b *Builder) *G.Node {
			xa := b.Apply("slice", func() (*G.Node, error) { return ops.SliceChannels(b.Param(x), 0, ca) })
			var parts []*G.Node
			for i := 0; i < 2*cb/ca; i++ {
				parts = append(parts, xa)
			}
			nh := b.Add(b.Param(h), b.Tanh(b.ConcatChannels(parts...)))
			y := b.Apply("coupling", func() (*G.Node, error) { return ops.AffineCoupling(b.Param(x), nh, 2) })
			ld := b.Apply("logdet", func() (*G.Node, error) { return ops.CouplingLogDet(nh, 2) })
			lp := b.Apply("gauss", func() (*G.Node, error) { return ops.GaussianLogDensity(y, b.Param(p)) })
			return b.Apply("loss", func() (*G.Node, error) {
				return G.Add(weightedSum(b, y, 3), weightedSum(b, b.Add(ld, lp), 4))
			})
		})
	}
}

// TestFlowOpShapeErrors: mismatched shapes are refused when the graph is
// built, with the expected and the given shape.
func TestFlowOpShapeErrors(t *testing.T) {
	b := NewBuilder()
	x, h := b.Input("x", 2, 3, 2, 2), b.Input("h", 2, 3, 2, 2)
	if _, err := ops.AffineCoupling(x, h, 2); err == nil {
		t.Error("coupling: h with 3 channels for x with 3 accepted (want 4)")
	}
	if _, err := ops.CouplingLogDet(h, 2); err == nil {
		t.Error("logdet: h with an odd channel count accepted")
	}
	if _, err := ops.GaussianLogDensity(x, h); err == nil {
		t.Error("gaussian: parameters with 3 channels for z with 3 accepted (want 6)")
	}
	if _, err := ops.SliceChannels(x, 2, 4); err == nil {
		t.Error("slice [2:4] of 3 channels accepted")
	}
}
