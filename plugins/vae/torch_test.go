package vae

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TestPyTorchWeights loads a state_dict written by PyTorch
// (testdata/torch_vae.py fixture) and must reproduce PyTorch's outputs for
// the same inputs: the parameter names, layouts and the layers' arithmetic
// all have to agree for that.
func TestPyTorchWeights(t *testing.T) {
	w, err := safetensors.ReadFile("testdata/torch_vae.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	io, err := safetensors.ReadFile("testdata/torch_vae_io.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(Arch{Variant: VAE, Channels: 1, Size: 28, Width: 8, Latent: 4}, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Params.Load(w); err != nil {
		t.Fatal(err)
	}
	get := func(name string) []float32 {
		v, err := io.Tensor(name).Float32()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	x := get("x")
	n := len(x) / (28 * 28)
	enc, err := m.buildEncode(n)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(enc.in), x)
	if err := enc.prog.Run(); err != nil {
		t.Fatal(err)
	}
	dec, err := m.buildDecode(n)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(dec.in), enc.prog.Output(0))
	if err := dec.prog.Run(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  []float32
	}{{"mu", enc.prog.Output(0)}, {"logvar", enc.prog.Output(1)}, {"pixels", dec.prog.Output(0)}} {
		want := get(c.name)
		if len(want) != len(c.got) {
			t.Fatalf("%s: %d values, PyTorch has %d", c.name, len(c.got), len(want))
		}
		worst := 0.0
		for i := range want {
			worst = math.Max(worst, math.Abs(float64(c.got[i]-want[i])))
		}
		if worst > 1e-5 {
			t.Errorf("%s: max difference from PyTorch %.3g", c.name, worst)
		}
	}
}
