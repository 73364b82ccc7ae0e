package flow

import (
	"bytes"
	"context"
	"testing"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// testBatches returns steps batches of bs MNIST test digits (uint8).
func testBatches(t testing.TB, steps, bs int) []*sdk.Batch {
	t.Helper()
	x, y, err := digits.ReadMNIST("../../examples/data/mnist", "t10k")
	if err != nil {
		t.Fatal(err)
	}
	var out []*sdk.Batch
	for i := 0; i < steps; i++ {
		px := make([]uint8, bs*digits.Pixels)
		for j := range px {
			px[j] = uint8(x[i*bs*digits.Pixels+j]*255 + 0.5)
		}
		out = append(out, &sdk.Batch{Tensor: sdk.FromUint8(px, bs, 1, 28, 28), Labels: append([]int(nil), y[i*bs:(i+1)*bs]...)})
	}
	return out
}

func trainReq(t testing.TB, steps int, params sdk.Params) sdk.TrainRequest {
	full, errs := sdk.CheckParams(TrainParams, params, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return sdk.TrainRequest{Preset: "mnist-glow", Params: full, Seed: 3, Epochs: 1, Steps: steps}
}

func TestParameterCount(t *testing.T) {
	m, err := NewModel(findPreset("mnist-glow").arch, nn.NewRNG(1))
	if err == nil {
		t.Logf("mnist-glow: %d parameters", m.Params.Count())
	}
}

// TestTrainResumeIsExact trains mnist-glow on real digits 6 steps
// straight and 3 + 3 from a checkpoint: identical weights (the actnorm
// initialisation on the first batch included), and the bits per dimension
// go down.
func TestTrainResumeIsExact(t *testing.T) {
	if testing.Short() {
		t.Skip("trains the full flow for 12 steps")
	}
	const steps, bs = 6, 16
	batches := testBatches(t, steps, bs)
	params := sdk.Params{"log_every": 1, "warmup": 1}
	straight := &sdktest.Session{Req: trainReq(t, steps, params), Batches: batches}
	if err := New().(*Plugin).Train(context.Background(), straight); err != nil {
		t.Fatal(err)
	}
	part := &sdktest.Session{Req: trainReq(t, steps, params), Batches: batches, StopAt: 3}
	part.Req.CheckpointEvery = 3
	if err := New().(*Plugin).Train(context.Background(), part); err != nil {
		t.Fatal(err)
	}
	rest := &sdktest.Session{Req: trainReq(t, steps, params), Batches: batches, Pos: 3}
	rest.Req.Resume = part.Checkpoint
	if err := New().(*Plugin).Train(context.Background(), rest); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rest.Final, straight.Final) {
		t.Errorf("resumed run's weights differ from the straight run's")
	}
	first, last := straight.Events[0].Metrics["bits_per_dim"], straight.Events[steps-1].Metrics["bits_per_dim"]
	t.Logf("bits per dim %.3f -> %.3f over %d steps", first, last, steps)
	if !(last < first) {
		t.Errorf("bits per dim did not go down: %v -> %v", first, last)
	}
}
