package flow

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// randomModel is a flow whose every parameter is random (a fresh one has
// zero couplings and priors, which would hide mistakes in them).
func randomModel(t *testing.T, a Arch, seed uint64) *Model {
	t.Helper()
	m, err := NewModel(a, nn.NewRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	rng := nn.NewRNG(seed + 1)
	noise := make([]float32, 0)
	for _, p := range m.Params.Trainable() {
		d := p.Data()
		if cap(noise) < len(d) {
			noise = make([]float32, len(d))
		}
		noise = noise[:len(d)]
		rng.Normal(noise, 0.2)
		for i := range d {
			d[i] += noise[i]
		}
	}
	return m
}

// runForward returns the latents (all levels, flattened per item in
// order) and the log-determinant of each item of y.
func runForward(t *testing.T, m *Model, y []float32, n int) ([]float32, []float32, []float32) {
	t.Helper()
	a := m.Arch
	b := layers.NewBuilder()
	x := b.Input("y", n, a.Ch, a.Size, a.Size)
	copy(layers.Data(x), y)
	f := m.forward(b, x)
	if b.Err() != nil {
		t.Fatal(b.Err())
	}
	outs := append([]*G.Node{f.logdet, f.logp}, f.zs...)
	prog, err := layers.Compile(b, nil, nil, outs...)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	per := a.Dims()
	z := make([]float32, n*per)
	off := 0
	for i, s := range a.latentShapes() {
		k := s[0] * s[1] * s[2]
		v := prog.Output(2 + i)
		for item := 0; item < n; item++ {
			copy(z[item*per+off:item*per+off+k], v[item*k:(item+1)*k])
		}
		off += k
	}
	return z, append([]float32(nil), prog.Output(0)...), append([]float32(nil), prog.Output(1)...)
}

// runDecode maps flattened latents back to y with the inverse graph.
func runDecode(t *testing.T, m *Model, z []float32, n int) []float32 {
	t.Helper()
	b := layers.NewBuilder()
	inv := m.inverse(b, n, false)
	prog, err := layers.Compile(b, nil, nil, inv.y)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	per := m.Arch.Dims()
	off := 0
	for i, s := range m.Arch.latentShapes() {
		k := s[0] * s[1] * s[2]
		d := layers.Data(inv.zs[i])
		for item := 0; item < n; item++ {
			copy(d[item*k:(item+1)*k], z[item*per+off:item*per+off+k])
		}
		off += k
	}
	m.fillInverses(inv)
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), prog.Output(0)...)
}

// TestInvertible: decode(encode(y)) = y within 1e-4 for a random flow of
// three levels, and the latents hold as many values as the image.
func TestInvertible(t *testing.T) {
	a := Arch{Ch: 1, Size: 8, Levels: 3, Steps: 2, Hidden: 8}
	m := randomModel(t, a, 3)
	const n = 3
	y := make([]float32, n*a.Dims())
	nn.NewRNG(9).Uniform(y, -0.5, 0.5)
	z, _, _ := runForward(t, m, y, n)
	back := runDecode(t, m, z, n)
	worst := 0.0
	for i := range y {
		worst = math.Max(worst, math.Abs(float64(back[i]-y[i])))
	}
	t.Logf("max |decode(encode(y)) - y| = %.2g", worst)
	if worst > 1e-4 {
		t.Errorf("decode(encode(y)) differs from y by up to %.3g", worst)
	}
}

// TestLogDetMatchesJacobian compares the flow's log-determinant with
// log|det J| of its Jacobian, computed by central finite differences in
// float64 from the float32 graph, on a 4x4 image (16 dimensions).
func TestLogDetMatchesJacobian(t *testing.T) {
	for _, a := range []Arch{
		{Ch: 1, Size: 4, Levels: 2, Steps: 2, Hidden: 4},
		{Ch: 1, Size: 4, Levels: 3, Steps: 1, Hidden: 4},
		{Ch: 2, Size: 2, Levels: 1, Steps: 3, Hidden: 4},
	} {
		t.Run(a.JSON(), func(t *testing.T) { checkLogDet(t, a) })
	}
}

func checkLogDet(t *testing.T, a Arch) {
	m := randomModel(t, a, 5)
	d := a.Dims()
	y := make([]float32, d)
	nn.NewRNG(11).Uniform(y, -0.5, 0.5)
	_, ld, _ := runForward(t, m, y, 1)
	const eps = 1e-2
	// One batch: item 2j is y + eps·e_j, item 2j+1 is y − eps·e_j.
	batch := make([]float32, 2*d*d)
	for j := 0; j < d; j++ {
		copy(batch[2*j*d:], y)
		copy(batch[(2*j+1)*d:], y)
		batch[2*j*d+j] += eps
		batch[(2*j+1)*d+j] -= eps
	}
	z, _, _ := runForward(t, m, batch, 2*d)
	jac := make([]float64, d*d) // jac[i][j] = dz_i/dy_j
	for j := 0; j < d; j++ {
		for i := 0; i < d; i++ {
			jac[i*d+j] = (float64(z[2*j*d+i]) - float64(z[(2*j+1)*d+i])) / (2 * eps)
		}
	}
	_, l, u := luDecompose(jac, d)
	_ = l
	var want float64
	for i := 0; i < d; i++ {
		want += math.Log(math.Abs(u[i*d+i]))
	}
	t.Logf("log-determinant: flow %.5f, finite differences %.5f", ld[0], want)
	if math.Abs(float64(ld[0])-want) > 2e-3*(1+math.Abs(want)) {
		t.Errorf("log-determinant %.5f, the Jacobian's %.5f", ld[0], want)
	}
}

// TestLogitTransform: the logit transform's log-det per item equals the
// sum of its per-pixel derivatives' logs by central finite differences,
// and flowOutput undoes flowInput, near the ends of the range too.
func TestLogitTransform(t *testing.T) {
	a := Arch{Ch: 1, Size: 4, Levels: 1, Steps: 1, Hidden: 4, Logit: 0.05}
	const n = 2
	y := make([]float32, n*a.Dims())
	nn.NewRNG(4).Uniform(y, -0.5, 0.5)
	y[0], y[1] = -0.5+1.0/512, 0.5-1.0/512 // bin centres of pixels 0 and 255
	u, ld := a.flowInput(y, n)
	per := a.Dims()
	for i := 0; i < n; i++ {
		var want float64
		for _, v := range y[i*per : (i+1)*per] {
			const h = 1e-6
			f := func(y float64) float64 {
				s := a.Logit + (1-2*a.Logit)*(y+0.5)
				return math.Log(s / (1 - s))
			}
			want += math.Log((f(float64(v)+h) - f(float64(v)-h)) / (2 * h))
		}
		if math.Abs(ld[i]-want) > 1e-5*math.Abs(want) {
			t.Errorf("item %d: log-det %.6f, finite differences %.6f", i, ld[i], want)
		}
	}
	back := append([]float32(nil), u...)
	a.flowOutput(back)
	for i := range y {
		if d := math.Abs(float64(back[i] - y[i])); d > 1e-6 {
			t.Fatalf("value %d: flowOutput(flowInput(%g)) = %g", i, y[i], back[i])
		}
	}
	if v, _ := (Arch{}).flowInput(y, n); &v[0] != &y[0] {
		t.Errorf("without Logit the flow's input is not the image itself")
	}
}
