package flow

import (
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// BenchmarkTrainStep is one training step of mnist-glow as Train runs
// it, on 64 real digits: dequantisation, forward and backward, clipping
// and Adam.
func BenchmarkTrainStep(b *testing.B) {
	p := findPreset("mnist-glow")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	params, errs := sdk.CheckParams(TrainParams, nil, "")
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	rng := nn.NewRNG(2)
	t := &trainer{preset: p, m: m, params: params, rng: rng, opt: optim.NewAdam(1e-3), steps: map[int]*step{}}
	t.state = &train.TrainState{Params: m.Params, RNG: rng}
	batch := testBatches(b, 1, 64)[0]
	if _, err := t.step(batch); err != nil {
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

// BenchmarkInference encodes 64 digits: the flow's forward pass with the
// latents and the log-likelihood of each.
func BenchmarkInference(b *testing.B) {
	p := findPreset("mnist-glow")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	batch := testBatches(b, 1, 64)[0]
	y := make([]float32, 64*m.Arch.Dims())
	if err := m.dequantize(batch, y, nil); err != nil {
		b.Fatal(err)
	}
	if _, _, err := m.run(y, 64); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := m.run(y, 64); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/batch")
	b.ReportMetric(float64(m.Params.Count()), "params")
}
