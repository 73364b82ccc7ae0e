package flow

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TestMatchesPyTorch loads the twin's parameters (testdata/torch_flow.py
// fixture: a 3-level flow on 8x8 images, every parameter random, random
// permutations and signs in the 1x1 convolutions) and must reproduce its
// latents, log-determinants and log-likelihoods.
func TestMatchesPyTorch(t *testing.T) {
	f, err := safetensors.ReadFile("testdata/torch_flow.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) []float32 {
		ts := f.Tensor(name)
		if ts == nil {
			t.Fatalf("fixture lacks %q", name)
		}
		v, err := ts.Float32()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := Arch{Ch: 1, Size: 8, Levels: 3, Steps: 2, Hidden: 8}
	m, err := NewModel(a, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Tensors) - 4; n != len(m.Params.All()) {
		t.Fatalf("the twin has %d tensors, the Go flow %d:\n%s", n, len(m.Params.All()), m.Params.Names())
	}
	for _, p := range m.Params.All() {
		v := get(p.Name)
		if len(v) != len(p.Data()) {
			t.Fatalf("%s: %d values, PyTorch %d", p.Name, len(p.Data()), len(v))
		}
		copy(p.Data(), v)
	}
	y := get("io.y")
	z, ld, lp := runForward(t, m, y, 3)
	compare := func(name string, got []float32, tol float64) {
		want := get(name)
		worst := 0.0
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/(1+math.Abs(float64(want[i]))))
		}
		t.Logf("%s: max relative difference from PyTorch %.2g", name, worst)
		if worst > tol {
			t.Errorf("%s differs from PyTorch by up to %.3g (tolerance %g)", name, worst, tol)
		}
	}
	compare("io.z", z, 1e-5)
	compare("io.logdet", ld, 1e-5)
	compare("io.logp", lp, 1e-5)
}
