package diffusion

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// The benchmarks bench/compare.py runs beside the PyTorch twin
// (testdata/torch_diffusion.py bench) on mnist-ddpm's U-Net at batch 64:
//
//	go test -run XXX -bench . -benchtime 10x ./plugins/diffusion

// BenchmarkTrainStep is one training step as Train runs it: noising a
// batch of 64 real digits to random steps, label dropout, forward and
// backward, gradient clipping, Adam and the moving average.
func BenchmarkTrainStep(b *testing.B) {
	p := findPreset("mnist-ddpm")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	avg, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	params, errs := sdk.CheckParams(TrainParams, nil, "")
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	rng := nn.NewRNG(2)
	t := &trainer{preset: p, m: m, avg: &ema{avg}, params: params, rng: rng, lr: 5e-4, opt: optim.NewAdam(5e-4),
		steps: map[int]*trainStep{}, sched: Cosine(T)}
	t.state = &train.TrainState{Params: m.Params, RNG: rng}
	batch := testBatches(b, 1, 64)[0]
	if _, err := t.step(batch); err != nil { // builds the graph
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := t.step(batch); err != nil {
			b.Fatal(err)
		}
		t.state.Step++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/step")
	b.ReportMetric(float64(m.Params.Count()), "params")
}

// BenchmarkInference is one evaluation of the denoiser on 64 noisy digits
// with their labels (a sampler's step without guidance).
func BenchmarkInference(b *testing.B) {
	p := findPreset("mnist-ddpm")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	d, err := m.buildNet(64)
	if err != nil {
		b.Fatal(err)
	}
	rng := nn.NewRNG(3)
	rng.Normal(layers.Data(d.in.X), 1)
	ts, labels := make([]int, 64), make([]int, 64)
	for i := range ts {
		ts[i], labels[i] = rng.IntN(T), i%10
	}
	x := append([]float32(nil), layers.Data(d.in.X)...)
	out := make([]float32, len(x))
	if err := d.eps(out, x, ts, labels); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.eps(out, x, ts, labels); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/batch")
	b.ReportMetric(float64(m.Params.Count()), "params")
}
