package flow

import (
	"context"
	"math"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
)

// TestTranslateRoundTripAndScores: translate of a random flow gives the
// input pixels back exactly and the same scores encode gives; an item's
// scores depend on its seed, not on its batch; bits/dim and the
// log-likelihood agree with each other and with the model's log p.
func TestTranslateRoundTripAndScores(t *testing.T) {
	for _, a := range []Arch{
		{Ch: 1, Size: 8, Levels: 2, Steps: 2, Hidden: 8},
		{Ch: 1, Size: 8, Levels: 2, Steps: 2, Hidden: 8, Logit: 0.05},
	} {
		t.Run(a.JSON(), func(t *testing.T) { checkTranslate(t, a) })
	}
}

func checkTranslate(t *testing.T, a Arch) {
	m := randomModel(t, a, 7)
	p := &preset{name: "test", arch: a}
	md := &model{m: m, preset: p, s: newSampler(m)}
	defer md.Close()
	const n = 5
	px := make([]uint8, n*a.Dims())
	rng := nn.NewRNG(2)
	noise := make([]float32, len(px))
	rng.Uniform(noise, 0, 256)
	for i, v := range noise {
		px[i] = uint8(min(255, v))
	}
	seeds := []uint64{11, 12, 13, 14, 15}
	in := &sdk.Batch{Tensor: sdk.FromUint8(px, n, 1, a.Size, a.Size), Seeds: seeds}
	ctx := context.Background()
	tr, err := md.Translate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if tr.DType != sdk.Uint8 || string(tr.Data) != string(px) {
		diff := 0
		for i := range px {
			if i < len(tr.Data) && tr.Data[i] != px[i] {
				diff++
			}
		}
		t.Fatalf("translate changed %d of %d pixels (dtype %s, shape %v)", diff, len(px), tr.DType, tr.Shape)
	}
	enc, err := md.Encode(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	d := float64(a.Dims())
	for _, name := range []string{"bits_per_dim", "log_likelihood"} {
		if len(tr.Scores[name]) != n || len(enc.Scores[name]) != n {
			t.Fatalf("score %s: translate gave %d values, encode %d, for %d items", name, len(tr.Scores[name]), len(enc.Scores[name]), n)
		}
		for i := range n {
			if tr.Scores[name][i] != enc.Scores[name][i] {
				t.Errorf("item %d: %s %v from translate, %v from encode", i, name, tr.Scores[name][i], enc.Scores[name][i])
			}
		}
	}
	for i := range n {
		bpd, ll := tr.Scores["bits_per_dim"][i], tr.Scores["log_likelihood"][i]
		if math.IsNaN(bpd) || bpd <= 0 {
			t.Errorf("item %d: bits/dim %v", i, bpd)
		}
		if want := -ll / (d * math.Ln2); math.Abs(bpd-want) > 1e-9*math.Abs(want) {
			t.Errorf("item %d: bits/dim %v, but -log_likelihood/(D ln 2) = %v", i, bpd, want)
		}
	}
	// Item 3 alone, with its seed, scores as it did in the batch; with
	// another seed its dequantisation noise, hence its score, differs.
	one := &sdk.Batch{Tensor: in.Tensor.Slice(3, 4), Seeds: seeds[3:4]}
	alone, err := md.Translate(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := alone.Scores["bits_per_dim"][0], tr.Scores["bits_per_dim"][3]; math.Abs(got-want) > 1e-5*math.Abs(want) {
		t.Errorf("item 3 alone: bits/dim %v, in the batch %v", got, want)
	}
	other, err := md.Translate(ctx, &sdk.Batch{Tensor: one.Tensor, Seeds: []uint64{99}})
	if err != nil {
		t.Fatal(err)
	}
	if other.Scores["bits_per_dim"][0] == alone.Scores["bits_per_dim"][0] {
		t.Errorf("another seed gave the same bits/dim %v: the noise does not follow the seed", other.Scores["bits_per_dim"][0])
	}
	t.Logf("bits/dim of a random flow on noise: %.4f .. %.4f", minOf(tr.Scores["bits_per_dim"]), maxOf(tr.Scores["bits_per_dim"]))
}

func minOf(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

// BenchmarkEncodeWithScores and BenchmarkTranslate time the capabilities
// on 64 MNIST test digits: encode runs the forward graph twice (the exact
// latents at the bin centres, the scores on noise-dequantised pixels),
// translate adds the inverse graph. Compare with BenchmarkInference (one
// forward pass).
func BenchmarkEncodeWithScores(b *testing.B) { benchCapability(b, false) }

func BenchmarkTranslate(b *testing.B) { benchCapability(b, true) }

func benchCapability(b *testing.B, translate bool) {
	p := findPreset("mnist-glow")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		b.Fatal(err)
	}
	md := &model{m: m, preset: p, s: newSampler(m)}
	defer md.Close()
	batch := testBatches(b, 1, 64)[0]
	batch.Seeds = make([]uint64, 64)
	for i := range batch.Seeds {
		batch.Seeds[i] = uint64(i)
	}
	call := md.Encode
	if translate {
		call = md.Translate
	}
	ctx := context.Background()
	if _, err := call(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := call(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}
