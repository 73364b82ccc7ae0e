package layers

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/ops"
	G "gorgonia.org/gorgonia"
)

// weightedSum is Σ y·r for a fixed random r of y's shape: a loss whose
// gradient in y is r, built from gorgonia's (twice-differentiable) ops.
func weightedSum(b *Builder, y *G.Node, seed uint64) *G.Node {
	if !b.ok(y) {
		return nil
	}
	r := b.Input(fmt.Sprintf("r%d", seed), y.Shape()...)
	nn.NewRNG(seed).Normal(Data(r), 1)
	return b.Apply("weighted_sum", func() (*G.Node, error) {
		p, err := G.HadamardProd(y, r)
		if err != nil {
			return nil, err
		}
		return G.Sum(p)
	})
}

// gradCheck compiles loss(ps) and compares the gradient of every trainable
// parameter (inputs are parameters here) with central finite differences
// on a sample of its elements.
func gradCheck(t *testing.T, name string, ps *Params, build func(b *Builder) *G.Node) {
	t.Helper()
	b := NewBuilder()
	loss := build(b)
	prog, err := Compile(b, loss, ps.Trainable())
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := prog.Run(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	checkGradients(t, name, prog, ps.Trainable(), 11, 1e-2)
}

func randParam(ps *Params, rng *nn.RNG, name string, shape ...int) *Param {
	p := ps.Add(name, shape...)
	rng.Normal(p.Data(), 1)
	return p
}

func TestGroupNormGradients(t *testing.T) {
	for _, groups := range []int{1, 2, 4} {
		ps, rng := NewParams(), nn.NewRNG(uint64(groups))
		x := randParam(ps, rng, "x", 2, 4, 3, 3)
		w := randParam(ps, rng, "weight", 4)
		bias := randParam(ps, rng, "bias", 4)
		gradCheck(t, fmt.Sprintf("groups %d", groups), ps, func(b *Builder) *G.Node {
			y := b.GroupNorm(b.Param(x), groups, w, bias)
			return weightedSum(b, y, 9)
		})
	}
	// Without affine parameters (InstanceNorm), twice in one graph.
	ps, rng := NewParams(), nn.NewRNG(8)
	x := randParam(ps, rng, "x", 2, 4, 3, 3)
	gradCheck(t, "instance norm", ps, func(b *Builder) *G.Node {
		h := b.GroupNorm(b.Param(x), 4, nil, nil)
		h = b.GroupNorm(b.Act(h, ops.ActTanh, 0), 4, nil, nil)
		return weightedSum(b, h, 9)
	})
}

// TestSelfAttentionGradients checks the fused attention gradient, also on
// a map of one position (a softmax over one key) and with the attention
// used twice, so that its gradient accumulates.
func TestSelfAttentionGradients(t *testing.T) {
	for _, s := range [][]int{{2, 6, 2, 3}, {3, 9, 1, 1}, {1, 3, 4, 4}} {
		ps, rng := NewParams(), nn.NewRNG(13)
		x := randParam(ps, rng, "x", s...)
		gradCheck(t, fmt.Sprintf("qkv %v", s), ps, func(b *Builder) *G.Node {
			y := b.SelfAttention(b.Param(x))
			y2 := b.SelfAttention(b.ConcatChannels(y, b.Tanh(y), y))
			return weightedSum(b, b.Add(y, y2), 5)
		})
	}
}

func TestScaleChannelGradients(t *testing.T) {
	ps, rng := NewParams(), nn.NewRNG(17)
	x := randParam(ps, rng, "x", 2, 3, 2, 2)
	s := randParam(ps, rng, "s", 3)
	gradCheck(t, "scale channel", ps, func(b *Builder) *G.Node {
		return weightedSum(b, b.ScaleChannel(b.SiLU(b.Param(x)), b.Param(s)), 3)
	})
}

func TestBatchNormGradients(t *testing.T) {
	for _, training := range []bool{true, false} {
		ps, rng := NewParams(), nn.NewRNG(5)
		x := randParam(ps, rng, "x", 3, 2, 2, 3)
		bn := NewBatchNorm2d(ps, "bn", 2)
		rng.Normal(bn.Weight.Data(), 1)
		rng.Normal(bn.Bias.Data(), 1)
		rng.Uniform(bn.RunningMean.Data(), -1, 1)
		rng.Uniform(bn.RunningVar.Data(), 0.5, 2)
		gradCheck(t, fmt.Sprintf("training %v", training), ps, func(b *Builder) *G.Node {
			return weightedSum(b, b.BatchNorm2d(b.Param(x), bn, training), 9)
		})
	}
}

func TestActivationGradients(t *testing.T) {
	for k := ops.ActKind(0); k.Valid(); k++ {
		ps, rng := NewParams(), nn.NewRNG(7)
		x := randParam(ps, rng, "x", 3, 5)
		// Keep away from ReLU's kink, where finite differences straddle it.
		for i, v := range x.Data() {
			if math.Abs(float64(v)) < 0.05 {
				x.Data()[i] = 0.1
			}
		}
		gradCheck(t, k.String(), ps, func(b *Builder) *G.Node {
			return weightedSum(b, b.Act(b.Param(x), k, 0.2), 3)
		})
	}
}

func TestResampleGradients(t *testing.T) {
	ps, rng := NewParams(), nn.NewRNG(11)
	x := randParam(ps, rng, "x", 2, 3, 2, 3)
	v := randParam(ps, rng, "v", 2, 3)
	y := randParam(ps, rng, "y", 2, 2, 6, 9)
	gradCheck(t, "upsample, sum-pool, add, concat", ps, func(b *Builder) *G.Node {
		u := b.Upsample(b.AddSampleChannel(b.Param(x), b.Param(v)), 3)
		c := b.ConcatChannels(u, b.Param(y), u)
		p := b.SumPool(b.SiLU(c), 3)
		return weightedSum(b, p, 4)
	})
	ps2 := NewParams()
	p := randParam(ps2, rng, "p", 2, 3, 4)
	gradCheck(t, "mse", ps2, func(b *Builder) *G.Node {
		tg := b.Input("t", 2, 3, 4)
		rng.Normal(Data(tg), 1)
		return b.MSE(b.Param(p), tg)
	})
}

// TestUpsampleSecondOrder is the gradient-penalty pattern: the loss is
// ||∂(Σ f(x)·r)/∂x||² with f = sumpool(conv(upsample(x))), differentiated
// in the conv weight, against finite differences of that loss. (A ReLU in f
// would make the penalty jump where a unit changes sign, which finite
// differences cannot follow.)
func TestUpsampleSecondOrder(t *testing.T) {
	ps, rng := NewParams(), nn.NewRNG(13)
	w := randParam(ps, rng, "w", 3, 2, 3, 3)
	b := NewBuilder()
	x := b.Input("x", 2, 2, 3, 3)
	rng.Normal(Data(x), 1)
	f := b.SumPool(b.Conv2d(b.Upsample(x, 2), w, nil, 1, 1), 2)
	s := weightedSum(b, f, 5)
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	gx, err := G.Grad(s, x)
	if err != nil {
		t.Fatal(err)
	}
	pen := b.Apply("penalty", func() (*G.Node, error) {
		sq, err := G.Square(gx[0])
		if err != nil {
			return nil, err
		}
		return G.Sum(sq)
	})
	prog, err := Compile(b, pen, ps.Trainable())
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	checkGradients(t, "penalty", prog, []*Param{w}, len(w.Data())/5, 1e-2)
}

func TestBuilderLayerErrors(t *testing.T) {
	ps := NewParams()
	w := ps.Add("gn.weight", 3)
	bias := ps.Add("gn.bias", 3)
	cases := map[string]func(b *Builder) *G.Node{
		"groups":   func(b *Builder) *G.Node { return b.GroupNorm(b.Input("x", 2, 4, 3, 3), 3, nil, nil) },
		"gn param": func(b *Builder) *G.Node { return b.GroupNorm(b.Input("x", 2, 4, 3, 3), 2, w, bias) },
		"bn": func(b *Builder) *G.Node {
			return b.BatchNorm2d(b.Input("x", 2, 4, 3, 3), NewBatchNorm2d(NewParams(), "bn", 3), true)
		},
		"pool":   func(b *Builder) *G.Node { return b.SumPool(b.Input("x", 2, 4, 3, 3), 2) },
		"add":    func(b *Builder) *G.Node { return b.AddSampleChannel(b.Input("x", 2, 4, 3, 3), b.Input("v", 2, 3)) },
		"concat": func(b *Builder) *G.Node { return b.ConcatChannels(b.Input("x", 2, 4, 3, 3), b.Input("y", 2, 4, 3, 2)) },
		"mse":    func(b *Builder) *G.Node { return b.MSE(b.Input("x", 2, 4), b.Input("y", 4, 2)) },
	}
	for name, c := range cases {
		b := NewBuilder()
		if n := c(b); n != nil || b.Err() == nil {
			t.Errorf("%s: want a builder error, got node %v, error %v", name, n, b.Err())
		}
	}
}

// TestOpsReuseOutputs checks that steady-state runs of the new ops do not
// allocate their outputs again.
func TestOpsReuseOutputs(t *testing.T) {
	ps, rng := NewParams(), nn.NewRNG(3)
	x := randParam(ps, rng, "x", 8, 16, 8, 8)
	w := randParam(ps, rng, "w", 16)
	bias := randParam(ps, rng, "b", 16)
	bn := NewBatchNorm2d(ps, "bn", 16)
	b := NewBuilder()
	h := b.SiLU(b.GroupNorm(b.Param(x), 4, w, bias))
	h = b.BatchNorm2d(h, bn, true)
	h = b.ConcatChannels(b.SumPool(b.Upsample(h, 2), 2), h)
	tg := b.Input("t", h.Shape()...)
	prog, err := Compile(b, b.MSE(h, tg), ps.Trainable())
	if err != nil {
		t.Fatal(err)
	}
	prog.Run()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < 5; i++ {
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	// The tape machine itself allocates a little per instruction; what
	// must not happen is a new output tensor (here 32 KB and up) per op.
	if perRun := (after.TotalAlloc - before.TotalAlloc) / 5; perRun > 64<<10 {
		t.Errorf("a run allocates %d bytes; outputs are not reused", perRun)
	}
}
