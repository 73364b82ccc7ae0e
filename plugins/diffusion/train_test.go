package diffusion

import (
	"bytes"
	"context"
	"testing"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// testBatches returns steps batches of bs labelled MNIST test digits as
// float32 images in [0, 1] (as a chain of float stages delivers them).
func testBatches(t testing.TB, steps, bs int) []*sdk.Batch {
	t.Helper()
	x, y, err := digits.ReadMNIST("../../examples/data/mnist", "t10k")
	if err != nil {
		t.Fatal(err)
	}
	var out []*sdk.Batch
	for i := 0; i < steps; i++ {
		lo, hi := i*bs, (i+1)*bs
		out = append(out, &sdk.Batch{Tensor: sdk.FromFloat32(x[lo*digits.Pixels:hi*digits.Pixels], bs, 1, Size, Size),
			Labels: append([]int(nil), y[lo:hi]...)})
	}
	return out
}

func trainReq(t testing.TB, steps int, params sdk.Params) sdk.TrainRequest {
	full, errs := sdk.CheckParams(TrainParams, params, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return sdk.TrainRequest{Preset: "mnist-ddpm", Params: full, Seed: 9, Epochs: 1, Steps: steps}
}

// TestTrainResumeIsExact trains mnist-ddpm on real digits for 8 steps
// straight, and again as 4 steps, a checkpoint, and 4 more from it: the
// final weights (the moving average) must be identical byte for byte, so
// the parameters, Adam's moments, the average, the RNG (noise, steps and
// label dropout) and the warm-up all come back. The loss must go down.
func TestTrainResumeIsExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the full U-Net for 16 steps")
	}
	const steps, bs = 8, 8
	batches := testBatches(t, steps, bs)
	params := sdk.Params{"log_every": 1, "warmup": 2, "lr": 2e-3, "ema": 0.9}
	straight := &sdktest.Session{Req: trainReq(t, steps, params), Batches: batches}
	if err := New().(*Plugin).Train(context.Background(), straight); err != nil {
		t.Fatal(err)
	}
	part := &sdktest.Session{Req: trainReq(t, steps, params), Batches: batches, StopAt: 4}
	part.Req.CheckpointEvery = 4
	if err := New().(*Plugin).Train(context.Background(), part); err != nil {
		t.Fatal(err)
	}
	rest := &sdktest.Session{Req: trainReq(t, steps, params), Batches: batches, Pos: 4}
	rest.Req.Resume = part.Checkpoint
	if err := New().(*Plugin).Train(context.Background(), rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest.Final, straight.Final) {
		t.Errorf("resumed run's weights differ from the straight run's")
	}
	f, err := safetensors.Decode(straight.Final)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != weightsFormat || f.Metadata["steps"] != "8" {
		t.Errorf("weights metadata %v", f.Metadata)
	}
	// The loss of a fresh model is ~1 (it predicts no noise); a few steps
	// at a high rate must bring it down.
	first, last := straight.Events[0].Metrics["loss"], straight.Events[steps-1].Metrics["loss"]
	if !(last < first) {
		t.Errorf("loss did not go down over %d steps: %v -> %v", steps, first, last)
	}
}

// TestTrainLatentResumeIsExact trains mnist-latent on latent vectors (a
// two-cluster mixture, labelled by cluster) as 6 steps straight and as 3
// + 3 from a checkpoint: identical weights, including the data shift and
// scale set from the first batch.
func TestTrainLatentResumeIsExact(t *testing.T) {
	const steps, bs, dim = 6, 16, 32
	rng := nn.NewRNG(4)
	var batches []*sdk.Batch
	for i := 0; i < steps; i++ {
		z := make([]float32, bs*dim)
		rng.Normal(z, 0.5)
		labels := make([]int, bs)
		for k := range labels {
			labels[k] = k % 2
			for j := 0; j < dim; j++ {
				z[k*dim+j] += float32(4*labels[k]) - 1
			}
		}
		tz := sdk.FromFloat32(z, bs, dim)
		tz.Space = VAESpace
		batches = append(batches, &sdk.Batch{Tensor: tz, Labels: labels})
	}
	req := func() sdk.TrainRequest {
		r := trainReq(t, steps, sdk.Params{"log_every": 1, "warmup": 1, "lr": 1e-3})
		r.Preset = "mnist-latent"
		return r
	}
	straight := &sdktest.Session{Req: req(), Batches: batches}
	if err := New().(*Plugin).Train(context.Background(), straight); err != nil {
		t.Fatal(err)
	}
	part := &sdktest.Session{Req: req(), Batches: batches, StopAt: 3}
	part.Req.CheckpointEvery = 3
	if err := New().(*Plugin).Train(context.Background(), part); err != nil {
		t.Fatal(err)
	}
	rest := &sdktest.Session{Req: req(), Batches: batches, Pos: 3}
	rest.Req.Resume = part.Checkpoint
	if err := New().(*Plugin).Train(context.Background(), rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest.Final, straight.Final) {
		t.Errorf("resumed run's weights differ from the straight run's")
	}
	f, err := safetensors.Decode(straight.Final)
	if err != nil {
		t.Fatal(err)
	}
	scale, err := f.Tensor("data.scale").Float32()
	if err != nil {
		t.Fatal(err)
	}
	// Half the items near -1, half near 3, each with deviation 0.5:
	// the first batch's overall deviation is about √(0.25 + 4) ≈ 2.06.
	if s := scale[0]; s < 1.8 || s > 2.3 {
		t.Errorf("data scale %v, want about 2.06", s)
	}
}
