package diffusion

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
	"github.com/hashicorp/go-hclog"
)

// gaussianOracle is the exact noise prediction when every value of the
// data is drawn from N(mu, s²): E[ε | x_t] = √(1−ᾱ)·(x_t − √ᾱ·mu)/(ᾱ·s² + 1 − ᾱ).
// A correct sampler driven by it must turn N(0, 1) noise into N(mu, s²).
func gaussianOracle(sched Schedule, mu, s float64) epsFunc {
	return func(dst, x []float32, t int, _ []int, _ float64) error {
		ab := sched.AlphaBar[t]
		k := math.Sqrt(1-ab) / (ab*s*s + 1 - ab)
		for i, v := range x {
			dst[i] = float32(k * (float64(v) - math.Sqrt(ab)*mu))
		}
		return nil
	}
}

// TestSamplersReachTheData runs each sampler with the exact noise
// prediction of a Gaussian data set, N(0.3, 0.2²): the samples' mean must
// be the data's, and their spread the data's within what the solver's
// discretisation allows. The expected spreads of the few-step runs come
// from an independent computation (the exact affine map each solver's
// updates make of Gaussian data, in Python): DDIM is first order and
// under-disperses (0.84 of the data's deviation at 10 quadratic steps,
// 0.69 at 10 linear ones); DPM-Solver++(2M) over-disperses on linear
// steps (1.32 at 10) and is close on log-SNR ones; ancestral sampling
// with the posterior variance β̃ under-disperses slightly when strided.
// A wrong coefficient in an update, or the added noise at the wrong
// scale, moves the spread out of its band.
func TestSamplersReachTheData(t *testing.T) {
	const n, mu, sd = 4000, 0.3, 0.2
	sched := Cosine(T)
	for _, c := range []struct {
		sp        Sampling
		want, tol float64 // expected deviation / data deviation, tolerance
	}{
		{Sampling{Sampler: DDIM, Steps: 200}, 1, 0.02},
		{Sampling{Sampler: DDIM, Steps: 50}, 0.97, 0.02},
		{Sampling{Sampler: DDIM, Steps: 10}, 0.84, 0.02},
		{Sampling{Sampler: DDIM, Steps: 10, Spacing: Linear}, 0.69, 0.02},
		{Sampling{Sampler: DDIM, Steps: 200, Eta: 1}, 1, 0.035},
		{Sampling{Sampler: DDPM, Steps: 1000}, 1, 0.035},
		{Sampling{Sampler: DDPM, Steps: 100}, 0.96, 0.035},
		{Sampling{Sampler: DPMSolver, Steps: 10}, 0.98, 0.02},
		{Sampling{Sampler: DPMSolver, Steps: 20}, 1.03, 0.02},
		{Sampling{Sampler: DPMSolver, Steps: 50}, 1, 0.02},
		{Sampling{Sampler: DPMSolver, Steps: 10, Spacing: Linear}, 1.32, 0.03},
	} {
		name := fmt.Sprintf("%s-%d-eta%g-%s", c.sp.Sampler, c.sp.Steps, c.sp.Eta, c.sp.Spacing)
		t.Run(name, func(t *testing.T) {
			s := &sampler{per: 1, sched: sched, eps: gaussianOracle(sched, mu, sd)}
			x := make([]float32, n)
			labels := make([]int, n)
			rngs := make([]*nn.RNG, n)
			for i := range rngs {
				rngs[i] = nn.NewRNG(uint64(i))
				rngs[i].Normal(x[i:i+1], 1)
				labels[i] = -1
			}
			sp := c.sp
			sp.Temperature, sp.From = 1, T-1
			out, _, err := s.Run(context.Background(), x, labels, rngs, sp)
			if err != nil {
				t.Fatal(err)
			}
			var m, m2 float64
			for _, v := range out {
				m += float64(v)
				m2 += float64(v) * float64(v)
			}
			m /= n
			ratio := math.Sqrt(m2/n-m*m) / sd
			t.Logf("mean %.4f (data %.1f), deviation %.3f of the data's (expected %.2f)", m, mu, ratio, c.want)
			if math.Abs(m-mu) > 0.01 || math.Abs(ratio-c.want) > c.tol {
				t.Errorf("samples have mean %.4f and %.3f of the data's deviation; want %.1f and %.2f ± %.3f", m, ratio, mu, c.want, c.tol)
			}
		})
	}
}

// randomModel is mnist-ddpm's architecture with every parameter drawn at
// random (a fresh model predicts no noise at all: its last layers start at
// zero), loaded as generate would load it.
func randomModel(t testing.TB, params sdk.Params) *model {
	t.Helper()
	p := findPreset("mnist-ddpm")
	m, err := NewModel(p.arch, nn.NewRNG(1))
	if err != nil {
		t.Fatal(err)
	}
	rng := nn.NewRNG(2)
	for _, q := range m.Params.Trainable() {
		rng.Normal(q.Data(), 0.02)
	}
	full, errs := sdk.CheckParams(GenerateParams, params, "")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return &model{m: m, preset: p, params: full, s: newSampler(m)}
}

// TestGenerateDoesNotDependOnTheBatch: an item's sample depends on its
// seed and label only, not on the items beside it, for every sampler
// (with guidance, so the conditional and unconditional passes share one
// graph run; a null-label item alone skips that pass). The model's
// weights are random, so its samples are far outside [0, 1]: the label's
// effect is checked before clipping.
func TestGenerateDoesNotDependOnTheBatch(t *testing.T) {
	for _, smp := range []string{"ddim", "ddpm", "dpm-solver"} {
		t.Run(smp, func(t *testing.T) {
			md := randomModel(t, sdk.Params{"sampler": smp, "steps": 4, "eta": 0.5})
			defer md.Close()
			ctx := context.Background()
			all, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{11, 12, 13, 14, 15}, Labels: []int{3, -1, 7, 0, 9}})
			if err != nil {
				t.Fatal(err)
			}
			one, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{13}, Labels: []int{7}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all.Slice(2, 3).Data, one.Data) {
				t.Errorf("item (seed 13, label 7) differs between a batch of 5 and a batch of 1")
			}
			// Alone, a null-label item skips the guidance pass it needs
			// nothing from; beside labelled items it shares theirs.
			null, err := md.Generate(ctx, sdk.GenerateRequest{Seeds: []uint64{12}, Labels: []int{-1}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(all.Slice(1, 2).Data, null.Data) {
				t.Errorf("item (seed 12, no label) differs between a guided batch of 5 and a batch of 1")
			}
			raw := func(label int) []float32 {
				per := md.m.Arch.per()
				x := make([]float32, per)
				rng := nn.NewRNG(13)
				rng.Normal(x, 1)
				sp := md.sampling(T - 1)
				sp.Clip = 0
				out, _, err := md.s.Run(ctx, x, []int{label}, []*nn.RNG{rng}, sp)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			if a, b := raw(7), raw(2); slices.Equal(a, b) {
				t.Errorf("label 2 gave the same sample as label 7")
			}
		})
	}
}

// TestGenerateRefusesBadLabels names the item.
func TestGenerateRefusesBadLabels(t *testing.T) {
	md := randomModel(t, sdk.Params{"steps": 1})
	defer md.Close()
	_, err := md.Generate(context.Background(), sdk.GenerateRequest{Seeds: []uint64{1, 2}, Labels: []int{1, 10}})
	if err == nil || err.Error() != "item 1: label 10 out of range 0-9" {
		t.Errorf("error %v", err)
	}
}

var _ = hclog.NewNullLogger
