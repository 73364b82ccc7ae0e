package vae

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// Noise kinds a denoising autoencoder trains on.
const (
	NoiseGaussian   = "gaussian"
	NoiseSaltPepper = "salt_pepper"
	NoiseMixed      = "mixed"
)

// TrainParams are the training hyperparameters (the architecture comes
// from the preset):
//
//	| param        | default | meaning                                                   |
//	|--------------|---------|-----------------------------------------------------------|
//	| lr           | 1e-3    | Adam learning rate (betas 0.9, 0.999)                      |
//	| schedule     | cosine  | constant, or cosine decay to lr/10 over the planned steps  |
//	| kl_weight    | 1       | VAE: weight of the KL term (beta-VAE; 1 is the ELBO)       |
//	| noise        | mixed   | DAE: gaussian, salt_pepper, or mixed (half of each batch)  |
//	| noise_std    | 0.5     | DAE: Gaussian noise std, in [0,1] pixel units              |
//	| noise_amount | 0.2     | DAE: fraction of pixels set to 0 or 1 by salt-and-pepper   |
//	| log_every    | 50      | steps between progress events                              |
var TrainParams = []sdk.Param{
	{Name: "lr", Type: sdk.Float, Default: 1e-3, Min: sdk.Bound(1e-6), Max: sdk.Bound(1), Doc: "Adam learning rate"},
	{Name: "schedule", Type: sdk.String, Default: "cosine", Enum: []string{"constant", "cosine"},
		Doc: "learning-rate schedule: constant, or cosine decay to lr/10 over the planned steps"},
	{Name: "kl_weight", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(100),
		Doc: "vae: weight of the KL term (1 trains on the ELBO; other values give a beta-VAE)"},
	{Name: "noise", Type: sdk.String, Default: NoiseMixed, Enum: []string{NoiseGaussian, NoiseSaltPepper, NoiseMixed},
		Doc: "dae: corruption of the training inputs: gaussian, salt_pepper, or mixed (half of each batch each)"},
	{Name: "noise_std", Type: sdk.Float, Default: 0.5, Min: sdk.Bound(0), Max: sdk.Bound(2),
		Doc: "dae: standard deviation of Gaussian noise, in [0,1] pixel units (inputs are clipped to [0,1])"},
	{Name: "noise_amount", Type: sdk.Float, Default: 0.2, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "dae: fraction of pixels set to black or white by salt-and-pepper noise"},
	{Name: "log_every", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(100000),
		Doc: "steps between progress events"},
}

// trainer is one training run's state; TrainState holds what a
// checkpoint carries.
type trainer struct {
	preset *preset
	m      *Model
	opt    *optim.Adam
	rng    *nn.RNG
	params sdk.Params
	state  *train.TrainState
	steps  int // planned total (0: unknown)
	graphs map[int]*trainGraph
	evals  map[int]*trainGraph
	// preview holds the inputs of the progress grids of an AE or DAE
	// (corrupted for a DAE), firstTrain the first training items this
	// process saw (the preview's fallback without held-out data), enc and
	// dec the eval-mode graphs that make the grids.
	preview, firstTrain []float32
	enc, dec            *inferGraph
}

// Train trains a preset's architecture on the batches the host streams,
// evaluates on the held-out data after every epoch and at the end, and
// sends checkpoints and the final weights (safetensors with the
// architecture and test metrics in the metadata).
func (*Plugin) Train(ctx context.Context, s sdk.TrainSession) error {
	req := s.Request()
	p := findPreset(req.Preset)
	if p == nil {
		return fmt.Errorf("unknown preset %q", req.Preset)
	}
	rng := nn.NewRNG(req.Seed)
	m, err := NewModel(p.arch, rng)
	if err != nil {
		return err
	}
	t := &trainer{preset: p, m: m, opt: optim.NewAdam(req.Params.Float("lr")), rng: rng, params: req.Params,
		steps: req.Steps, graphs: map[int]*trainGraph{}, evals: map[int]*trainGraph{}}
	t.state = &train.TrainState{Params: m.Params, Optimizers: map[string]optim.Optimizer{"adam": t.opt}, RNG: rng,
		Identity: map[string]string{"arch": m.Arch.JSON(), "preset": p.name}}
	loop := &train.Loop{Session: s, State: t.state, Step: t.trainStep, Eval: t.evaluate, Weights: t.weights,
		LogEvery: req.Params.Int("log_every"), Samples: t.samples}
	_, err = loop.Run(ctx)
	return err
}

// lr is the learning rate at the current step.
func (t *trainer) lr() float64 {
	lr := t.params.Float("lr")
	if t.params.String("schedule") == "cosine" && t.steps > 0 {
		f := math.Min(float64(t.state.Step)/float64(t.steps), 1)
		return lr * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*f)))
	}
	return lr
}

func (t *trainer) graph(n int, train bool) (*trainGraph, error) {
	cache := t.evals
	if train {
		cache = t.graphs
	}
	if g, ok := cache[n]; ok {
		return g, nil
	}
	g, err := t.m.buildLoss(n, train, t.params.Float("kl_weight"))
	if err != nil {
		return nil, err
	}
	cache[n] = g
	return g, nil
}

// pixels converts an NCHW batch (float32 in [0,1], or uint8) to [0,1]
// floats in dst.
func (t *trainer) pixels(b *sdk.Batch, dst []float32) error {
	a := t.m.Arch
	if len(b.Shape) != 4 || b.Shape[1] != a.Channels || b.Shape[2] != a.Size || b.Shape[3] != a.Size || b.DType != sdk.Float32 && b.DType != sdk.Uint8 {
		return fmt.Errorf("batch: expected float32 or uint8 [N %d %d %d], got %s %v", a.Channels, a.Size, a.Size, b.DType, b.Shape)
	}
	toPixels(b.Tensor, dst)
	return nil
}

func (t *trainer) trainStep(b *sdk.Batch) (map[string]float64, error) {
	g, err := t.graph(b.Len(), true)
	if err != nil {
		return nil, err
	}
	target := layers.Data(g.t)
	if err := t.pixels(b, target); err != nil {
		return nil, err
	}
	x := layers.Data(g.x)
	copy(x, target)
	if t.m.Arch.Variant == DAE {
		t.corrupt(x, b.Len(), t.rng)
	}
	if t.firstTrain == nil && t.m.Arch.Variant != VAE {
		per := t.m.Arch.Channels * t.m.Arch.Size * t.m.Arch.Size
		t.firstTrain = slices.Clone(target[:min(b.Len(), previewItems)*per])
	}
	if g.eps != nil {
		t.rng.Normal(layers.Data(g.eps), 1)
	}
	if err := g.prog.Run(); err != nil {
		return nil, err
	}
	lr := t.lr()
	met := map[string]float64{"loss": g.prog.Scalar(0), "recon": g.prog.Scalar(g.reconOut), "lr": lr}
	if g.eps != nil {
		met["kl"] = g.prog.Scalar(g.klOut)
	}
	if l := met["loss"]; math.IsNaN(l) || math.IsInf(l, 0) {
		return nil, fmt.Errorf("loss is %v (try a lower lr)", l)
	}
	ps := t.m.Params.Trainable()
	grads := make([][]float32, len(ps))
	for i := range ps {
		grads[i] = g.prog.Grad(i)
	}
	t.opt.LR = lr
	t.opt.Step(ps, grads)
	if mean, std := t.m.latentStats(); mean != nil {
		t.trackCodes(g.prog.Output(g.codeOut), b.Len(), mean, std)
	}
	return met, nil
}

// previewItems is the number of items of an AE's or DAE's progress grid.
const previewItems = 32

// choosePreview picks the inputs of an AE's or DAE's progress grids: the
// first held-out items, the same in every process of a resumed run, or
// without held-out data the first training items this process saw (nil
// before its first batch). A DAE's are corrupted with noise of a fixed
// seed, so the training RNG is untouched. It reads a whole held-out pass,
// once, so that the evaluations' passes stay aligned.
func (t *trainer) choosePreview(ctx context.Context, eval func(context.Context) (*sdk.Batch, error)) error {
	per := t.m.Arch.Channels * t.m.Arch.Size * t.m.Arch.Size
	var x []float32
	for eval != nil {
		b, err := eval(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("held-out data: %w", err)
		}
		if len(x) < previewItems*per {
			px := make([]float32, len(b.Data))
			if err := t.pixels(b, px); err != nil {
				return err
			}
			x = append(x, px...)
		}
	}
	if len(x) == 0 {
		x = slices.Clone(t.firstTrain)
	}
	if len(x) == 0 {
		return nil
	}
	n := min(len(x)/per, previewItems)
	t.preview = x[:n*per]
	if t.m.Arch.Variant == DAE {
		t.corrupt(t.preview, n, nn.NewRNG(0x70726576)) // "prev"
	}
	return nil
}

// samples draws a progress grid with the model as it is: a VAE decodes
// the same 64 prior draws every time (item i from seed i, as generate's
// item with seed i); an AE or DAE shows each of its preview items beside
// its reconstruction, four pairs to a row.
func (t *trainer) samples(ctx context.Context, eval func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error) {
	a := t.m.Arch
	per := a.Channels * a.Size * a.Size
	var z []float32
	n := 64
	if a.Variant == VAE {
		z = make([]float32, n*a.Latent)
		for i := 0; i < n; i++ {
			nn.NewRNG(uint64(i)).Normal(z[i*a.Latent:(i+1)*a.Latent], 1)
		}
	} else {
		if t.preview == nil {
			if err := t.choosePreview(ctx, eval); err != nil {
				return nil, 0, err
			}
		}
		if t.preview == nil {
			return nil, 0, nil
		}
		n = len(t.preview) / per
		if t.enc == nil {
			var err error
			if t.enc, err = t.m.buildEncode(n); err != nil {
				return nil, 0, err
			}
		}
		copy(layers.Data(t.enc.in), t.preview)
		if err := t.enc.prog.Run(); err != nil {
			return nil, 0, err
		}
		z = t.enc.prog.Output(0)
	}
	if t.dec == nil {
		var err error
		if t.dec, err = t.m.buildDecode(n); err != nil {
			return nil, 0, err
		}
	}
	copy(layers.Data(t.dec.in), z)
	if err := t.dec.prog.Run(); err != nil {
		return nil, 0, err
	}
	out := t.dec.prog.Output(0)
	if a.Variant == VAE {
		return toImage(out, n, a), 8, nil
	}
	pairs := make([]float32, 2*n*per)
	for i := 0; i < n; i++ {
		copy(pairs[2*i*per:], t.preview[i*per:(i+1)*per])
		copy(pairs[(2*i+1)*per:], out[i*per:(i+1)*per])
	}
	return toImage(pairs, 2*n, a), 8, nil
}

// trackCodes keeps exponential moving averages of the autoencoder's code
// mean and standard deviation, the Gaussian its generate samples from.
func (t *trainer) trackCodes(z []float32, n int, mean, std []float32) {
	d := len(mean)
	const mom = 0.01
	for j := 0; j < d; j++ {
		var s, s2 float64
		for i := 0; i < n; i++ {
			v := float64(z[i*d+j])
			s += v
			s2 += v * v
		}
		mu := s / float64(n)
		sd := math.Sqrt(math.Max(s2/float64(n)-mu*mu, 1e-8))
		if t.state.Step == 0 {
			mean[j], std[j] = float32(mu), float32(sd)
			continue
		}
		mean[j] += mom * (float32(mu) - mean[j])
		std[j] += mom * (float32(sd) - std[j])
	}
}

// corrupt applies the configured noise in place to n images in x.
func (t *trainer) corrupt(x []float32, n int, rng *nn.RNG) {
	per := len(x) / n
	kind := t.params.String("noise")
	for i := 0; i < n; i++ {
		img := x[i*per : (i+1)*per]
		k := kind
		if k == NoiseMixed {
			k = NoiseGaussian
			if i%2 == 1 {
				k = NoiseSaltPepper
			}
		}
		Corrupt(img, k, t.params.Float("noise_std"), t.params.Float("noise_amount"), rng)
	}
}

// Corrupt adds noise of the given kind to one image with values in [0,1]:
// Gaussian with standard deviation std (clipped to [0,1]), or
// salt-and-pepper setting a fraction amount of the pixels to 0 or 1.
func Corrupt(img []float32, kind string, std, amount float64, rng *nn.RNG) {
	switch kind {
	case NoiseGaussian:
		noise := make([]float32, len(img))
		rng.Normal(noise, std)
		for j := range img {
			img[j] = clamp01(img[j] + noise[j])
		}
	case NoiseSaltPepper:
		for j := range img {
			if float64(rng.Float32()) < amount {
				if rng.Float32() < 0.5 {
					img[j] = 0
				} else {
					img[j] = 1
				}
			}
		}
	}
}

// evaluate runs one pass over the held-out data: the negative ELBO (VAE),
// reconstruction error (all) and, for a DAE, PSNR before and after
// denoising at the trained noise. Randomness comes from a fixed seed so
// successive evaluations are comparable. It returns nil without data.
func (t *trainer) evaluate(ctx context.Context, next func(context.Context) (*sdk.Batch, error)) (map[string]float64, error) {
	if next == nil {
		return nil, nil
	}
	rng := nn.NewRNG(12345)
	var n int
	var bce, kl, sqErr float64
	var noisyPSNR, denPSNR [2]float64
	var noisyN [2]int
	for {
		b, err := next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		k := b.Len()
		g, err := t.graph(k, false)
		if err != nil {
			return nil, err
		}
		clean := layers.Data(g.t)
		if err := t.pixels(b, clean); err != nil {
			return nil, err
		}
		copy(layers.Data(g.x), clean)
		if g.eps != nil {
			rng.Normal(layers.Data(g.eps), 1)
		}
		if err := g.prog.Run(); err != nil {
			return nil, err
		}
		bce += g.prog.Scalar(g.reconOut) * float64(k)
		if g.eps != nil {
			kl += g.prog.Scalar(g.klOut) * float64(k)
		}
		px := g.prog.Output(g.pixOut)
		for i, v := range px {
			d := float64(v - clean[i])
			sqErr += d * d
		}
		n += k
		if t.m.Arch.Variant != DAE {
			continue
		}
		per := len(clean) / k
		x := layers.Data(g.x)
		for ni, kind := range []string{NoiseGaussian, NoiseSaltPepper} {
			copy(x, clean)
			for i := 0; i < k; i++ {
				Corrupt(x[i*per:(i+1)*per], kind, t.params.Float("noise_std"), t.params.Float("noise_amount"), rng)
			}
			for i := 0; i < k; i++ {
				noisyPSNR[ni] += PSNR(x[i*per:(i+1)*per], clean[i*per:(i+1)*per])
			}
			if err := g.prog.Run(); err != nil {
				return nil, err
			}
			px := g.prog.Output(g.pixOut)
			for i := 0; i < k; i++ {
				denPSNR[ni] += PSNR(px[i*per:(i+1)*per], clean[i*per:(i+1)*per])
			}
			noisyN[ni] += k
		}
	}
	if n == 0 {
		return nil, nil
	}
	pixels := float64(t.m.Arch.Channels * t.m.Arch.Size * t.m.Arch.Size)
	met := map[string]float64{
		"test_items":      float64(n),
		"test_bce":        bce / float64(n),
		"test_mse":        sqErr / float64(n) / pixels,
		"test_recon_psnr": 10 * math.Log10(1/(sqErr/float64(n)/pixels)),
	}
	if t.m.Arch.Variant == VAE {
		met["test_kl"] = kl / float64(n)
		met["test_neg_elbo"] = (bce + kl) / float64(n)
	}
	for ni, kind := range []string{NoiseGaussian, NoiseSaltPepper} {
		if noisyN[ni] == 0 {
			continue
		}
		a, b := noisyPSNR[ni]/float64(noisyN[ni]), denPSNR[ni]/float64(noisyN[ni])
		met["test_"+kind+"_psnr_noisy"] = a
		met["test_"+kind+"_psnr_denoised"] = b
		met["test_"+kind+"_psnr_gain"] = b - a
	}
	return met, nil
}

// PSNR is the peak signal-to-noise ratio in dB of x against ref, both in
// [0,1] (capped at 100 dB for identical images).
func PSNR(x, ref []float32) float64 {
	var s float64
	for i := range x {
		d := float64(x[i] - ref[i])
		s += d * d
	}
	mse := s / float64(len(x))
	if mse < 1e-10 {
		return 100
	}
	return 10 * math.Log10(1/mse)
}

// weights are the final safetensors: parameters and buffers, with the
// architecture, the training parameters and the held-out metrics.
func (t *trainer) weights(metrics map[string]float64) ([]byte, error) {
	meta := map[string]string{
		"format":  "genpipe.vae/1",
		"arch":    t.m.Arch.JSON(),
		"preset":  t.preset.name,
		"plugin":  Name + " " + Version,
		"steps":   strconv.Itoa(t.state.Step),
		"nparams": strconv.Itoa(t.m.Params.Count()),
	}
	if b, err := json.Marshal(t.params); err == nil {
		meta["train_params"] = string(b)
	}
	if metrics != nil {
		b, err := json.Marshal(metrics)
		if err != nil {
			return nil, err
		}
		meta["metrics"] = string(b)
	}
	f := &safetensors.File{Metadata: meta, Tensors: t.m.Params.Tensors()}
	return f.Encode()
}
