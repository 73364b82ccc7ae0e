package ops

import (
	"math"
	"testing"

	"gorgonia.org/tensor"
)

// TestSigmoidAccuracy checks the vector and scalar sigmoid (and expf
// behind them) against float64 over the useful range, the clamped tails
// and a length that is not a multiple of the vector width.
func TestSigmoidAccuracy(t *testing.T) {
	var xs []float32
	for v := -100.0; v <= 100; v += 0.0137 {
		xs = append(xs, float32(v))
	}
	xs = append(xs, 0, -0, 1e-8, -1e-8, float32(math.Inf(1)), float32(math.Inf(-1)))
	got := make([]float32, len(xs))
	sigmoids(got, xs)
	for i, x := range xs {
		want := 1 / (1 + math.Exp(-float64(x)))
		for _, g := range []float32{got[i], sigmoidf(x)} {
			if err := math.Abs(float64(g) - want); err > 2e-7 && err > 4e-7*want {
				t.Fatalf("sigmoid(%v) = %v, want %v", x, g, want)
			}
		}
		if x > -80 && x < 80 {
			e, want := float64(expf(x)), math.Exp(float64(x))
			if math.Abs(e-want) > 3e-7*want {
				t.Fatalf("expf(%v) = %v, want %v", x, e, want)
			}
		}
	}
}

// TestActivationValues checks the fused activations' values against
// float64 references, including ReLU's and LeakyReLU's behaviour at 0.
func TestActivationValues(t *testing.T) {
	var xs []float32
	for v := -12.0; v <= 12; v += 0.00731 {
		xs = append(xs, float32(v))
	}
	xs = append(xs, 0, float32(math.Copysign(0, -1)), 1e-7, -1e-7, 0.029, -0.031)
	ref := map[ActKind]func(x float64) float64{
		ActReLU:      func(x float64) float64 { return math.Max(x, 0) },
		ActLeakyReLU: func(x float64) float64 { return map[bool]float64{true: x, false: 0.2 * x}[x > 0] },
		ActSigmoid:   func(x float64) float64 { return 1 / (1 + math.Exp(-x)) },
		ActTanh:      math.Tanh,
		ActSiLU:      func(x float64) float64 { return x / (1 + math.Exp(-x)) },
	}
	for k, f := range ref {
		alpha := float32(0.2)
		if k != ActLeakyReLU {
			alpha = 0
		}
		op := newActOp(k, alpha, []int{len(xs)})
		v, err := op.Do(tensorOf(xs))
		if err != nil {
			t.Fatal(err)
		}
		got := v.Data().([]float32)
		for i, x := range xs {
			want := f(float64(x))
			if d := math.Abs(float64(got[i]) - want); d > 3e-7*(1+math.Abs(want)) && d > 1e-6*math.Abs(want) {
				t.Fatalf("%v(%v) = %v, want %v", k, x, got[i], want)
			}
		}
	}
}

func tensorOf(xs []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(len(xs)), tensor.WithBacking(append([]float32(nil), xs...)))
}

// TestReLUGradVector checks the vector ReLU derivative against the
// scalar loop on lengths around the vector width, with zeros of both
// signs in y.
func TestReLUGradVector(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 31, 64, 100} {
		y, g := make([]float32, n), make([]float32, n)
		for i := range y {
			y[i] = float32(math.Sin(float64(3*i))) * float32(i%3)
			g[i] = float32(math.Cos(float64(i)))
		}
		if n > 8 {
			y[3], y[5] = 0, float32(math.Copysign(0, -1))
		}
		op := newActGradOp(ActReLU, 0, []int{n})
		v, err := op.Do(tensorOf(y), tensorOf(g))
		if err != nil {
			t.Fatal(err)
		}
		got := v.Data().([]float32)
		for i := range y {
			want := float32(0)
			if y[i] > 0 {
				want = g[i]
			}
			if got[i] != want {
				t.Fatalf("n %d: dx[%d] = %v for y %v, dy %v; want %v", n, i, got[i], y[i], g[i], want)
			}
		}
	}
}
