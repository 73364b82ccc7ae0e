package gan

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

const mnistTrain = "../../examples/data/mnist/train-images-idx3-ubyte.gz"
const mnistTrainLabels = "../../examples/data/mnist/train-labels-idx1-ubyte.gz"

func readGz(t testing.TB, path string, skip, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, zr, int64(skip)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(zr, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mnist returns n training digits (uint8 NCHW) and their labels.
func mnist(t testing.TB, n int) (*sdk.Tensor, []int) {
	img := readGz(t, mnistTrain, 16, n*Size*Size)
	lb := readGz(t, mnistTrainLabels, 8, n)
	labels := make([]int, n)
	for i, l := range lb {
		labels[i] = int(l)
	}
	return sdk.FromUint8(img, n, 1, Size, Size), labels
}

// mnistBatches returns steps labelled batches of bs training digits.
func mnistBatches(t testing.TB, steps, bs int) []*sdk.Batch {
	x, labels := mnist(t, steps*bs)
	var batches []*sdk.Batch
	for i := 0; i < steps; i++ {
		batches = append(batches, &sdk.Batch{Tensor: x.Slice(i*bs, (i+1)*bs), Labels: labels[i*bs : (i+1)*bs]})
	}
	return batches
}

// TestTrainEveryVariant trains each preset's architecture for a few steps
// on real digits and resumes one run from a checkpoint: the resumed run's
// weights must equal the straight run's byte for byte.
func TestTrainEveryVariant(t *testing.T) {
	const steps, bs = 6, 8
	batches := mnistBatches(t, steps, bs)
	for _, p := range presets {
		t.Run(p.name, func(t *testing.T) {
			params, errs := sdk.CheckParams(TrainParams, sdk.Params{"log_every": 1, "n_critic": 2}, "")
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			req := sdk.TrainRequest{Preset: p.name, Params: params, Seed: 3, Epochs: 1, Steps: steps, CheckpointEvery: 3, SampleEvery: 4}
			straight := &sdktest.Session{Req: req, Batches: batches}
			if err := New().(*Plugin).Train(context.Background(), straight); err != nil {
				t.Fatal(err)
			}
			checkSamples(t, p, straight.Events, []int{0, 4, 6})
			// Sampling runs in eval mode: it must not change training.
			quiet := &sdktest.Session{Req: req, Batches: batches}
			quiet.Req.SampleEvery = 0
			if err := New().(*Plugin).Train(context.Background(), quiet); err != nil {
				t.Fatal(err)
			}
			checkSamples(t, p, quiet.Events, nil)
			if !bytes.Equal(quiet.Final, straight.Final) {
				t.Errorf("weights trained with samples differ from those trained without")
			}
			for _, ev := range straight.Events {
				for k, v := range ev.Metrics {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Errorf("step %d: %s = %v", ev.Step, k, v)
					}
				}
			}
			part := &sdktest.Session{Req: req, Batches: batches, StopAt: 3}
			if err := New().(*Plugin).Train(context.Background(), part); err != nil {
				t.Fatal(err)
			}
			rest := &sdktest.Session{Req: req, Batches: batches, Pos: 3}
			rest.Req.Resume = part.Checkpoint
			if err := New().(*Plugin).Train(context.Background(), rest); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rest.Final, straight.Final) {
				t.Errorf("resumed run's weights differ from the straight run's")
			}
		})
	}
}

// TestTrainInit: a run given Init starts from those weights (a run with
// no data ends with them unchanged) and refuses another preset's.
func TestTrainInit(t *testing.T) {
	const steps, bs = 3, 8
	batches := mnistBatches(t, steps, bs)
	params, _ := sdk.CheckParams(TrainParams, nil, "")
	req := sdk.TrainRequest{Preset: "mnist-dcgan", Params: params, Seed: 3, Epochs: 1, Steps: steps}
	first := &sdktest.Session{Req: req, Batches: batches}
	if err := New().(*Plugin).Train(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	again := &sdktest.Session{Req: req}
	again.Req.Init, again.Req.Seed = first.Final, 99
	if err := New().(*Plugin).Train(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	a, err := safetensors.Decode(first.Final)
	if err != nil {
		t.Fatal(err)
	}
	b, err := safetensors.Decode(again.Final)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Tensors) != len(b.Tensors) {
		t.Fatalf("%d tensors, want %d", len(b.Tensors), len(a.Tensors))
	}
	for i := range a.Tensors {
		if a.Tensors[i].Name != b.Tensors[i].Name || !bytes.Equal(a.Tensors[i].Data, b.Tensors[i].Data) {
			t.Errorf("tensor %s differs from the init weights'", a.Tensors[i].Name)
		}
	}
	other := &sdktest.Session{Req: req}
	other.Req.Preset, other.Req.Init = "mnist-cgan", first.Final
	err = New().(*Plugin).Train(context.Background(), other)
	if err == nil || !strings.Contains(err.Error(), "init: the weights are for architecture") {
		t.Errorf("cgan run from dcgan weights: got %v, want an architecture error", err)
	}
}

// checkSamples checks that a run reported progress samples at the given
// steps: 64 images in rows of 8 (10 per class, one row per class, for a
// conditional preset), from the same noise each time, so each grid
// differs from the one before only because the model learnt.
func checkSamples(t *testing.T, p preset, events []sdk.TrainEvent, steps []int) {
	t.Helper()
	n, cols := 64, 8
	if p.arch.Classes > 0 {
		n, cols = 100, 10
	}
	var got []int
	var prev []byte
	for _, ev := range events {
		if ev.Samples == nil {
			continue
		}
		got = append(got, ev.Step)
		if want := []int{n, 1, Size, Size}; !slices.Equal(ev.Samples.Shape, want) || ev.Samples.DType != sdk.Uint8 {
			t.Errorf("step %d: samples %s %v, want uint8 %v", ev.Step, ev.Samples.DType, ev.Samples.Shape, want)
			continue
		}
		if ev.SampleColumns != cols {
			t.Errorf("step %d: %d columns, want %d", ev.Step, ev.SampleColumns, cols)
		}
		if prev != nil && bytes.Equal(prev, ev.Samples.Data) {
			t.Errorf("step %d: samples equal the previous ones: the model did not change?", ev.Step)
		}
		prev = ev.Samples.Data
	}
	if !slices.Equal(got, steps) {
		t.Errorf("samples at steps %v, want %v", got, steps)
	}
}

// TestGradientPenaltyGradient checks the WGAN-GP critic loss, penalty
// included (a second derivative through the critic), against finite
// differences in the critic's weights.
func TestGradientPenaltyGradient(t *testing.T) {
	m, err := NewModel(Arch{Variant: WGANGP, Z: 4, Width: 3}, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	// Larger weights than DCGAN's init so the penalty term is not nearly
	// constant, and biases that keep every LeakyReLU on its positive side:
	// a perturbed weight that flipped a unit's side would make the input
	// gradient, hence the penalty, jump, and finite differences meaningless.
	for _, p := range m.part("discriminator") {
		nn.NewRNG(2).Normal(p.Data(), 0.3)
	}
	for _, name := range []string{"discriminator.conv1.bias", "discriminator.conv2.bias"} {
		for i := range m.Params.Get(name).Data() {
			m.Params.Get(name).Data()[i] = 40
		}
	}
	c, err := m.buildCritic(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	rng := nn.NewRNG(4)
	rng.Uniform(layers.Data(c.real), -1, 1)
	rng.Uniform(layers.Data(c.fake), -1, 1)
	rng.Uniform(layers.Data(c.interp), -1, 1)
	if err := c.prog.Run(); err != nil {
		t.Fatal(err)
	}
	if gp := c.prog.Scalar(c.outPenalty); gp < 1e-3 {
		t.Fatalf("penalty %v too small to test", gp)
	}
	ps := m.part("discriminator")
	grads := make([][]float32, len(ps))
	for i := range ps {
		grads[i] = append([]float32(nil), c.prog.Grad(i)...)
	}
	const eps = 1e-2
	checked := 0
	for i, p := range ps {
		d := p.Data()
		if strings.HasSuffix(p.Name, ".bias") && !strings.HasPrefix(p.Name, "discriminator.fc") {
			continue // the penalty is flat in biases that only move kinks
		}
		for j := 0; j < len(d); j += 1 + len(d)/8 {
			old := d[j]
			d[j] = old + eps
			c.prog.Run()
			up := c.prog.Scalar(0)
			d[j] = old - eps
			c.prog.Run()
			down := c.prog.Scalar(0)
			d[j] = old
			fd := (up - down) / (2 * eps)
			checked++
			if math.Abs(fd-float64(grads[i][j])) > 3e-2*(1+math.Abs(fd)) {
				t.Errorf("%s[%d]: analytic %v, finite difference %v", p.Name, j, grads[i][j], fd)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d entries checked", checked)
	}
}

func TestWarn(t *testing.T) {
	for _, c := range []struct {
		avg  map[string]float64
		want string
	}{
		{map[string]float64{"spread": 0.36, "d_loss": 0.6}, ""},
		{map[string]float64{"spread": 0.01, "d_loss": 0.6}, "mode collapse"},
		{map[string]float64{"spread": 0.3, "d_loss": 1e-5}, "discriminator wins"},
		{map[string]float64{"spread": 0.3, "d_loss": -3, "wasserstein": 3}, ""},
	} {
		if got := warn(c.avg); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("warn(%v) = %q, want %q", c.avg, got, c.want)
		}
	}
	// Real digits are not a collapsed batch.
	x, _ := mnist(t, 64)
	px := make([]float32, len(x.Data))
	for i, v := range x.Data {
		px[i] = float32(v)/127.5 - 1
	}
	if s := spread(px, 64); s < 0.3 || s > 0.45 {
		t.Errorf("spread of 64 real digits = %v, want 0.3-0.45", s)
	}
}

// TestGenerate: samples depend only on their seed (not on the batch),
// labels select the conditional model's class planes, and interpolate
// turns each item into frames that start at its own sample.
func TestGenerate(t *testing.T) {
	for _, p := range []string{"mnist-dcgan", "mnist-cgan"} {
		pr := findPreset(p)
		m, err := NewModel(pr.arch, nn.NewRNG(1))
		if err != nil {
			t.Fatal(err)
		}
		params, _ := sdk.CheckParams(GenerateParams, nil, "")
		md := &model{m: m, preset: pr, params: params, samplers: map[int]*sampler{}}
		ctx := context.Background()
		many, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{4, 5, 6}, Labels: []int{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		one, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{5}, Labels: []int{2}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(one.Data, many.Data[Size*Size:2*Size*Size]) {
			t.Errorf("%s: seed 5's sample depends on the batch", p)
		}
		if pr.arch.Classes > 0 {
			other, _ := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{5}, Labels: []int{7}})
			if bytes.Equal(other.Data, one.Data) {
				t.Errorf("%s: the label does not change the sample", p)
			}
		}
		md.params["interpolate"] = 4
		walk, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{4, 5, 6}, Labels: []int{1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		if got := walk.Shape; len(got) != 5 || got[0] != 3 || got[1] != 4 {
			t.Fatalf("%s: walk shape %v, want [3 4 1 28 28]", p, got)
		}
		if !bytes.Equal(walk.Data[4*Size*Size:5*Size*Size], one.Data) {
			t.Errorf("%s: item 1's walk does not start at its own sample", p)
		}
	}
}
