package ops

import (
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// planGraph is y = tanh(x) + relu(tanh(x)) on a vector of n, with the tanh
// op value applied to two inputs (x and x+x) when reuse is set.
func planGraph(t *testing.T, n int, reuse bool) (g *G.ExprGraph, x, y, a, c *G.Node) {
	t.Helper()
	g = G.NewGraph()
	x = G.NewTensor(g, G.Float32, 1, G.WithShape(n), G.WithName("x"))
	xs := make([]float32, n)
	for i := range xs {
		xs[i] = float32(i%7) - 3
	}
	if err := G.Let(x, tensorOf(xs)); err != nil {
		t.Fatal(err)
	}
	th := newActOp(ActTanh, 0, []int{n})
	var err error
	if a, err = G.ApplyOp(th, x); err != nil {
		t.Fatal(err)
	}
	in2 := x
	if reuse {
		if in2, err = Add(x, x); err != nil {
			t.Fatal(err)
		}
	} else {
		th = newActOp(ActTanh, 0, []int{n})
	}
	b, err := G.ApplyOp(th, in2)
	if err != nil {
		t.Fatal(err)
	}
	if c, err = Act(b, ActReLU, 0); err != nil {
		t.Fatal(err)
	}
	if y, err = Add(a, c); err != nil {
		t.Fatal(err)
	}
	return g, x, y, a, c
}

// TestPlanSharedOpValue: an op value on two nodes has one cache between
// them, which the plan must leave unplanned rather than place twice.
func TestPlanSharedOpValue(t *testing.T) {
	const n = 1000
	g, x, y, _, _ := planGraph(t, n, true)
	var got G.Value
	G.Read(y, &got)
	a, vmOpt, err := PlanMemory(g, PlanOptions{Poison: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	// Add(x, x), relu and the final add are planned; the two tanh nodes
	// share a cache and are not.
	if a.Nodes() != 3 {
		t.Errorf("%d nodes planned, want 3", a.Nodes())
	}
	m := G.NewTapeMachine(g, vmOpt)
	defer m.Close()
	a.Begin()
	err = m.RunAll()
	if perr := a.End(); err == nil {
		err = perr
	}
	if err != nil {
		t.Fatal(err)
	}
	xs := x.Value().Data().([]float32)
	for i, v := range got.Data().([]float32) {
		want := tanhRef(xs[i]) + max(tanhRef(2*xs[i]), 0)
		if d := v - want; d > 1e-6 || d < -1e-6 {
			t.Fatalf("y[%d] = %v, want %v", i, v, want)
		}
	}
}

func tanhRef(x float32) float32 {
	d := []float32{0}
	tanhs(d, []float32{x})
	return d[0]
}

// TestPlanOrderCheck runs two planned ops out of the planned order by hand:
// the arena must report it, since their buffers may overlap.
func TestPlanOrderCheck(t *testing.T) {
	const n = 64
	g, _, _, a0, c := planGraph(t, n, false)
	ar, _, err := PlanMemory(g, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Release()
	in := tensor.New(tensor.WithShape(n), tensor.Of(tensor.Float32))
	run := func(first, second *G.Node) error {
		ar.Begin()
		if _, err := first.Op().Do(in); err != nil {
			t.Fatal(err)
		}
		if _, err := second.Op().Do(in); err != nil {
			t.Fatal(err)
		}
		return ar.End()
	}
	if err := run(a0, c); err != nil {
		t.Errorf("planned order reported: %v", err)
	}
	if err := run(c, a0); err == nil {
		t.Error("ops run out of order were not reported")
	}
	// Outside Begin/End the ops keep their own buffers.
	v, err := c.Op().Do(in)
	if err != nil {
		t.Fatal(err)
	}
	if &v.Data().([]float32)[0] == &ar.buf[0] {
		t.Error("an op outside a run wrote into the arena")
	}
}
