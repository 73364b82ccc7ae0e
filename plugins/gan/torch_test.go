package gan

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TestPyTorchWeights loads a conditional model's state_dict written by
// PyTorch (testdata/torch_gan.py fixture: BatchNorm running statistics and
// int64 num_batches_tracked included) and must reproduce PyTorch's
// eval-mode generator images and discriminator logits.
func TestPyTorchWeights(t *testing.T) {
	w, err := safetensors.ReadFile("testdata/torch_gan.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	io, err := safetensors.ReadFile("testdata/torch_gan_io.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	a := Arch{Variant: CGAN, Z: 8, Width: 4, Classes: 10}
	m, err := NewModel(a, nn.NewRNG(1))
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
	z, labels := get("z"), get("labels")
	n := len(labels)
	s, err := m.buildSampler(n, false)
	if err != nil {
		t.Fatal(err)
	}
	in := layers.Data(s.z)
	for i := 0; i < n; i++ {
		copy(in[i*(a.Z+a.Classes):], z[i*a.Z:(i+1)*a.Z])
		in[i*(a.Z+a.Classes)+a.Z+int(labels[i])] = 1
	}
	if err := s.prog.Run(); err != nil {
		t.Fatal(err)
	}
	img := s.prog.Output(0)
	compare(t, "generator images", img, get("images"))

	b := layers.NewBuilder()
	x := b.Input("x", n, 1, Size, Size)
	planes := b.Input("planes", n, a.Classes, Size, Size)
	logits := m.discriminator(b, m.withPlanes(b, x, planes), false)
	prog, err := layers.Compile(b, nil, nil, logits)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(x), img)
	ls := make([]int, n)
	for i := range ls {
		ls[i] = int(labels[i])
	}
	fillPlanes(layers.Data(planes), ls, a.Classes)
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	compare(t, "discriminator logits", prog.Output(0), get("logits"))
}

func compare(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, PyTorch has %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-4 {
		t.Errorf("%s: max difference from PyTorch %.3g", what, worst)
	}
}
