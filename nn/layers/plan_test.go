package layers

import (
	"math"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

// planCase builds one program; every case is compiled with and without
// the memory plan and must give the same bits.
type planCase struct {
	name  string
	build func(t *testing.T) *Program
}

// runOutputs runs p twice (the second run reuses every buffer) and returns
// copies of its outputs and gradients.
func runOutputs(t *testing.T, p *Program, nOut, nGrad int) [][]float32 {
	t.Helper()
	var res [][]float32
	for run := 0; run < 2; run++ {
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < nOut; i++ {
		res = append(res, append([]float32(nil), p.Output(i)...))
	}
	for i := 0; i < nGrad; i++ {
		res = append(res, append([]float32(nil), p.Grad(i)...))
	}
	return res
}

// aliasNet keeps a value alive only through a view: gorgonia's Reshape
// may reshape its input in place (its result is then the activation's
// own buffer), and that view is read at the very end, after a chain of
// same-sized activations that would happily reuse the buffer if the plan
// ended its life at the Reshape.
func aliasNet(b *Builder, x, y *G.Node) *G.Node {
	v := b.Reshape(b.Tanh(x), 2, 3*8*8)
	c := y
	for i := 0; i < 6; i++ {
		c = b.Sigmoid(b.LeakyReLU(c, 0.1))
	}
	return b.Add(b.Reshape(c, 2, 3*8*8), v)
}

// skipNet reads its first activation again at the end, past every other
// value of its size: sharing that buffer early changes the sum.
func skipNet(b *Builder, x *G.Node) *G.Node {
	first := b.SiLU(x)
	h := first
	for i := 0; i < 5; i++ {
		h = b.Tanh(b.Add(h, x))
	}
	return b.Add(h, first)
}

func TestPlanKeepsResults(t *testing.T) {
	cases := []planCase{
		{"skip", func(t *testing.T) *Program {
			b := NewBuilder()
			x := b.Input("x", 2, 3, 8, 8)
			nn.NewRNG(1).Normal(Data(x), 1)
			p, err := Compile(b, nil, nil, skipNet(b, x))
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"alias", func(t *testing.T) *Program {
			b := NewBuilder()
			x, y := b.Input("x", 2, 3, 8, 8), b.Input("y", 2, 3, 8, 8)
			nn.NewRNG(2).Normal(Data(x), 1)
			nn.NewRNG(3).Normal(Data(y), 1)
			p, err := Compile(b, nil, nil, aliasNet(b, x, y))
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"train", func(t *testing.T) *Program {
			ps := tinyParams(3)
			b := NewBuilder()
			x, tg := b.Input("x", 2, 2, 6, 6), b.Input("t", 2, 5)
			nn.NewRNG(4).Normal(Data(x), 1)
			nn.NewRNG(5).Uniform(Data(tg), 0, 1)
			p, err := Compile(b, tinyNet(ps, b, x, tg), ps.Trainable())
			if err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			nGrad := 0
			if c.name == "train" {
				nGrad = len(tinyParams(3).Trainable())
			}
			t.Setenv(PlanEnv, "off")
			ref := c.build(t)
			if a, _ := ref.PlannedBytes(); a != 0 {
				t.Fatalf("%s=off still planned %d bytes", PlanEnv, a)
			}
			want := runOutputs(t, ref, 1, nGrad)
			for _, mode := range []string{"", "poison"} {
				t.Setenv(PlanEnv, mode)
				p := c.build(t)
				if a, _ := p.PlannedBytes(); a == 0 {
					t.Fatalf("mode %q: nothing planned", mode)
				}
				got := runOutputs(t, p, 1, nGrad)
				for i := range want {
					for j := range want[i] {
						if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
							t.Fatalf("mode %q: result %d[%d] = %v, unplanned %v", mode, i, j, got[i][j], want[i][j])
						}
					}
				}
				p.Close()
			}
			ref.Close()
		})
	}
}

// TestPlanShrinksMemory checks that the arena of a deep network is a small
// fraction of its op outputs: in inference only a layer's input and output
// are alive at once; in training the forward values stay until backward
// but the gradient temporaries share.
func TestPlanShrinksMemory(t *testing.T) {
	t.Setenv(PlanEnv, "")
	ps, rng := NewParams(), nn.NewRNG(7)
	const depth = 8
	for i := 0; i < depth; i++ {
		randParam(ps, rng, pname("w", i), 8, 8, 3, 3)
		randParam(ps, rng, pname("b", i), 8)
	}
	build := func(b *Builder) *G.Node {
		h := b.Input("x", 4, 8, 16, 16)
		rng.Normal(Data(h), 1)
		// The bias as an op of its own (Conv2d fuses it): three outputs
		// per layer for the plan to place.
		for i := 0; i < depth; i++ {
			h = b.AddChannel(b.Conv2d(h, ps.Get(pname("w", i)), nil, 1, 1), b.Param(ps.Get(pname("b", i))), "bias")
			h = b.LeakyReLU(h, 0.2)
		}
		return h
	}
	b := NewBuilder()
	infer, err := Compile(b, nil, nil, build(b))
	if err != nil {
		t.Fatal(err)
	}
	arena, outs := infer.PlannedBytes()
	one := int64(4 * 8 * 16 * 16 * 4)
	t.Logf("inference: arena %d B, outputs %d B (%d B each)", arena, outs, one)
	if outs < 2*depth*one {
		t.Fatalf("inference: only %d B of outputs planned, want at least %d", outs, 2*depth*one)
	}
	if arena > 2*one {
		t.Errorf("inference: arena %d B, want at most two layer outputs (%d B)", arena, 2*one)
	}

	b = NewBuilder()
	y := build(b)
	train, err := Compile(b, weightedSum(b, y, 9), ps.Trainable())
	if err != nil {
		t.Fatal(err)
	}
	arena, outs = train.PlannedBytes()
	t.Logf("training: arena %d B (peak live %d B), outputs %d B", arena, train.arena.PeakLiveBytes(), outs)
	if peak := train.arena.PeakLiveBytes(); arena < peak {
		t.Errorf("training: arena %d B is below the %d B alive at once", arena, peak)
	}
	if arena*2 > outs {
		t.Errorf("training: arena %d B is more than half of the %d B of outputs", arena, outs)
	}
	if err := train.Run(); err != nil {
		t.Fatal(err)
	}
}

func pname(p string, i int) string { return p + string(rune('0'+i)) }

// TestPlanSharedGraph compiles two programs on one graph: their op nodes
// are the same, so neither may place them in its arena, and run in turns
// both must compute what a single program computes. (Gorgonia binds
// values to the graph's nodes, so one graph never runs on two goroutines
// at once.)
func TestPlanSharedGraph(t *testing.T) {
	t.Setenv(PlanEnv, "poison")
	b := NewBuilder()
	x := b.Input("x", 2, 3, 8, 8)
	nn.NewRNG(11).Normal(Data(x), 1)
	out := skipNet(b, x)
	p1, err := Compile(b, nil, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	want := runOutputs(t, p1, 1, 0)[0]
	p2, err := Compile(b, nil, nil, out)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 3; r++ {
		for i, p := range []*Program{p1, p2} {
			if got := runOutputs(t, p, 1, 0)[0]; !equalBits(got, want) {
				t.Fatalf("round %d: program %d differs from a lone program", r, i+1)
			}
		}
	}
}

// TestPlanConcurrentPrograms runs two programs of one network, compiled
// apart as the translators of two batch sizes are, on two goroutines
// (with -race this also catches them sharing a buffer).
func TestPlanConcurrentPrograms(t *testing.T) {
	t.Setenv(PlanEnv, "")
	build := func() *Program {
		b := NewBuilder()
		x := b.Input("x", 2, 3, 8, 8)
		nn.NewRNG(11).Normal(Data(x), 1)
		p, err := Compile(b, nil, nil, skipNet(b, x))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p1, p2 := build(), build()
	want := runOutputs(t, p1, 1, 0)[0]
	var wg sync.WaitGroup
	errs := make([]string, 2)
	for i, p := range []*Program{p1, p2} {
		wg.Add(1)
		go func(i int, p *Program) {
			defer wg.Done()
			for r := 0; r < 20; r++ {
				if err := p.Run(); err != nil {
					errs[i] = err.Error()
					return
				}
				if !equalBits(p.Output(0), want) {
					errs[i] = "result differs from a lone program's"
					return
				}
			}
		}(i, p)
	}
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			t.Errorf("program %d: %s", i+1, e)
		}
	}
}

func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
