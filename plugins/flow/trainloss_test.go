package flow

import (
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
)

// TestTrainingLossIsTheLikelihood: the training graph's loss on a batch
// equals the mean bits per dimension the encode path (the held-out
// evaluation and the items' scores) gives the same dequantised batch, and
// stays equal after the parameters move, so training optimises the very
// likelihood that is reported.
func TestTrainingLossIsTheLikelihood(t *testing.T) {
	for _, a := range []Arch{
		{Ch: 1, Size: 8, Levels: 3, Steps: 2, Hidden: 8},
		{Ch: 1, Size: 8, Levels: 3, Steps: 2, Hidden: 8, Logit: 0.05},
	} {
		t.Run(a.JSON(), func(t *testing.T) { checkTrainingLoss(t, a) })
	}
}

func checkTrainingLoss(t *testing.T, a Arch) {
	m := randomModel(t, a, 11)
	const n = 6
	px := make([]byte, n*a.Dims())
	rng := nn.NewRNG(5)
	for i := range px {
		px[i] = byte(rng.IntN(256))
	}
	b := &sdk.Batch{Tensor: &sdk.Tensor{DType: sdk.Uint8, Shape: []int{n, 1, a.Size, a.Size}, Data: px}}
	y := make([]float32, n*a.Dims())
	if err := m.dequantize(b, y, nn.NewRNG(9)); err != nil {
		t.Fatal(err)
	}
	st, err := m.buildStep(n)
	if err != nil {
		t.Fatal(err)
	}
	defer st.prog.Close()
	for round := 0; round < 3; round++ {
		loss, err := st.run(a, y, n)
		if err != nil {
			t.Fatal(err)
		}
		logp, err := m.logLikelihood(y, n)
		if err != nil {
			t.Fatal(err)
		}
		var mean float64
		for _, v := range logp {
			mean += BitsPerDim(v, a.Dims())
		}
		mean /= n
		if math.Abs(loss-mean) > 1e-3*math.Max(1, math.Abs(mean)) {
			t.Fatalf("round %d: training loss %.5f bits/dim, encode path %.5f", round, loss, mean)
		}
		// Move every parameter, as an optimiser step would.
		for _, p := range m.Params.Trainable() {
			d := p.Data()
			for i := range d {
				d[i] *= 1.01
			}
		}
	}
}
