package vae

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
)

// benchArch is the shipped VAE's architecture; testdata/torch_vae.py
// builds the same network in PyTorch for the side-by-side comparison.
var benchArch = findPreset("mnist-vae").arch

// forwardFLOPs counts the multiply-adds (x2) of one image's forward pass:
// the convolutions, transposed convolutions and linear layers, which are
// all but a fraction of a percent of the work. A training step is counted
// as three forward passes (forward, input gradients, weight gradients).
func forwardFLOPs(a Arch) float64 {
	w, s := a.Width, a.Size
	conv := func(in, out, k, pixels int) float64 { return 2 * float64(in*k*k) * float64(out) * float64(pixels) }
	f := conv(a.Channels, w, 4, s*s/4) + conv(w, 2*w, 4, s*s/16) // encoder
	heads := 1
	if a.Variant == VAE {
		heads = 2
	}
	f += float64(heads) * 2 * float64(a.flat()*a.Latent)         // latent heads
	f += 2 * float64(a.Latent*a.flat())                          // decoder linear
	f += conv(w, 2*w, 4, s*s/16) + conv(a.Channels, w, 4, s*s/4) // transposed convs: same work as their adjoints
	return f
}

func BenchmarkTrainStep(b *testing.B) {
	m, err := NewModel(benchArch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	tg, err := m.buildLoss(64, true, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := nn.NewRNG(2)
	rng.Uniform(layers.Data(tg.x), 0, 1)
	copy(layers.Data(tg.t), layers.Data(tg.x))
	opt := optim.NewAdam(1e-3)
	ps := m.Params.Trainable()
	grads := make([][]float32, len(ps))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rng.Normal(layers.Data(tg.eps), 1)
		if err := tg.prog.Run(); err != nil {
			b.Fatal(err)
		}
		for j := range ps {
			grads[j] = tg.prog.Grad(j)
		}
		opt.Step(ps, grads)
	}
	ms := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(ms, "ms/step")
	b.ReportMetric(3*64*forwardFLOPs(benchArch)/ms/1e6, "GFLOP/s")
}

func BenchmarkInference(b *testing.B) {
	m, err := NewModel(benchArch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	enc, err := m.buildEncode(64)
	if err != nil {
		b.Fatal(err)
	}
	dec, err := m.buildDecode(64)
	if err != nil {
		b.Fatal(err)
	}
	nn.NewRNG(2).Uniform(layers.Data(enc.in), 0, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := enc.prog.Run(); err != nil {
			b.Fatal(err)
		}
		copy(layers.Data(dec.in), enc.prog.Output(0))
		if err := dec.prog.Run(); err != nil {
			b.Fatal(err)
		}
	}
	ms := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(ms, "ms/batch")
	b.ReportMetric(64*forwardFLOPs(benchArch)/ms/1e6, "GFLOP/s")
}
