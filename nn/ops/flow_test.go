package ops

import (
	"math"
	"testing"

	"gorgonia.org/tensor"
)

// TestFlowOpValues checks the coupling, its log-determinant and the
// Gaussian log-density against float64 references, including scales far
// in the sigmoid's tails, where log sigmoid must stay finite.
func TestFlowOpValues(t *testing.T) {
	const n, c, inner = 2, 3, 4 // Ca = 1, Cb = 2
	x := make([]float32, n*c*inner)
	h := make([]float32, n*4*inner)
	for i := range x {
		x[i] = float32(math.Sin(float64(i)))
	}
	for i := range h {
		h[i] = float32(3 * math.Cos(float64(7*i)))
	}
	h[len(h)-1], h[len(h)-2] = -200, 150 // r + 2 = −198 and 152
	dense := func(d []float32, shape ...int) *tensor.Dense {
		return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(append([]float32(nil), d...)))
	}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	y, err := newFlowOp(cplForward, []int{n, c, inner}, 2).Do(dense(x, n, c, inner), dense(h, n, 4, inner))
	if err != nil {
		t.Fatal(err)
	}
	ld, err := newFlowOp(cplLogDet, []int{n, 4, inner}, 2).Do(dense(h, n, 4, inner))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var want float64
		for j := 0; j < 2*inner; j++ {
			r := float64(h[i*4*inner+2*inner+j]) + 2
			if r > -50 {
				want += math.Log(sig(r))
			} else {
				want += r // log sigmoid(r) → r as r → −∞
			}
		}
		if got := float64(ld.Data().([]float32)[i]); math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
			t.Errorf("logdet[%d] = %v, want %v", i, got, want)
		}
		for k := 0; k < c*inner; k++ {
			want := float64(x[i*c*inner+k])
			if k >= inner {
				j := k - inner
				want = (want + float64(h[i*4*inner+j])) * sig(float64(h[i*4*inner+2*inner+j])+2)
			}
			if got := float64(y.Data().([]float32)[i*c*inner+k]); math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
				t.Errorf("coupling[%d, %d] = %v, want %v", i, k, got, want)
			}
		}
	}
	for f := -100.0; f <= 100; f += 0.0173 {
		v := float64(float32(f))
		want := v - math.Log1p(math.Exp(v))
		if v > 0 {
			want = -math.Log1p(math.Exp(-v))
		}
		if got := logSigmoid(float32(v)); math.Abs(got-want) > 4e-7*math.Abs(want)+1e-12 {
			t.Fatalf("logSigmoid(%v) = %v, want %v", v, got, want)
		}
	}
	p := make([]float32, n*2*c*inner)
	for i := range p {
		p[i] = float32(0.5 * math.Sin(float64(3*i)))
	}
	lp, err := newFlowOp(gaussLogp, []int{n, c, inner}, 0).Do(dense(x, n, c, inner), dense(p, n, 2*c, inner))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var want float64
		for k := 0; k < c*inner; k++ {
			m, l := float64(p[i*2*c*inner+k]), float64(p[i*2*c*inner+c*inner+k])
			d := (float64(x[i*c*inner+k]) - m) / math.Exp(l)
			want += -0.5*math.Log(2*math.Pi) - l - 0.5*d*d
		}
		if got := float64(lp.Data().([]float32)[i]); math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
			t.Errorf("log-density[%d] = %v, want %v", i, got, want)
		}
	}
}
