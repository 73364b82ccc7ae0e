package layers_test

// CycleGAN's ResNet generator (Zhu et al. 2017, junyanz's ResnetGenerator
// with instance norm and reflection padding) at 28x28, built from nn's
// layers: the yardstick for the translate family's speed. Its PyTorch twin
// is generator() in testdata/torch_translate.py.
//
// Side-by-side timing (run back to back, several times, medians):
//
//	go test -run XXX -bench ResnetGenerator -benchtime 20x ./nn/layers
//	/usr/bin/python3 nn/layers/testdata/torch_translate.py bench
//
// On 2026-12-05 (load average 2-6 from other users): Go 104-123 ms per
// step; PyTorch 1.13 with 1 thread 220-230 ms median (102-147 ms best),
// with 2 threads 1.1-1.8 s median (280-306 ms best: its OpenMP threads
// stall on a busy machine). Under a load of ~25 the Go step cost 104-154
// CPU-ms, PyTorch's single-threaded one 127-158.

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// resBlock is junyanz's ResnetBlock: x + IN(conv(pad(ReLU(IN(conv(pad(x))))))),
// its convolutions named conv_block.1 and conv_block.5 as there.
type resBlock struct {
	conv1, conv2 *layers.Conv2d
	in1, in2     *layers.InstanceNorm
}

func newResBlock(s layers.Scope, dim int) *resBlock {
	s = s.In("conv_block")
	return &resBlock{
		conv1: s.Conv2d("1", dim, dim, 3, 1, 0),
		in1:   s.InstanceNorm2d("2", dim, false),
		conv2: s.Conv2d("5", dim, dim, 3, 1, 0),
		in2:   s.InstanceNorm2d("6", dim, false),
	}
}

func (r *resBlock) forward(b *layers.Builder, x *G.Node) *G.Node {
	h := r.conv1.Forward(b, b.ReflectionPad2d(x, 1))
	h = b.ReLU(r.in1.Forward(b, h))
	h = r.in2.Forward(b, r.conv2.Forward(b, b.ReflectionPad2d(h, 1)))
	return b.Add(x, h)
}

// resnetGen is the generator with two stride-2 down- and up-samplings and
// the state_dict names of PyTorch's nn.Sequential (model.0 ... ).
type resnetGen struct {
	ps     *layers.Params
	first  *layers.Conv2d
	down   []*layers.Conv2d
	up     []*layers.ConvTranspose2d
	norms  []*layers.InstanceNorm // after first, down[0], down[1], up[0], up[1]
	blocks []*resBlock
	last   *layers.Conv2d
}

func newResnetGen(cin, cout, ngf, nblocks int, rng *nn.RNG) *resnetGen {
	g := &resnetGen{ps: layers.NewParams()}
	s := layers.NewScope(g.ps, rng)
	i := 1 // index 0 is the reflection pad
	g.first = s.Conv2d(fmt.Sprint(i), cin, ngf, 7, 1, 0)
	g.norms = append(g.norms, s.InstanceNorm2d(fmt.Sprint(i+1), ngf, false))
	i += 3
	for k, m := 0, 1; k < 2; k, m = k+1, m*2 {
		g.down = append(g.down, s.Conv2d(fmt.Sprint(i), ngf*m, ngf*m*2, 3, 2, 1))
		g.norms = append(g.norms, s.InstanceNorm2d(fmt.Sprint(i+1), ngf*m*2, false))
		i += 3
	}
	for k := 0; k < nblocks; k++ {
		g.blocks = append(g.blocks, newResBlock(s.In(fmt.Sprint(i)), ngf*4))
		i++
	}
	for k, m := 0, 4; k < 2; k, m = k+1, m/2 {
		g.up = append(g.up, s.ConvTranspose2d(fmt.Sprint(i), ngf*m, ngf*m/2, 3, 2, 1, 1))
		g.norms = append(g.norms, s.InstanceNorm2d(fmt.Sprint(i+1), ngf*m/2, false))
		i += 3
	}
	g.last = s.Conv2d(fmt.Sprint(i+1), ngf, cout, 7, 1, 0)
	return g
}

func (g *resnetGen) forward(b *layers.Builder, x *G.Node) *G.Node {
	h := b.ReLU(g.norms[0].Forward(b, g.first.Forward(b, b.ReflectionPad2d(x, 3))))
	for k, c := range g.down {
		h = b.ReLU(g.norms[1+k].Forward(b, c.Forward(b, h)))
	}
	for _, blk := range g.blocks {
		h = blk.forward(b, h)
	}
	for k, c := range g.up {
		h = b.ReLU(g.norms[3+k].Forward(b, c.Forward(b, h)))
	}
	return b.Tanh(g.last.Forward(b, b.ReflectionPad2d(h, 3)))
}

// genStep is one training evaluation: the L1 loss of the generator's
// output against a target, and the gradients of every weight.
type genStep struct {
	prog      *layers.Program
	x, target *G.Node
}

func newGenStep(g *resnetGen, n, size int) (*genStep, error) {
	b := layers.NewBuilder()
	x := b.Input("x", n, 1, size, size)
	target := b.Input("target", n, 1, size, size)
	loss := b.L1(g.forward(b, x), target)
	prog, err := layers.Compile(b, loss, g.ps.Trainable())
	if err != nil {
		return nil, err
	}
	return &genStep{prog: prog, x: x, target: target}, nil
}

func TestResnetGeneratorShapes(t *testing.T) {
	g := newResnetGen(1, 1, 8, 2, nn.NewRNG(1))
	// model.{1,4,7} convs, 2 blocks of 2 convs, 2 transposed, the last conv:
	// 10 weights and 10 biases; instance norms without affine have none.
	if n := len(g.ps.Trainable()); n != 20 {
		t.Errorf("%d parameters, want 20", n)
	}
	for _, name := range []string{"1.weight", "4.weight", "7.weight", "10.conv_block.1.weight", "11.conv_block.5.bias", "12.weight", "15.weight", "19.weight"} {
		if g.ps.Get(name) == nil {
			t.Errorf("no parameter %q", name)
		}
	}
	// The benchmark's generator has as many weights as PyTorch's twin
	// (torch_translate.py bench prints 1958785).
	n := 0
	for _, p := range newResnetGen(1, 1, 32, 6, nn.NewRNG(1)).ps.Trainable() {
		n += len(p.Data())
	}
	if n != 1958785 {
		t.Errorf("the benchmark generator has %d weights, PyTorch's 1958785", n)
	}
	s, err := newGenStep(g, 2, 28)
	if err != nil {
		t.Fatal(err)
	}
	nn.NewRNG(2).Uniform(layers.Data(s.x), -1, 1)
	if err := s.prog.Run(); err != nil {
		t.Fatal(err)
	}
	if l := s.prog.Scalar(0); !(l > 0 && l < 2) {
		t.Errorf("L1 loss %v of a tanh output against zeros, want in (0, 2)", l)
	}
}

// TestResnetGeneratorMatchesPyTorch loads a small generator's PyTorch
// state_dict (every name must match one of ours and the reverse) and
// reproduces its output, L1 loss and the loss's gradient in the input.
func TestResnetGeneratorMatchesPyTorch(t *testing.T) {
	fx := loadFixture(t, "testdata/torch_translate.safetensors")
	g := newResnetGen(1, 1, 4, 2, nn.NewRNG(1))
	torchNames := 0
	for _, ts := range fx.f.Tensors {
		if name := ts.Name; strings.HasPrefix(name, "gen.") {
			torchNames++
			if g.ps.Get(name[len("gen."):]) == nil {
				t.Errorf("PyTorch's %s has no counterpart", name)
			}
		}
	}
	if n := len(g.ps.All()); n != torchNames {
		t.Errorf("%d parameters, PyTorch's state_dict has %d", n, torchNames)
	}
	for _, p := range g.ps.All() {
		copy(p.Data(), fx.get("gen."+p.Name))
	}
	ps := layers.NewParams()
	x := fx.param(ps, "gen_io.x")
	b := layers.NewBuilder()
	y := g.forward(b, b.Param(x))
	target := b.Input("target", fx.shape("gen_io.target")...)
	copy(layers.Data(target), fx.get("gen_io.target"))
	prog, err := layers.Compile(b, b.L1(y, target), ps.Trainable(), y)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare("gen_io.y", prog.Output(1), 1e-5)
	fx.compare("gen_io.loss", prog.Output(0), 1e-6)
	fx.compare("gen_io.dx", prog.Grad(0), 1e-6)
}

var benchGen struct {
	once sync.Once
	s    *genStep
	err  error
}

// BenchmarkResnetGenerator times forward, L1 loss and backward of the
// 28x28 generator (c7s1-32, d64, d128, 6 residual blocks at 7x7, u64,
// u32, c7s1-1) on a batch of 8.
func BenchmarkResnetGenerator(b *testing.B) {
	benchGen.once.Do(func() {
		benchGen.s, benchGen.err = newGenStep(newResnetGen(1, 1, 32, 6, nn.NewRNG(1)), 8, 28)
		if benchGen.err == nil {
			rng := nn.NewRNG(2)
			rng.Uniform(layers.Data(benchGen.s.x), -1, 1)
			rng.Uniform(layers.Data(benchGen.s.target), -1, 1)
		}
	})
	if benchGen.err != nil {
		b.Fatal(benchGen.err)
	}
	prog := benchGen.s.prog
	if err := prog.Run(); err != nil { // the first run allocates every buffer
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := prog.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/step")
	b.ReportMetric((cpuTime()-cpu0)/float64(b.N), "cpu-ms/step")
}
