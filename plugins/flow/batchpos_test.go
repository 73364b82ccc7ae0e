package flow

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
)

// TestDecodeDoesNotDependOnBatchPosition decodes one latent at every
// position of a batch of 12 (the others random) and requires the same
// floats everywhere: an item's result must not depend on its neighbours or
// its place in the batch.
func TestDecodeDoesNotDependOnBatchPosition(t *testing.T) {
	p := findPreset("mnist-glow")
	m := gentleModel(t, p.arch, 5)
	d := m.Arch.Dims()
	const n = 12
	batch := testBatches(t, 1, n)[0]
	y0 := make([]float32, n*d)
	if err := m.dequantize(batch, y0, nil); err != nil {
		t.Fatal(err)
	}
	lat, err := m.encode(y0, n)
	for _, v := range lat {
		if v != v {
			t.Fatal("the test flow's latents are NaN")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	one := lat[:d]
	var ref []float32
	for pos := 0; pos < n; pos++ {
		z := make([]float32, n*d)
		for i := 0; i < n; i++ {
			copy(z[i*d:], lat[((i+pos)%n)*d:((i+pos)%n+1)*d])
		}
		copy(z[pos*d:], one)
		y := runDecode(t, m, z, n)
		got := y[pos*d : (pos+1)*d]
		if ref == nil {
			ref = append([]float32(nil), got...)
			continue
		}
		for i := range got {
			if got[i] != ref[i] {
				t.Fatalf("position %d: value %d is %g, at position 0 %g", pos, i, got[i], ref[i])
			}
		}
	}
}

// gentleModel is a flow of architecture a whose parameters are perturbed a
// little from their initialisation (the coupling nets start at zero, which
// would hide them), not so much that the 24 steps of mnist-glow overflow
// as randomModel's would.
func gentleModel(t *testing.T, a Arch, seed uint64) *Model {
	t.Helper()
	m, err := NewModel(a, nn.NewRNG(seed))
	if err != nil {
		t.Fatal(err)
	}
	rng := nn.NewRNG(seed + 1)
	for _, q := range m.Params.Trainable() {
		d := q.Data()
		noise := make([]float32, len(d))
		rng.Normal(noise, 0.02)
		for i := range d {
			d[i] += noise[i]
		}
	}
	return m
}
