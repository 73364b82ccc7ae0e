package cyclegan

import (
	"context"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// The benchmarks' batches are fixed so that bench/compare.py cyclegan
// compares like with like: PyTorch's twin (testdata/torch_cyclegan.py
// bench) uses the same two.
const (
	// benchTrainBatch is the batch examples/train/typeset2mnist.yaml
	// trains the shipped CycleGAN with.
	benchTrainBatch = 8
	// benchTranslateBatch is the batch the other families' inference
	// benchmarks use.
	benchTranslateBatch = 64
)

// benchTrainer is built once per process: the benchmark function runs
// more than once (b.N = 1 first) and its warm-up fills the history pools,
// which takes several steps.
var benchTrainer struct {
	once  sync.Once
	t     *trainer
	batch *sdk.Batch
	err   error
}

// newBenchTrainer builds a trainer as Train does for the typeset2mnist
// preset with the default train params, and runs it until both history
// pools are full: a real training spends all but its first few steps
// there (every fake then goes through the pool's swap).
func newBenchTrainer(b *testing.B) (*trainer, *sdk.Batch, error) {
	p := findPreset("typeset2mnist")
	params, errs := sdk.CheckParams(TrainParams, nil, "")
	if len(errs) > 0 {
		return nil, nil, errs[0]
	}
	arch, err := trainArch(p, params)
	if err != nil {
		return nil, nil, err
	}
	rng := nn.NewRNG(1)
	m, err := NewModel(arch, rng)
	if err != nil {
		return nil, nil, err
	}
	t := &trainer{preset: p, m: m, params: params, rng: rng, lr: params.Float("lr"), lambda: 10,
		cycG: map[graphKey]*cycleGStep{}, cycD: map[graphKey]*cycleDStep{},
		pixG: map[graphKey]*pixGStep{}, pixD: map[graphKey]*pixDStep{}, tr: map[trKey]*translator{}}
	t.gOpt, t.dOpt = optim.NewAdam(t.lr), optim.NewAdam(t.lr)
	t.gOpt.Beta1, t.dOpt.Beta1 = params.Float("beta1"), params.Float("beta1")
	t.state = &train.TrainState{Params: m.Params, RNG: rng,
		Optimizers: map[string]optim.Optimizer{"g": t.gOpt, "d": t.dOpt}}
	t.pools = pools{newPool("a", params.Int("pool")), newPool("b", params.Int("pool"))}
	t.state.Extra = t.pools
	// Role a's batch carries role b's in Inputs, as the host sends them
	// (typeset digits and their unpaired stand-in for MNIST).
	batch := digitBatches(b, 1, benchTrainBatch, "b", false)[0]
	for len(t.pools[0].images) < t.pools[0].size || len(t.pools[1].images) < t.pools[1].size {
		if _, err := t.step(batch); err != nil {
			return nil, nil, err
		}
		t.state.Step++
	}
	return t, batch, nil
}

// BenchmarkTrainStep is one CycleGAN iteration of the shipped typeset2mnist
// architecture (digitsCycle) at batch 8, through trainer.step as Train runs
// it: the generators' step (LSGAN, cycle and identity losses, Adam), then
// the discriminators' step on fakes drawn from the full history pools of
// 50 (Adam). testdata/torch_cyclegan.py bench is the PyTorch twin;
// bench/compare.py cyclegan runs both. It also reports the parameters of
// all four networks, which the twin's must equal.
func BenchmarkTrainStep(b *testing.B) {
	benchTrainer.once.Do(func() {
		benchTrainer.t, benchTrainer.batch, benchTrainer.err = newBenchTrainer(b)
	})
	if benchTrainer.err != nil {
		b.Fatal(benchTrainer.err)
	}
	t, batch := benchTrainer.t, benchTrainer.batch
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := t.step(batch); err != nil {
			b.Fatal(err)
		}
		t.state.Step++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/step")
	b.ReportMetric(float64(t.m.Params.Count()), "params")
}

// BenchmarkTranslate is a batch of 64 28x28 images (float32 in [0, 1], as
// the host sends them) through the loaded a2b generator of the shipped
// architecture, by model.Translate. The weights are random (N(0, 0.02),
// as a training starts): the time does not depend on them. It also
// reports the a2b generator's parameters, which the twin's must equal.
func BenchmarkTranslate(b *testing.B) {
	p := findPreset("typeset2mnist")
	m, err := NewGenerators(p.arch)
	if err != nil {
		b.Fatal(err)
	}
	rng := nn.NewRNG(1)
	for _, q := range m.Params.Trainable() {
		rng.Normal(q.Data(), 0.02)
	}
	md := &model{m: m, preset: p, dir: AtoB, graphs: map[graphKey]*translator{}}
	defer md.Close()
	in := digitBatches(b, 1, benchTranslateBatch, "b", false)[0]
	px := in.Tensor.Float32s() // 0..255: the digits are uint8
	for i := range px {
		px[i] /= 255
	}
	batch := &sdk.Batch{Tensor: sdk.FromFloat32(px, in.Tensor.Shape...)}
	ctx := context.Background()
	if _, err := md.Translate(ctx, batch); err != nil { // compiles the graph
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := md.Translate(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/batch")
	n := 0
	for _, q := range m.Params.TrainableIn(genAB) {
		n += len(q.Data())
	}
	b.ReportMetric(float64(n), "params")
}
