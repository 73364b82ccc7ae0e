package digits

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// naiveCE is −Σ t·log softmax(l) averaged over rows, in float64 without
// the max shift (fine for the moderate logits used here).
func naiveCE(l, t []float32, n, k int) float64 {
	var acc float64
	for i := 0; i < n; i++ {
		var z float64
		for j := 0; j < k; j++ {
			z += math.Exp(float64(l[i*k+j]))
		}
		for j := 0; j < k; j++ {
			acc -= float64(t[i*k+j]) * math.Log(math.Exp(float64(l[i*k+j]))/z)
		}
	}
	return acc / float64(n)
}

// xentGraph builds loss = SoftmaxCrossEntropy(x·wᵀ + b, t) with random x,
// w, b and targets that are one-hot in some rows and soft (not summing to
// 1) in others, so the Σt factor of the gradient is exercised.
func xentGraph(t *testing.T, n, in, k int) (*layers.Program, *layers.Params, []float32, []float32, func() []float32) {
	t.Helper()
	rng := nn.NewRNG(3)
	ps := layers.NewParams()
	w, bias := ps.Add("w", k, in), ps.Add("b", k)
	rng.Normal(w.Data(), 1)
	rng.Normal(bias.Data(), 1)
	b := layers.NewBuilder()
	xn := b.Input("x", n, in)
	tn := b.Input("t", n, k)
	rng.Normal(layers.Data(xn), 1)
	tg := layers.Data(tn)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			tg[i*k+rng.IntN(k)] = 1
		} else {
			rng.Uniform(tg[i*k:(i+1)*k], 0, 0.5)
		}
	}
	logits := b.Linear(xn, w, bias)
	loss := SoftmaxCrossEntropy(b, logits, tn)
	prog, err := layers.Compile(b, loss, ps.Trainable(), logits)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog, ps, layers.Data(xn), tg, func() []float32 { return prog.Output(1) }
}

func TestSoftmaxCrossEntropyValue(t *testing.T) {
	const n, in, k = 6, 5, 4
	prog, _, _, tg, logits := xentGraph(t, n, in, k)
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	got, want := prog.Scalar(0), naiveCE(logits(), tg, n, k)
	if math.Abs(got-want) > 1e-5*(1+math.Abs(want)) {
		t.Errorf("loss %v, direct computation %v", got, want)
	}
	// Confident logits overflow a naive exp; the op must stay finite and
	// exact: one-hot target on a logit 1000 above the rest costs ~0.
	op := xentOp{n: 1, k: 3}
	v, err := op.Do(tensorOf([]float32{1000, 0, -1000}, 1, 3), tensorOf([]float32{1, 0, 0}, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	if l := float64(*v.(*G.F32)); !(l >= 0 && l < 1e-30) {
		t.Errorf("confident correct logits: loss %v, want ~0", l)
	}
	v, err = op.Do(tensorOf([]float32{1000, 0, -1000}, 1, 3), tensorOf([]float32{0, 1, 0}, 1, 3))
	if err != nil {
		t.Fatal(err)
	}
	if l := float64(*v.(*G.F32)); math.Abs(l-1000) > 1e-3 {
		t.Errorf("confident wrong logits: loss %v, want 1000", l)
	}
}

// TestSoftmaxCrossEntropyGradient compares the gradients that flow
// through the op into a linear layer with central finite differences.
func TestSoftmaxCrossEntropyGradient(t *testing.T) {
	prog, ps, _, _, _ := xentGraph(t, 6, 5, 4)
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	params := ps.Trainable()
	grads := make([][]float32, len(params))
	for i := range grads {
		grads[i] = append([]float32(nil), prog.Grad(i)...)
	}
	const eps = 1e-2
	checked := 0
	for i, p := range params {
		d := p.Data()
		for j := range d {
			old := d[j]
			d[j] = old + eps
			if err := prog.Run(); err != nil {
				t.Fatal(err)
			}
			up := prog.Scalar(0)
			d[j] = old - eps
			if err := prog.Run(); err != nil {
				t.Fatal(err)
			}
			down := prog.Scalar(0)
			d[j] = old
			fd := (up - down) / (2 * eps)
			checked++
			if math.Abs(fd-float64(grads[i][j])) > 2e-3*(1+math.Abs(fd)) {
				t.Errorf("%s[%d]: analytic %v, finite difference %v", p.Name, j, grads[i][j], fd)
			}
		}
	}
	if checked != 4*5+4 {
		t.Fatalf("checked %d entries", checked)
	}
}

func TestSoftmaxCrossEntropyShapeErrors(t *testing.T) {
	b := layers.NewBuilder()
	l := b.Input("logits", 3, 4)
	tg := b.Input("targets", 3, 5)
	if SoftmaxCrossEntropy(b, l, tg) != nil || b.Err() == nil {
		t.Fatal("mismatched shapes accepted")
	}
}

func tensorOf(d []float32, shape ...int) G.Value {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}
