package gan

import (
	"context"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// BenchmarkTrainStep is one DCGAN iteration of the shipped mnist-dcgan
// architecture at batch 64: a discriminator step on a real and a fake
// batch, then a generator step through the discriminator (Adam both).
// testdata/torch_gan.py is the PyTorch twin; bench/compare.py gan runs
// both side by side.
func BenchmarkTrainStep(b *testing.B) {
	p := findPreset("mnist-dcgan")
	params, _ := sdk.CheckParams(TrainParams, nil, "")
	rng := nn.NewRNG(1)
	m, err := NewModel(p.arch, rng)
	if err != nil {
		b.Fatal(err)
	}
	g, d := optim.NewAdam(2e-4), optim.NewAdam(2e-4)
	t := &trainer{preset: p, m: m, params: params, rng: rng, gOpt: g, dOpt: d, nCritic: 1,
		gParams: m.part("generator"), dParams: m.part("discriminator"),
		critics: map[int]*critic{}, gens: map[int]*genStep{}, samplers: map[int]*sampler{}}
	t.state = &train.TrainState{Params: m.Params, RNG: rng}
	x := sdk.NewTensor(sdk.Uint8, 64, 1, Size, Size)
	for i := range x.Data {
		x.Data[i] = uint8(rng.IntN(256))
	}
	batch := &sdk.Batch{Tensor: x}
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
}

// BenchmarkGenerate is a batch of 64 mnist-dcgan samples (eval mode).
func BenchmarkGenerate(b *testing.B) {
	p := findPreset("mnist-dcgan")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	params, _ := sdk.CheckParams(GenerateParams, nil, "")
	md := &model{m: m, preset: p, params: params, samplers: map[int]*sampler{}}
	seeds := make([]uint64, 64)
	for i := range seeds {
		seeds[i] = uint64(i)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: seeds}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/batch")
}
