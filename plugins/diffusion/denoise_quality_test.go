package diffusion

import (
	"context"
	"flag"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/plugins/vae"
	"github.com/genpipe/genpipe/sdk"
)

// TestDenoiseQuality measures denoise on 500 MNIST test digits with
// Gaussian noise of deviation 0.5 in pixel units, clipped to [0, 1] as the
// DAE's evaluation corrupts them (vae.Corrupt, the same seed): the mean
// PSNR gain of the posterior mean (bar: the shipped DAE's +10.6 dB), also
// on unclipped noise, and the labels the classifier reads on sample
// mode's outputs. Weights: -weights, -ckpt or the shipped file.
var denoiseModes = flag.String("denoise-modes", "mean", "TestDenoiseQuality: the modes to measure (mean,sample for both: sample mode runs 50 DDIM steps per digit, minutes)")

func TestDenoiseQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("denoises and classifies hundreds of digits")
	}
	m := ddpmModel(t)
	x, y, err := digits.ReadMNIST("../../examples/data/mnist", "t10k")
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	per := digits.Pixels
	clean := x[:n*per]
	clf, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	for _, clip := range []bool{true, false} {
		noisy := append([]float32(nil), clean...)
		rng := nn.NewRNG(12345)
		for i := 0; i < n; i++ {
			if clip {
				vae.Corrupt(noisy[i*per:(i+1)*per], vae.NoiseGaussian, 0.5, 0, rng)
				continue
			}
			z := make([]float32, per)
			rng.Normal(z, 0.5)
			for j := range z {
				noisy[i*per+j] += z[j]
			}
		}
		for _, mode := range strings.Split(*denoiseModes, ",") {
			params, errs := sdk.CheckParams(DenoiseParams, sdk.Params{"sigma": 0.5, "mode": mode, "sampler": "dpm-solver", "steps": 20}, "")
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			md := &model{m: m, preset: findPreset("mnist-ddpm"), params: params, s: newSampler(m)}
			var out []float32
			for lo := 0; lo < n; lo += 64 {
				hi := min(n, lo+64)
				seeds := make([]uint64, hi-lo)
				for i := range seeds {
					seeds[i] = uint64(lo + i)
				}
				b := &sdk.Batch{Tensor: sdk.FromFloat32(noisy[lo*per:hi*per], hi-lo, 1, 28, 28), Seeds: seeds}
				r, err := md.Denoise(context.Background(), b)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, r.Float32s()...)
			}
			md.Close()
			var before, after float64
			for i := 0; i < n; i++ {
				c := clean[i*per : (i+1)*per]
				nz := make([]float32, per)
				for j, v := range noisy[i*per : (i+1)*per] {
					nz[j] = max(0, min(1, v)) // PSNR of what an image can show
				}
				before += vae.PSNR(nz, c)
				after += vae.PSNR(out[i*per:(i+1)*per], c)
			}
			probs, _, err := clf.Classify(out, n)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("noise 0.5 (clipped %v), mode %s: PSNR %.1f -> %.1f dB (%+.1f dB); labels read on the outputs %.1f %%",
				clip, mode, before/n, after/n, (after-before)/n, 100*digits.LabelAgreement(probs, y[:n]))
			if clip && mode == "mean" && (after-before)/n < 10.6 {
				t.Errorf("posterior mean's PSNR gain %+.1f dB, bar: the shipped DAE's +10.6 dB", (after-before)/n)
			}
		}
	}
}
