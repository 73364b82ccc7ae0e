package layers_test

// A DDPM U-Net denoiser built from nn's layers, the yardstick for whether
// nn can train a diffusion-sized network on this machine. Its PyTorch twin
// is testdata/torch_unet.py (same layers, order and state_dict names).
//
// Side-by-side timing (run back to back, several times, medians):
//
//	go test -run XXX -bench 'UNet' -benchtime 10x ./nn/layers
//	/usr/bin/python3 nn/layers/testdata/torch_unet.py bench
//
// Peak RSS of the Go training benchmark alone:
//
//	go test -c -o /tmp/nn.test ./nn/layers
//	cd nn/layers && /usr/bin/time -v /tmp/nn.test -test.run XXX -test.bench UNetTrainStep -test.benchtime 10x
//
// ("Maximum resident set size" in the output; the PyTorch script reports
// its own via getrusage.)

import (
	"math"
	"sync"
	"syscall"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/ops"
	"github.com/genpipe/genpipe/nn/optim"
	G "gorgonia.org/gorgonia"
)

// unetArch is the U-Net's shape: base width (levels have base, 2·base and
// 4·base channels), time-embedding width and GroupNorm groups.
type unetArch struct {
	ch, base, tdim, groups int
}

// benchUNet is the benchmarked network: 926,017 parameters.
var benchUNet = unetArch{ch: 1, base: 32, tdim: 64, groups: 8}

type unet struct {
	a  unetArch
	ps *layers.Params
}

func newUNet(a unetArch, rng *nn.RNG) *unet {
	u := &unet{a: a, ps: layers.NewParams()}
	ps := u.ps
	conv := func(name string, out, in, k int) {
		rng.KaimingUniform(ps.Add(name+".weight", out, in, k, k).Data(), in*k*k)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), in*k*k)
	}
	linear := func(name string, out, in int) {
		rng.KaimingUniform(ps.Add(name+".weight", out, in).Data(), in)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), in)
	}
	norm := func(name string, c int) {
		w := ps.Add(name+".weight", c)
		for i := range w.Data() {
			w.Data()[i] = 1
		}
		ps.Add(name+".bias", c)
	}
	res := func(name string, cin, cout int) {
		norm(name+".norm1", cin)
		conv(name+".conv1", cout, cin, 3)
		linear(name+".temb", cout, a.tdim)
		norm(name+".norm2", cout)
		conv(name+".conv2", cout, cout, 3)
		if cin != cout {
			conv(name+".skip", cout, cin, 1)
		}
	}
	b := a.base
	linear("time_mlp.0", a.tdim, b)
	linear("time_mlp.2", a.tdim, a.tdim)
	conv("conv_in", b, a.ch, 3)
	res("down0", b, b)
	conv("downsample0", b, b, 3)
	res("down1", b, 2*b)
	conv("downsample1", 2*b, 2*b, 3)
	res("mid0", 2*b, 4*b)
	res("mid1", 4*b, 4*b)
	conv("upconv1", 2*b, 4*b, 3)
	res("up1", 4*b, 2*b)
	conv("upconv0", b, 2*b, 3)
	res("up0", 2*b, b)
	norm("norm_out", b)
	conv("conv_out", a.ch, b, 3)
	return u
}

// flops counts the forward pass's multiply-adds times two (convolutions
// and linear layers; normalisation and activations are a few percent).
type flops struct{ n int64 }

func (f *flops) conv(g ops.ConvGeom) { f.n += g.FLOPs() }

func (u *unet) p(name string) *layers.Param { return u.ps.Get(name) }

func (u *unet) conv(b *layers.Builder, fl *flops, x *G.Node, name string, stride, pad int) *G.Node {
	if b.Err() != nil || x == nil {
		return nil
	}
	w := u.p(name + ".weight")
	s, ws := x.Shape(), w.Shape()
	if g, err := ops.NewConvGeom(s[0], s[1], s[2], s[3], ws[0], ws[2], ws[3], stride, stride, pad, pad); err == nil {
		fl.conv(g)
	}
	return b.Conv2d(x, w, u.p(name+".bias"), stride, pad)
}

func (u *unet) linear(b *layers.Builder, fl *flops, x *G.Node, name string) *G.Node {
	if b.Err() != nil || x == nil {
		return nil
	}
	w := u.p(name + ".weight")
	fl.n += 2 * int64(x.Shape()[0]*w.Shape()[0]*w.Shape()[1])
	return b.Linear(x, w, u.p(name+".bias"))
}

func (u *unet) norm(b *layers.Builder, x *G.Node, name string) *G.Node {
	return b.GroupNorm(x, u.a.groups, u.p(name+".weight"), u.p(name+".bias"))
}

func (u *unet) res(b *layers.Builder, fl *flops, x, t *G.Node, name string) *G.Node {
	h := u.conv(b, fl, b.SiLU(u.norm(b, x, name+".norm1")), name+".conv1", 1, 1)
	h = b.AddSampleChannel(h, u.linear(b, fl, t, name+".temb"))
	h = u.conv(b, fl, b.SiLU(u.norm(b, h, name+".norm2")), name+".conv2", 1, 1)
	skip := x
	if u.p(name+".skip.weight") != nil {
		skip = u.conv(b, fl, x, name+".skip", 1, 0)
	}
	return b.Apply(name+" residual", func() (*G.Node, error) { return G.Add(h, skip) })
}

// forward builds the denoiser on x [N, ch, S, S] and the sinusoidal
// time features [N, base], returning the predicted noise and the FLOP
// count of one forward pass.
func (u *unet) forward(b *layers.Builder, x, feats *G.Node) (*G.Node, int64) {
	fl := &flops{}
	t := b.SiLU(u.linear(b, fl, b.SiLU(u.linear(b, fl, feats, "time_mlp.0")), "time_mlp.2"))
	h0 := u.res(b, fl, u.conv(b, fl, x, "conv_in", 1, 1), t, "down0")
	h1 := u.res(b, fl, u.conv(b, fl, h0, "downsample0", 2, 1), t, "down1")
	h := u.res(b, fl, u.conv(b, fl, h1, "downsample1", 2, 1), t, "mid0")
	h = u.res(b, fl, h, t, "mid1")
	h = u.conv(b, fl, b.Upsample(h, 2), "upconv1", 1, 1)
	h = u.res(b, fl, b.ConcatChannels(h, h1), t, "up1")
	h = u.conv(b, fl, b.Upsample(h, 2), "upconv0", 1, 1)
	h = u.res(b, fl, b.ConcatChannels(h, h0), t, "up0")
	return u.conv(b, fl, b.SiLU(u.norm(b, h, "norm_out")), "conv_out", 1, 1), fl.n
}

// sinusoidal writes the [len(ts), dim] time features
// [sin(t·f_i), cos(t·f_i)], f_i = 10000^(-i/(dim/2)).
func sinusoidal(dst []float32, ts []float32, dim int) {
	half := dim / 2
	for n, t := range ts {
		for i := 0; i < half; i++ {
			f := math.Exp(-math.Log(10000) * float64(i) / float64(half))
			a := float64(t) * float64(float32(f))
			dst[n*dim+i] = float32(math.Sin(a))
			dst[n*dim+half+i] = float32(math.Cos(a))
		}
	}
}

// ddpmStep is a compiled training step: x_t and the time features in, MSE
// against the noise out, gradients for every parameter.
type ddpmStep struct {
	prog            *layers.Program
	x, feats, noise *G.Node
	flops           int64
	alphaBar        []float64
}

func newDDPMStep(u *unet, n, size int) (*ddpmStep, error) {
	b := layers.NewBuilder()
	s := &ddpmStep{}
	s.x = b.Input("x_t", n, u.a.ch, size, size)
	s.feats = b.Input("t_features", n, u.a.base)
	s.noise = b.Input("noise", n, u.a.ch, size, size)
	pred, fl := u.forward(b, s.x, s.feats)
	s.flops = fl
	prog, err := layers.Compile(b, b.MSE(pred, s.noise), u.ps.Trainable())
	if err != nil {
		return nil, err
	}
	s.prog = prog
	// Linear β schedule 1e-4 .. 0.02 over 1000 steps, as the twin.
	ab := 1.0
	for i := 0; i < 1000; i++ {
		ab *= 1 - (1e-4 + (0.02-1e-4)*float64(i)/999)
		s.alphaBar = append(s.alphaBar, ab)
	}
	return s, nil
}

// prepare noises the clean batch x0 at random timesteps, as a DDPM
// training step does.
func (s *ddpmStep) prepare(rng *nn.RNG, x0 []float32, ts []float32) {
	xt, eps := layers.Data(s.x), layers.Data(s.noise)
	rng.Normal(eps, 1)
	per := len(x0) / len(ts)
	for i := range ts {
		t := rng.IntN(1000)
		ts[i] = float32(t)
		a, c := float32(math.Sqrt(s.alphaBar[t])), float32(math.Sqrt(1-s.alphaBar[t]))
		for j := i * per; j < (i+1)*per; j++ {
			xt[j] = a*x0[j] + c*eps[j]
		}
	}
	sinusoidal(layers.Data(s.feats), ts, s.feats.Shape()[1])
}

func TestUNetParameterCount(t *testing.T) {
	if got := newUNet(benchUNet, nn.NewRNG(1)).ps.Count(); got != 926017 {
		t.Errorf("U-Net has %d parameters; torch_unet.py's twin has 926017", got)
	}
}

// TestUNetMatchesPyTorch loads the width-4 twin's state_dict written by
// testdata/torch_unet.py and must reproduce its output, so the benchmark
// compares the same network.
func TestUNetMatchesPyTorch(t *testing.T) {
	fx := loadFixture(t, "testdata/torch_unet.safetensors")
	u := newUNet(unetArch{ch: 1, base: 4, tdim: 8, groups: 2}, nn.NewRNG(1))
	for _, p := range u.ps.All() {
		want := fx.shape(p.Name)
		if !equalInts(want, p.Shape()) {
			t.Fatalf("%s: shape %v, PyTorch %v", p.Name, p.Shape(), want)
		}
		copy(p.Data(), fx.get(p.Name))
	}
	xs := fx.shape("io.x")
	b := layers.NewBuilder()
	x := b.Input("x", xs...)
	copy(layers.Data(x), fx.get("io.x"))
	feats := b.Input("feats", xs[0], 4)
	sinusoidal(layers.Data(feats), fx.get("io.t"), 4)
	fx.compare("io.feats", layers.Data(feats), 1e-6)
	y, _ := u.forward(b, x, feats)
	prog, err := layers.Compile(b, nil, nil, y)
	if err != nil {
		t.Fatal(err)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	fx.compare("io.y", prog.Output(0), 1e-5)
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestUNetTrainStepLearns is a smoke test of the whole training step at a
// small size: a few Adam steps on one batch lower its loss.
func TestUNetTrainStepLearns(t *testing.T) {
	u := newUNet(unetArch{ch: 1, base: 8, tdim: 16, groups: 4}, nn.NewRNG(2))
	s, err := newDDPMStep(u, 4, 8)
	if err != nil {
		t.Fatal(err)
	}
	rng := nn.NewRNG(3)
	x0 := make([]float32, 4*8*8)
	rng.Uniform(x0, -1, 1)
	s.prepare(rng, x0, make([]float32, 4))
	opt := optim.NewAdam(1e-2)
	ps := u.ps.Trainable()
	grads := make([][]float32, len(ps))
	var first, last float64
	for i := 0; i < 15; i++ {
		if err := s.prog.Run(); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = s.prog.Scalar(0)
		}
		last = s.prog.Scalar(0)
		for j := range ps {
			grads[j] = s.prog.Grad(j)
		}
		opt.Step(ps, grads)
	}
	if !(last < 0.5*first) {
		t.Errorf("loss went from %v to %v in 15 steps on one batch", first, last)
	}
}

const benchBatch, benchSize = 64, 28

// benchTrain is built once per process: the testing package calls a
// benchmark function more than once (b.N = 1 first), and a second network
// built while the first is still garbage would inflate the peak RSS this
// benchmark is used to measure.
var benchTrain struct {
	once sync.Once
	u    *unet
	s    *ddpmStep
	err  error
}

func BenchmarkUNetTrainStep(b *testing.B) {
	benchTrain.once.Do(func() {
		benchTrain.u = newUNet(benchUNet, nn.NewRNG(1))
		benchTrain.s, benchTrain.err = newDDPMStep(benchTrain.u, benchBatch, benchSize)
	})
	if benchTrain.err != nil {
		b.Fatal(benchTrain.err)
	}
	u, s := benchTrain.u, benchTrain.s
	rng := nn.NewRNG(2)
	x0 := make([]float32, benchBatch*benchSize*benchSize)
	rng.Uniform(x0, -1, 1)
	ts := make([]float32, benchBatch)
	opt := optim.NewAdam(2e-4)
	ps := u.ps.Trainable()
	grads := make([][]float32, len(ps))
	step := func() {
		s.prepare(rng, x0, ts)
		if err := s.prog.Run(); err != nil {
			b.Fatal(err)
		}
		for j := range ps {
			grads[j] = s.prog.Grad(j)
		}
		opt.Step(ps, grads)
	}
	step() // first run allocates every buffer
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		step()
	}
	ms := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(ms, "ms/step")
	b.ReportMetric((cpuTime()-cpu0)/float64(b.N), "cpu-ms/step")
	// Training is counted as three forward passes (forward, and the data
	// and weight gradients of every layer).
	b.ReportMetric(3*float64(s.flops)/(ms*1e6), "GFLOP/s")
	b.ReportMetric(float64(s.flops)/benchBatch/1e6, "fwdMFLOP/img")
}

var benchInfer struct {
	once  sync.Once
	prog  *layers.Program
	flops int64
	err   error
}

func BenchmarkUNetInference(b *testing.B) {
	benchInfer.once.Do(func() {
		u := newUNet(benchUNet, nn.NewRNG(1))
		bd := layers.NewBuilder()
		x := bd.Input("x", benchBatch, 1, benchSize, benchSize)
		feats := bd.Input("t_features", benchBatch, benchUNet.base)
		rng := nn.NewRNG(2)
		rng.Uniform(layers.Data(x), -1, 1)
		ts := make([]float32, benchBatch)
		for i := range ts {
			ts[i] = float32(rng.IntN(1000))
		}
		sinusoidal(layers.Data(feats), ts, benchUNet.base)
		y, fl := u.forward(bd, x, feats)
		benchInfer.flops = fl
		benchInfer.prog, benchInfer.err = layers.Compile(bd, nil, nil, y)
	})
	if benchInfer.err != nil {
		b.Fatal(benchInfer.err)
	}
	prog, fl := benchInfer.prog, benchInfer.flops
	if err := prog.Run(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := prog.Run(); err != nil {
			b.Fatal(err)
		}
	}
	ms := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(ms, "ms/step")
	b.ReportMetric((cpuTime()-cpu0)/float64(b.N), "cpu-ms/step")
	b.ReportMetric(float64(fl)/(ms*1e6), "GFLOP/s")
}

// cpuTime is the process's user+system CPU time in milliseconds: on a
// shared machine it shows the work done independently of how much of the
// wall time the process got.
func cpuTime() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}
