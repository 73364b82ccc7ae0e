package ops

import (
	"math"
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

// randomGraph builds a random DAG of activations and sums over vectors of
// three sizes, reading every fourth node and the last: values die at
// random times, so the layout has real choices.
func randomGraph(t *testing.T, seed uint64, nodes int) (*G.ExprGraph, []*G.Value) {
	t.Helper()
	r := seed*6364136223846793005 + 1442695040888963407
	next := func(n int) int {
		r = r*6364136223846793005 + 1442695040888963407
		return int((r >> 33) % uint64(n))
	}
	g := G.NewGraph()
	sizes := []int{64, 256, 1024}
	var bySize [3][]*G.Node
	for k, n := range sizes {
		x := G.NewTensor(g, G.Float32, 1, G.WithShape(n), G.WithName(string(rune('a'+k))))
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = float32(next(2001)-1000) / 400
		}
		if err := G.Let(x, tensorOf(xs)); err != nil {
			t.Fatal(err)
		}
		bySize[k] = append(bySize[k], x)
	}
	kinds := []ActKind{ActTanh, ActSigmoid, ActLeakyReLU, ActSiLU}
	var reads []*G.Value
	for i := 0; i < nodes; i++ {
		k := next(3)
		pool := bySize[k]
		var y *G.Node
		var err error
		if next(2) == 0 {
			y, err = Act(pool[next(len(pool))], kinds[next(len(kinds))], 0.1)
		} else {
			y, err = Add(pool[next(len(pool))], pool[next(len(pool))])
		}
		if err != nil {
			t.Fatal(err)
		}
		bySize[k] = append(bySize[k], y)
		if i%4 == 3 || i == nodes-1 {
			v := new(G.Value)
			G.Read(y, v)
			reads = append(reads, v)
		}
	}
	return g, reads
}

// TestPlanRandomGraphs checks the layout of random graphs (no two slots
// alive at once overlap) and that their results match unplanned runs bit
// for bit, with planned buffers poisoned before each write.
func TestPlanRandomGraphs(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		g, reads := randomGraph(t, seed, 80)
		a, vmOpt, err := PlanMemory(g, PlanOptions{Poison: true})
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range a.slots {
			for _, u := range a.slots[i+1:] {
				if s.pos <= u.end && u.pos <= s.end && s.off < u.off+u.n && u.off < s.off+s.n {
					t.Fatalf("seed %d: %v and %v are alive together and overlap", seed, s.node, u.node)
				}
			}
		}
		if a.Bytes() < a.PeakLiveBytes() || a.Bytes() >= a.OutputBytes() {
			t.Errorf("seed %d: arena %d B, peak live %d B, outputs %d B", seed, a.Bytes(), a.PeakLiveBytes(), a.OutputBytes())
		}
		m := G.NewTapeMachine(g, vmOpt)
		for run := 0; run < 2; run++ {
			a.Begin()
			err = m.RunAll()
			if perr := a.End(); err == nil {
				err = perr
			}
			if err != nil {
				t.Fatal(err)
			}
			m.Reset()
		}
		m.Close()
		a.Release()

		ref, want := randomGraph(t, seed, 80)
		rm := G.NewTapeMachine(ref)
		if err := rm.RunAll(); err != nil {
			t.Fatal(err)
		}
		rm.Close()
		for i := range want {
			gv, wv := (*reads[i]).Data().([]float32), (*want[i]).Data().([]float32)
			for j := range wv {
				if math.Float32bits(gv[j]) != math.Float32bits(wv[j]) {
					t.Fatalf("seed %d: read %d [%d] = %v, unplanned %v", seed, i, j, gv[j], wv[j])
				}
			}
		}
	}
}
