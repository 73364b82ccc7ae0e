package layers

import (
	"slices"
	"testing"

	"github.com/genpipe/genpipe/nn"
)

// TestScopeNamesAndInit checks that layers declared under scopes create
// PyTorch's state_dict names in declaration order, and draw their initial
// values from the RNG exactly as the hand-written initialisation they
// replace (weight, then bias; ConvTranspose2d's fan-in from its out
// channels; DCGAN's N(0, 0.02) weights, zero biases, N(1, 0.02) scales).
func TestScopeNamesAndInit(t *testing.T) {
	ps := NewParams()
	s := NewScope(ps, nn.NewRNG(1))
	enc := s.In("encoder")
	c := enc.Conv2d("0", 2, 3, 4, 2, 1)
	ct := s.In("decoder").ConvTranspose2d("2", 3, 5, 4, 2, 1, 0)
	l := s.Linear("fc", 6, 7)
	d := s.In("disc").WithInit(DCGANInit)
	dl := d.Linear("fc", 6, 7)
	bn := d.BatchNorm2d("bn", 3)
	buf := s.Buffer("latent_mean", 4)

	var names []string
	for _, p := range ps.All() {
		names = append(names, p.Name)
	}
	want := []string{
		"encoder.0.weight", "encoder.0.bias", "decoder.2.weight", "decoder.2.bias", "fc.weight", "fc.bias",
		"disc.fc.weight", "disc.fc.bias",
		"disc.bn.weight", "disc.bn.bias", "disc.bn.running_mean", "disc.bn.running_var", "disc.bn.num_batches_tracked",
		"latent_mean",
	}
	if !slices.Equal(names, want) {
		t.Fatalf("names %v, want %v", names, want)
	}
	if c.Stride != 2 || c.Pad != 1 || ct.OutPad != 0 || !slices.Equal(ct.Weight.Shape(), []int{3, 5, 4, 4}) || !buf.Buffer {
		t.Fatalf("layer settings: conv %+v, convT %+v, buffer %v", c, ct, buf.Buffer)
	}

	rng := nn.NewRNG(1)
	draw := func(n, fanIn int) []float32 {
		v := make([]float32, n)
		rng.KaimingUniform(v, fanIn)
		return v
	}
	normal := func(n int, mean float32) []float32 {
		v := make([]float32, n)
		rng.Normal(v, 0.02)
		for i := range v {
			v[i] += mean
		}
		return v
	}
	for _, w := range []struct {
		p    *Param
		want []float32
	}{
		{c.Weight, draw(3*2*16, 2*16)}, {c.Bias, draw(3, 2*16)},
		{ct.Weight, draw(3*5*16, 5*16)}, {ct.Bias, draw(5, 5*16)},
		{l.Weight, draw(7*6, 6)}, {l.Bias, draw(7, 6)},
		{dl.Weight, normal(7*6, 0)}, {dl.Bias, make([]float32, 7)},
		{bn.Weight, normal(3, 1)}, {bn.Bias, make([]float32, 3)},
	} {
		if !slices.Equal(w.p.Data(), w.want) {
			t.Errorf("%s: %v, want %v", w.p.Name, w.p.Data(), w.want)
		}
	}
	if got := ps.TrainableIn("disc"); len(got) != 4 || got[0] != dl.Weight || got[3] != bn.Bias {
		t.Errorf("TrainableIn(disc) = %d params", len(got))
	}
}
