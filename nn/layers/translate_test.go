package layers

import (
	"math"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

func TestTranslateGradients(t *testing.T) {
	ps, rng := NewParams(), nn.NewRNG(21)
	x := randParam(ps, rng, "x", 2, 3, 4, 5)
	// Two paddings in a row (the second pads padded pixels) and a tanh
	// between, so the adjoint is checked against non-constant gradients.
	gradCheck(t, "reflection pad", ps, func(b *Builder) *G.Node {
		h := b.ReflectionPad2d(b.Param(x), 1)
		h = b.ReflectionPad2d(b.Tanh(h), 2)
		return weightedSum(b, h, 4)
	})

	// L1 scaled by the element count, so that its gradients (±1/n) are
	// well above the check's tolerance; in both arguments.
	ps, rng = NewParams(), nn.NewRNG(24)
	pred := randParam(ps, rng, "pred", 2, 3, 4, 5)
	target := randParam(ps, rng, "target", 2, 3, 4, 5)
	gradCheck(t, "L1", ps, func(b *Builder) *G.Node {
		l := b.Scale(b.L1(b.Tanh(b.Param(pred)), b.Param(target)), 120)
		return b.Add(l, b.Scale(b.L1(b.Param(pred), b.Param(target)), 60))
	})

	ps, rng = NewParams(), nn.NewRNG(22)
	x = randParam(ps, rng, "x", 2, 3, 4, 4)
	in := NewScope(ps, rng).InstanceNorm2d("in", 3, true)
	rng.Normal(in.Weight.Data(), 1)
	rng.Normal(in.Bias.Data(), 1)
	gradCheck(t, "instance norm + dropout", ps, func(b *Builder) *G.Node {
		y, m := b.Dropout(in.Forward(b, b.Param(x)), "drop", 0.3)
		if m != nil {
			if err := m.Fill([]uint64{1, 2}); err != nil {
				t.Fatal(err)
			}
		}
		return weightedSum(b, y, 9)
	})
}

// TestReflectionPadSecondOrder differentiates through the pad's
// derivative (its adjoint) and the adjoint's (the pad), as a gradient
// penalty ||∇x D(x)||² of a critic with reflection padding does: ∇x runs
// through the adjoint applied to a value that depends on the final
// layer's weight.
func TestReflectionPadSecondOrder(t *testing.T) {
	ps, rng := NewParams(), nn.NewRNG(23)
	rng.Normal(ps.Add("c.weight", 3, 2, 3, 3).Data(), 0.4)
	rng.Normal(ps.Add("fc.weight", 1, 3*6*7).Data(), 0.4)
	b := NewBuilder()
	x := b.Input("x", 2, 2, 4, 5)
	rng.Normal(Data(x), 1)
	h := b.LeakyReLU(b.Conv2d(x, ps.Get("c.weight"), nil, 1, 1), 0.2)
	h = b.Reshape(b.ReflectionPad2d(h, 1), 2, 3*6*7)
	score := b.Linear(h, ps.Get("fc.weight"), nil)
	gp := b.Apply("penalty", func() (*G.Node, error) {
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
		return G.Sum(sq)
	})
	wrt := ps.Trainable()
	prog, err := Compile(b, gp, wrt)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	if n := checkGradients(t, "pad gradient penalty", prog, wrt, 20, 2e-2); n < 30 {
		t.Fatalf("only %d entries checked", n)
	}
}

// TestDropoutMask checks the mask's statistics and that an item's mask
// depends on its seed alone: not on the batch, its position there or the
// run.
func TestDropoutMask(t *testing.T) {
	const p = 0.3
	shape := []int{3, 4, 16, 16}
	per := 4 * 16 * 16
	m := make([]float32, 3*per)
	if err := FillDropoutMask(m, shape, p, []uint64{7, 8, 9}); err != nil {
		t.Fatal(err)
	}
	keep := float32(1 / (1 - p))
	dropped := 0
	for _, v := range m {
		switch v {
		case 0:
			dropped++
		case keep:
		default:
			t.Fatalf("mask value %v, want 0 or %v", v, keep)
		}
	}
	// 3072 Bernoulli(0.3) draws: the standard deviation of the fraction is
	// 0.008; 5 sigma is 0.04.
	if frac := float64(dropped) / float64(len(m)); math.Abs(frac-p) > 0.04 {
		t.Errorf("dropped fraction %v, want about %v", frac, p)
	}
	// Item 8 alone, and in another batch at another position.
	alone := make([]float32, per)
	if err := FillDropoutMask(alone, []int{1, 4, 16, 16}, p, []uint64{8}); err != nil {
		t.Fatal(err)
	}
	other := make([]float32, 2*per)
	if err := FillDropoutMask(other, []int{2, 4, 16, 16}, p, []uint64{8, 100}); err != nil {
		t.Fatal(err)
	}
	if !equalF32(alone, m[per:2*per]) || !equalF32(alone, other[:per]) {
		t.Error("item 8's mask depends on its batch")
	}
	if equalF32(m[:per], m[per:2*per]) {
		t.Error("items 7 and 8 have the same mask")
	}

	// Through a compiled program: refilled per run, per item, and two
	// layers of one shape get different masks from the same seeds.
	run := func(seeds []uint64) (y1, y2 []float32) {
		b := NewBuilder()
		x := b.Input("x", len(seeds), 50)
		for i := range Data(x) {
			Data(x)[i] = 1
		}
		a, m1 := b.Dropout(x, "a", 0.5)
		c, m2 := b.Dropout(x, "b", 0.5)
		prog, err := Compile(b, nil, nil, a, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*DropoutMask{m1, m2} {
			if err := m.Fill(seeds); err != nil {
				t.Fatal(err)
			}
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), prog.Output(0)...), append([]float32(nil), prog.Output(1)...)
	}
	a1, b1 := run([]uint64{5, 6})
	a2, _ := run([]uint64{6})
	if !equalF32(a1[50:], a2) {
		t.Error("dropout output of item 6 depends on its batch")
	}
	if equalF32(a1, b1) {
		t.Error("two dropout layers drew the same mask")
	}
}

// TestDropoutRefill runs one compiled program with new seeds: the noise
// changes with the seeds and comes back with them.
func TestDropoutRefill(t *testing.T) {
	b := NewBuilder()
	x := b.Input("x", 2, 40)
	for i := range Data(x) {
		Data(x)[i] = 1
	}
	y, m := b.Dropout(x, "d", 0.5)
	prog, err := Compile(b, nil, nil, y)
	if err != nil {
		t.Fatal(err)
	}
	run := func(seeds ...uint64) []float32 {
		if err := m.Fill(seeds); err != nil {
			t.Fatal(err)
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), prog.Output(0)...)
	}
	first, second, again := run(1, 2), run(3, 4), run(1, 2)
	if equalF32(first, second) {
		t.Error("new seeds gave the same output")
	}
	if !equalF32(first, again) {
		t.Error("the same seeds gave a different output")
	}
}

func TestDropoutUnfilledIsNaN(t *testing.T) {
	b := NewBuilder()
	x := b.Input("x", 2, 3)
	y, _ := b.Dropout(x, "d", 0.5)
	prog, err := Compile(b, nil, nil, y)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	if v := prog.Output(0)[0]; !math.IsNaN(float64(v)) {
		t.Errorf("output %v before the mask was filled, want NaN", v)
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTranslateErrors(t *testing.T) {
	ps := NewParams()
	in := NewScope(ps, nn.NewRNG(1)).In("gen").InstanceNorm2d("2", 8, false)
	for _, tc := range []struct {
		name  string
		build func(b *Builder)
		want  string
	}{
		{"pad too large", func(b *Builder) { b.ReflectionPad2d(b.Input("x", 1, 2, 3, 5), 3) },
			"reflection_pad 3: input (1, 2, 3, 5): expected padding in [0, 3) (smaller than height and width), got 3"},
		{"pad 3-D", func(b *Builder) { b.ReflectionPad2d(b.Input("x", 2, 3, 5), 1) },
			"reflection_pad 1: input (2, 3, 5): expected [N, C, H, W]"},
		{"instance norm channels", func(b *Builder) { in.Forward(b, b.Input("x", 1, 4, 3, 3)) },
			"instance_norm gen.2: input (1, 4, 3, 3): expected [N, 8, H, W] with more than one pixel"},
		{"instance norm 1x1", func(b *Builder) { in.Forward(b, b.Input("x", 4, 8, 1, 1)) },
			"instance_norm gen.2: input (4, 8, 1, 1): expected [N, 8, H, W] with more than one pixel"},
		{"dropout p", func(b *Builder) { b.Dropout(b.Input("x", 2, 3), "up.3", 1) },
			"dropout up.3: drop probability 1: expected 0 <= p < 1"},
		{"l1 shapes", func(b *Builder) { b.L1(b.Input("p", 2, 3), b.Input("t", 3, 2)) },
			"l1: prediction (2, 3) and target (3, 2) differ in shape"},
		{"add shapes", func(b *Builder) { b.Add(b.Input("a", 2, 3), b.Input("c", 2, 4)) },
			"add: shapes (2, 3) and (2, 4) differ"},
	} {
		b := NewBuilder()
		tc.build(b)
		if b.Err() == nil || b.Err().Error() != tc.want {
			t.Errorf("%s: error %v, want %q", tc.name, b.Err(), tc.want)
		}
	}

	b := NewBuilder()
	_, m := b.Dropout(b.Input("x", 2, 3), "d", 0.5)
	if err := m.Fill([]uint64{1}); err == nil || !strings.Contains(err.Error(), "dropout d: mask of shape [2 3]: expected 2 seeds (one per item), got 1") {
		t.Errorf("fill with too few seeds: %v", err)
	}
	if err := FillDropoutMask(make([]float32, 5), []int{2, 3}, 0.5, []uint64{1, 2}); err == nil || err.Error() != "mask of shape [2 3]: expected 6 values, got 5" {
		t.Errorf("fill a short buffer: %v", err)
	}
}

// BenchmarkTranslateLayers times forward, L1 loss and backward of the
// translate generator's cheap layers alone at its shapes, batch 8 (the L1
// cases are the loss alone): instance norm (GroupNorm with groups = C,
// without affine), reflection padding, and the residual add, fused and
// through gorgonia's G.Add for comparison.
func BenchmarkTranslateLayers(b *testing.B) {
	for _, tc := range []struct {
		name  string
		shape []int
		layer func(bd *Builder, x *G.Node) *G.Node
	}{
		// The loss alone, to subtract.
		{"L1/8x128x7x7", []int{8, 128, 7, 7}, func(bd *Builder, x *G.Node) *G.Node { return x }},
		{"L1/8x32x28x28", []int{8, 32, 28, 28}, func(bd *Builder, x *G.Node) *G.Node { return x }},
		{"InstanceNorm/8x128x7x7", []int{8, 128, 7, 7}, func(bd *Builder, x *G.Node) *G.Node {
			return NewScope(NewParams(), nn.NewRNG(1)).InstanceNorm2d("in", 128, false).Forward(bd, x)
		}},
		{"InstanceNorm/8x32x28x28", []int{8, 32, 28, 28}, func(bd *Builder, x *G.Node) *G.Node {
			return NewScope(NewParams(), nn.NewRNG(1)).InstanceNorm2d("in", 32, false).Forward(bd, x)
		}},
		{"ReflectionPad1/8x128x7x7", []int{8, 128, 7, 7}, func(bd *Builder, x *G.Node) *G.Node {
			return bd.ReflectionPad2d(x, 1)
		}},
		{"ReflectionPad3/8x32x28x28", []int{8, 32, 28, 28}, func(bd *Builder, x *G.Node) *G.Node {
			return bd.ReflectionPad2d(x, 3)
		}},
		{"Add/8x128x7x7", []int{8, 128, 7, 7}, func(bd *Builder, x *G.Node) *G.Node {
			return bd.Add(x, bd.ReLU(x))
		}},
		{"GorgoniaAdd/8x128x7x7", []int{8, 128, 7, 7}, func(bd *Builder, x *G.Node) *G.Node {
			return bd.Apply("add", func() (*G.Node, error) { return G.Add(x, bd.ReLU(x)) })
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ps := NewParams()
			x := randParam(ps, nn.NewRNG(3), "x", tc.shape...)
			bd := NewBuilder()
			y := tc.layer(bd, bd.Param(x))
			loss := bd.L1(y, bd.Input("target", y.Shape()...))
			prog, err := Compile(bd, loss, ps.Trainable())
			if err != nil {
				b.Fatal(err)
			}
			if err := prog.Run(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := prog.Run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
