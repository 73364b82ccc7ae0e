package cyclegan

import (
	"math"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// torchFixture reads testdata/torch_cyclegan.safetensors, written by
// testdata/torch_cyclegan.py (the PyTorch twin).
type torchFixture struct {
	t *testing.T
	f *safetensors.File
}

func (fx torchFixture) get(name string) []float32 {
	fx.t.Helper()
	ts := fx.f.Tensor(name)
	if ts == nil {
		fx.t.Fatalf("fixture lacks %q", name)
	}
	v, err := ts.Float32()
	if err != nil {
		fx.t.Fatal(err)
	}
	return v
}

// load copies the twin's weights under prefix into the model's
// parameters, and checks that the two have the same names and shapes.
func (fx torchFixture) load(m *Model, prefix string) {
	fx.t.Helper()
	seen := 0
	for _, ts := range fx.f.Tensors {
		if !strings.HasPrefix(ts.Name, prefix) || strings.Count(ts.Name[len(prefix):], ".") == 0 {
			continue
		}
		name := ts.Name[len(prefix):]
		if strings.HasPrefix(name, "g.") || strings.HasPrefix(name, "d.") || strings.HasPrefix(name, "mask.") {
			continue
		}
		p := m.Params.Get(name)
		if p == nil {
			fx.t.Fatalf("PyTorch has %s, the Go model has no such parameter", name)
		}
		v := fx.get(ts.Name)
		if len(v) != len(p.Data()) {
			fx.t.Fatalf("%s: PyTorch has %d values, Go %d", name, len(v), len(p.Data()))
		}
		copy(p.Data(), v)
		seen++
	}
	if seen != len(m.Params.Trainable()) {
		fx.t.Fatalf("PyTorch set %d parameters, the Go model has %d", seen, len(m.Params.Trainable()))
	}
}

// compare checks got against the twin's tensor name: the largest
// difference, relative to the tensor's largest magnitude (at least floor),
// must be below tol.
func (fx torchFixture) compare(name string, got []float32, tol float64) {
	fx.t.Helper()
	fx.compareFloor(name, got, tol, 1e-2)
}

// compareGrads compares the gradients of a step's parameters, each
// relative to the largest gradient of the whole step: the biases of
// convolutions that an instance norm follows have a true gradient of zero
// (the norm removes a per-channel constant), and both sides return float32
// noise there.
func (fx torchFixture) compareGrads(prefix string, params []*layers.Param, grad func(int) []float32, tol float64) {
	fx.t.Helper()
	scale := 0.0
	for _, p := range params {
		for _, v := range fx.get(prefix + p.Name) {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
	}
	for i, p := range params {
		fx.compareFloor(prefix+p.Name, grad(i), tol, scale/10)
	}
}

func (fx torchFixture) compareFloor(name string, got []float32, tol, floor float64) {
	fx.t.Helper()
	want := fx.get(name)
	if len(got) != len(want) {
		fx.t.Errorf("%s: %d values, PyTorch has %d", name, len(got), len(want))
		return
	}
	worst, scale := 0.0, 0.0
	for i := range want {
		scale = math.Max(scale, math.Abs(float64(want[i])))
	}
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i]))/math.Max(floor, scale))
	}
	if worst > tol {
		fx.t.Errorf("%s: max difference from PyTorch %.3g of its largest value", name, worst)
	}
}

func openTorch(t *testing.T) torchFixture {
	f, err := safetensors.ReadFile("testdata/torch_cyclegan.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	return torchFixture{t, f}
}

// TestCycleGANMatchesPyTorch loads PyTorch-written weights and checks the
// generator step (fakes, each loss term, the total and every gradient)
// and the discriminator step against the twin.
func TestCycleGANMatchesPyTorch(t *testing.T) {
	fx := openTorch(t)
	m, err := NewModel(Arch{Kind: CycleGAN, A: 1, B: 1, NGF: 4, Downs: 2, Blocks: 2, NDF: 4, DLayers: 2}, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	fx.load(m, "cycle.")
	g, err := m.buildCycleG(2, 16, 16, 10, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(g.a), fx.get("cycle.real_a"))
	copy(layers.Data(g.b), fx.get("cycle.real_b"))
	if err := g.prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare("cycle.g.loss", g.prog.Output(0), 1e-4)
	for i, name := range g.terms {
		fx.compare("cycle.g.term."+name, g.prog.Output(1+i), 1e-4)
	}
	fx.compare("cycle.g.fake_b", g.prog.Output(g.fakeB), 1e-4)
	fx.compare("cycle.g.fake_a", g.prog.Output(g.fakeA), 1e-4)
	fx.compareGrads("cycle.g.grad.", g.params, g.prog.Grad, 1e-3)
	d, err := m.buildCycleD(2, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(d.realA), fx.get("cycle.real_a"))
	copy(layers.Data(d.realB), fx.get("cycle.real_b"))
	copy(layers.Data(d.fakeA), fx.get("cycle.g.fake_a"))
	copy(layers.Data(d.fakeB), fx.get("cycle.g.fake_b"))
	if err := d.prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare("cycle.d.loss", d.prog.Output(0), 1e-4)
	fx.compare("cycle.d.d_a", d.prog.Output(1), 1e-4)
	fx.compare("cycle.d.d_b", d.prog.Output(2), 1e-4)
	fx.compareGrads("cycle.d.grad.", d.params, d.prog.Grad, 1e-3)
}

// TestPix2PixMatchesPyTorch does the same for pix2pix, with the twin's
// dropout masks copied into the Go graph's mask inputs.
func TestPix2PixMatchesPyTorch(t *testing.T) {
	fx := openTorch(t)
	m, err := NewModel(Arch{Kind: Pix2Pix, A: 1, B: 1, NGF: 4, Downs: 2, Blocks: 1, NDF: 4, DLayers: 2, Dropout: 0.5}, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	fx.load(m, "pix.")
	g, err := m.buildPixG(2, 16, 16, 100)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(g.x), fx.get("pix.x"))
	copy(layers.Data(g.y), fx.get("pix.y"))
	if len(g.ms) != 2 {
		t.Fatalf("the U-Net has %d dropout layers, the twin 2", len(g.ms))
	}
	for _, mk := range g.ms {
		copy(layers.Data(mk.Node), fx.get("pix.mask."+mk.Name))
	}
	if err := g.prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare("pix.g.loss", g.prog.Output(0), 1e-4)
	for i, name := range g.terms {
		fx.compare("pix.g.term."+name, g.prog.Output(1+i), 1e-4)
	}
	fx.compare("pix.g.fake", g.prog.Output(g.fake), 1e-4)
	fx.compareGrads("pix.g.grad.", g.params, g.prog.Grad, 1e-3)
	d, err := m.buildPixD(2, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	copy(layers.Data(d.x), fx.get("pix.x"))
	copy(layers.Data(d.y), fx.get("pix.y"))
	copy(layers.Data(d.fake), fx.get("pix.g.fake"))
	if err := d.prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare("pix.d.loss", d.prog.Output(0), 1e-4)
	fx.compareGrads("pix.d.grad.", d.params, d.prog.Grad, 1e-3)
}
