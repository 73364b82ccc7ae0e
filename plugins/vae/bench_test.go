package vae

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
)

// benchArch is the shipped VAE's architecture; testdata/torch_vae.py
// builds the same network in PyTorch for the side-by-side comparison.
var benchArch = Arch{Variant: VAE, Channels: 1, Size: 28, Width: 32, Latent: 16}

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
	rng.Uniform(nn.Data(tg.x), 0, 1)
	copy(nn.Data(tg.t), nn.Data(tg.x))
	opt := nn.NewAdam(1e-3)
	ps := m.Params.Trainable()
	grads := make([][]float32, len(ps))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rng.Normal(nn.Data(tg.eps), 1)
		if err := tg.prog.Run(); err != nil {
			b.Fatal(err)
		}
		for j := range ps {
			grads[j] = tg.prog.Grad(j)
		}
		opt.Step(ps, grads)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
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
	nn.NewRNG(2).Uniform(nn.Data(enc.in), 0, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := enc.prog.Run(); err != nil {
			b.Fatal(err)
		}
		copy(nn.Data(dec.in), enc.prog.Output(0))
		if err := dec.prog.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
