package cyclegan

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
)

var (
	testCycle = Arch{Kind: CycleGAN, A: 1, B: 1, NGF: 32, Downs: 2, Blocks: 6, NDF: 64, DLayers: 2}
	testPix   = Arch{Kind: Pix2Pix, A: 1, B: 1, NGF: 64, Downs: 2, Blocks: 3, NDF: 64, DLayers: 2, Dropout: 0.5}
)

func count(ps []*layers.Param) (n int) {
	for _, p := range ps {
		n += len(p.Data())
	}
	return n
}

func finite(t *testing.T, what string, v []float32) {
	t.Helper()
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			t.Fatalf("%s[%d] = %v", what, i, x)
		}
	}
}

func TestStepsBuildAndRun(t *testing.T) {
	m, err := NewModel(testCycle, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cyclegan: G %d, F %d, D_A %d, D_B %d parameters", count(m.Params.TrainableIn(genAB)), count(m.Params.TrainableIn(genBA)), count(m.Params.TrainableIn(discA)), count(m.Params.TrainableIn(discB)))
	g, err := m.buildCycleG(2, 28, 28, 10, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	rng := nn.NewRNG(2)
	rng.Uniform(layers.Data(g.a), -1, 1)
	rng.Uniform(layers.Data(g.b), -1, 1)
	if err := g.prog.Run(); err != nil {
		t.Fatal(err)
	}
	t.Logf("terms %v loss %.3f", g.terms, g.prog.Scalar(0))
	finite(t, "fakeB", g.prog.Output(g.fakeB))
	if len(g.prog.Output(g.fakeB)) != 2*28*28 {
		t.Fatalf("fakeB has %d values", len(g.prog.Output(g.fakeB)))
	}
	d, err := m.buildCycleD(2, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.prog.Run(); err != nil {
		t.Fatal(err)
	}
	p, err := NewModel(testPix, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pix2pix: G %d, D %d parameters", count(p.Params.TrainableIn(genAB)), count(p.Params.TrainableIn(discB)))
	pg, err := p.buildPixG(2, 28, 28, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.ms.fill([]uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	if err := pg.prog.Run(); err != nil {
		t.Fatal(err)
	}
	finite(t, "pix fake", pg.prog.Output(pg.fake))
	pd, err := p.buildPixD(2, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	if err := pd.prog.Run(); err != nil {
		t.Fatal(err)
	}
}
