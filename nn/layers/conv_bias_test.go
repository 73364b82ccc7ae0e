package layers

import (
	"fmt"
	"testing"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

// TestConvBiasGradients checks the convolution with its bias (and ReLU)
// fused into the output pass against finite differences, for stride 1 and
// 2, and its values against the unfused graph (Conv2d without bias, then
// AddChannel, then ReLU): the same float32 operations in the same order,
// so the same bits.
func TestConvBiasGradients(t *testing.T) {
	for _, stride := range []int{1, 2} {
		for _, relu := range []bool{false, true} {
			ps, rng := NewParams(), nn.NewRNG(uint64(11+stride))
			x := randParam(ps, rng, "x", 2, 3, 5, 5)
			w := randParam(ps, rng, "w", 4, 3, 3, 3)
			bias := randParam(ps, rng, "b", 4)
			build := func(b *Builder) *G.Node {
				if relu {
					return b.Conv2dReLU(b.Param(x), w, bias, stride, 1)
				}
				return b.Conv2d(b.Param(x), w, bias, stride, 1)
			}
			name := fmt.Sprintf("stride %d, relu %v", stride, relu)
			// Finite differences straddle ReLU's kink when a
			// pre-activation is within eps of 0: with small weights and
			// biases of ±2, each channel is all active or all off (the
			// value check below covers mixed signs).
			if relu {
				for i := range w.Data() {
					w.Data()[i] *= 0.1
				}
				copy(bias.Data(), []float32{2, -2, 1.5, -1.5})
			}
			gradCheck(t, name, ps, func(b *Builder) *G.Node { return weightedSum(b, build(b), 5) })

			rng.Normal(bias.Data(), 0.5) // mixed signs within each channel
			b := NewBuilder()
			fused := build(b)
			ref := b.AddChannel(b.Conv2d(b.Param(x), w, nil, stride, 1), b.Param(bias), "bias")
			if relu {
				ref = b.ReLU(ref)
			}
			prog, err := Compile(b, nil, nil, fused, ref)
			if err != nil {
				t.Fatal(err)
			}
			if err := prog.Run(); err != nil {
				t.Fatal(err)
			}
			got, want := prog.Output(0), prog.Output(1)
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("%s: fused[%d] = %v, unfused %v", name, i, got[i], want[i])
				}
			}
		}
	}
}
