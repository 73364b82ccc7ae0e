package gan

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TrainParams are the training hyperparameters (the architecture comes
// from the preset). Defaults follow each paper; a zero lr picks the
// variant's default.
//
//	| param      | default                          | meaning                                              |
//	|------------|----------------------------------|------------------------------------------------------|
//	| lr         | 2e-4 (dcgan, cgan), 5e-5 (wgan), 1e-4 (wgan-gp) | learning rate of both networks          |
//	| beta1      | 0.5 (dcgan, cgan, wgan-gp: 0.0 in the paper; 0.5 here for stability) | Adam's β1 |
//	| n_critic   | 1 (dcgan, cgan), 5 (wgan, wgan-gp) | critic updates per generator update                |
//	| clip       | 0.01                             | wgan: weights of the critic are clipped to [-c, c]    |
//	| lambda     | 10                               | wgan-gp: weight of the gradient penalty               |
//	| g_loss     | non_saturating                   | dcgan/cgan: non_saturating or minimax                 |
//	| log_every  | 50                               | steps between progress events                         |
var TrainParams = []sdk.Param{
	{Name: "lr", Type: sdk.Float, Default: 0.0, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "learning rate of both networks; 0 picks the variant's default (2e-4 dcgan/cgan, 5e-5 wgan, 1e-4 wgan-gp)"},
	{Name: "beta1", Type: sdk.Float, Default: 0.5, Min: sdk.Bound(0), Max: sdk.Bound(0.999),
		Doc: "Adam's first-moment decay (dcgan, cgan, wgan-gp)"},
	{Name: "n_critic", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(100),
		Doc: "critic updates per generator update; 0 picks the variant's default (1 dcgan/cgan, 5 wgan/wgan-gp)"},
	{Name: "clip", Type: sdk.Float, Default: 0.01, Min: sdk.Bound(1e-5), Max: sdk.Bound(10),
		Doc: "wgan: the critic's weights are clipped to [-clip, clip] after each update"},
	{Name: "lambda", Type: sdk.Float, Default: 10.0, Min: sdk.Bound(0), Max: sdk.Bound(1000),
		Doc: "wgan-gp: weight of the gradient penalty"},
	{Name: "g_loss", Type: sdk.String, Default: "non_saturating", Enum: []string{"non_saturating", "minimax"},
		Doc: "dcgan/cgan: the generator maximises log D(G(z)) (non_saturating) or minimises log(1 - D(G(z))) (minimax)"},
	{Name: "log_every", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(100000),
		Doc: "steps between progress events"},
}

// trainer is one run's state.
type trainer struct {
	preset     *preset
	m          *Model
	params     sdk.Params
	rng        *nn.RNG
	gOpt, dOpt optim.Optimizer
	gParams    []*layers.Param // the generator's trainable parameters
	dParams    []*layers.Param // the discriminator's
	state      *train.TrainState
	nCritic    int
	critics    map[int]*critic
	gens       map[int]*genStep
	samplers   map[int]*sampler
	preview    *sampler           // eval mode, for the progress grids
	pending    map[string]float64 // the last generator step's metrics
}

// Train trains a preset's architecture on the real images the host
// streams: every step is one critic update on that batch, and every
// n_critic-th step also a generator update.
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
	t := &trainer{preset: p, m: m, params: req.Params, rng: rng, critics: map[int]*critic{},
		gens: map[int]*genStep{}, samplers: map[int]*sampler{}, nCritic: req.Params.Int("n_critic"),
		gParams: m.part(genNet), dParams: m.part(discNet)}
	lr := req.Params.Float("lr")
	wgan := p.arch.Variant == WGAN || p.arch.Variant == WGANGP
	if lr == 0 {
		switch p.arch.Variant {
		case WGAN:
			lr = 5e-5
		case WGANGP:
			lr = 1e-4
		default:
			lr = 2e-4
		}
	}
	if t.nCritic == 0 {
		t.nCritic = 1
		if wgan {
			t.nCritic = 5
		}
	}
	if p.arch.Variant == WGAN {
		t.gOpt, t.dOpt = optim.NewRMSProp(lr), optim.NewRMSProp(lr)
	} else {
		g, d := optim.NewAdam(lr), optim.NewAdam(lr)
		g.Beta1, d.Beta1 = req.Params.Float("beta1"), req.Params.Float("beta1")
		if p.arch.Variant == WGANGP {
			g.Beta2, d.Beta2 = 0.9, 0.9 // as in the WGAN-GP paper
		}
		t.gOpt, t.dOpt = g, d
	}
	t.state = &train.TrainState{Params: m.Params, RNG: rng,
		Optimizers: map[string]optim.Optimizer{genNet: t.gOpt, discNet: t.dOpt},
		Identity:   map[string]string{"arch": m.Arch.JSON(), "preset": p.name}}
	loop := &train.Loop{Session: s, State: t.state, Step: t.step, Weights: t.weights, LogEvery: req.Params.Int("log_every"),
		Warn: warn, Samples: t.samples}
	_, err = loop.Run(ctx)
	return err
}

// noise fills z [n, Z+Classes] with N(0, 1) and the one-hot labels, and
// planes [n, Classes, 28, 28] with the label planes.
func (t *trainer) noise(z, planes []float32, labels []int, n int) {
	a := t.m.Arch
	w := a.Z + a.Classes
	for i := 0; i < n; i++ {
		row := z[i*w : (i+1)*w]
		t.rng.Normal(row[:a.Z], 1)
		clear(row[a.Z:])
		if a.Classes > 0 {
			row[a.Z+labels[i]] = 1
		}
	}
	fillPlanes(planes, labels, a.Classes)
}

// fillPlanes sets plane labels[i] of item i to 1 and the others to 0.
func fillPlanes(planes []float32, labels []int, classes int) {
	if classes == 0 {
		return
	}
	clear(planes)
	per := Size * Size
	for i, l := range labels {
		p := planes[(i*classes+l)*per : (i*classes+l+1)*per]
		for j := range p {
			p[j] = 1
		}
	}
}

// realImages converts a uint8 batch to [-1, 1].
func (t *trainer) realImages(b *sdk.Batch, dst []float32) error {
	if len(b.Shape) != 4 || b.Shape[1] != 1 || b.Shape[2] != Size || b.Shape[3] != Size || b.DType != sdk.Uint8 {
		return fmt.Errorf("batch: expected uint8 [N 1 %d %d], got %s %v", Size, Size, b.DType, b.Shape)
	}
	for i, v := range b.Data {
		dst[i] = float32(v)/127.5 - 1
	}
	return nil
}

func (t *trainer) labels(b *sdk.Batch) ([]int, error) {
	n := b.Len()
	c := t.m.Arch.Classes
	if c == 0 {
		return make([]int, n), nil
	}
	if len(b.Labels) != n {
		return nil, fmt.Errorf("a conditional GAN trains on labelled images: the batch has no labels (load with labels: idx or folders)")
	}
	for i, l := range b.Labels {
		if l < 0 || l >= c {
			return nil, fmt.Errorf("item %d has label %d; preset %s has classes 0-%d", i, l, t.preset.name, c-1)
		}
	}
	return b.Labels, nil
}

func (t *trainer) step(b *sdk.Batch) (map[string]float64, error) {
	n := b.Len()
	a := t.m.Arch
	labels, err := t.labels(b)
	if err != nil {
		return nil, err
	}
	c, ok := t.critics[n]
	if !ok {
		if c, err = t.m.buildCritic(n, t.params.Float("lambda")); err != nil {
			return nil, err
		}
		t.critics[n] = c
	}
	smp, ok := t.samplers[n]
	if !ok {
		if smp, err = t.m.buildSampler(n, true); err != nil {
			return nil, err
		}
		t.samplers[n] = smp
	}
	// Critic update on this batch of real images and fresh fakes.
	if err := t.realImages(b, layers.Data(c.real)); err != nil {
		return nil, err
	}
	var planes []float32
	if c.planes != nil {
		planes = layers.Data(c.planes)
	}
	t.noise(layers.Data(smp.z), planes, labels, n)
	if err := smp.prog.Run(); err != nil {
		return nil, err
	}
	fake := smp.prog.Output(0)
	copy(layers.Data(c.fake), fake)
	if c.interp != nil {
		real, x := layers.Data(c.real), layers.Data(c.interp)
		per := Size * Size
		for i := 0; i < n; i++ {
			e := t.rng.Float32()
			for j := i * per; j < (i+1)*per; j++ {
				x[j] = e*real[j] + (1-e)*fake[j]
			}
		}
	}
	if err := c.prog.Run(); err != nil {
		return nil, err
	}
	dParams := t.dParams
	grads := make([][]float32, len(dParams))
	for i := range dParams {
		grads[i] = c.prog.Grad(i)
	}
	t.dOpt.Step(dParams, grads)
	if a.Variant == WGAN {
		clip := float32(t.params.Float("clip"))
		for _, p := range dParams {
			for j, v := range p.Data() {
				p.Data()[j] = max(-clip, min(clip, v))
			}
		}
	}
	met := map[string]float64{"d_loss": c.prog.Scalar(0), "d_real": c.prog.Scalar(c.outReal), "d_fake": c.prog.Scalar(c.outFake),
		"spread": spread(fake, n)}
	if a.Variant == WGAN || a.Variant == WGANGP {
		met["wasserstein"] = met["d_real"] - met["d_fake"]
	}
	if c.outPenalty >= 0 {
		met["gp"] = c.prog.Scalar(c.outPenalty)
	}
	// Generator update every n_critic steps.
	if (t.state.Step+1)%t.nCritic == 0 || t.pending == nil {
		g, ok := t.gens[n]
		if !ok {
			if g, err = t.m.buildGenStep(n, t.params.String("g_loss") == "minimax"); err != nil {
				return nil, err
			}
			t.gens[n] = g
		}
		var gp []float32
		if g.planes != nil {
			gp = layers.Data(g.planes)
		}
		t.noise(layers.Data(g.z), gp, labels, n)
		if err := g.prog.Run(); err != nil {
			return nil, err
		}
		gParams := t.gParams
		gg := make([][]float32, len(gParams))
		for i := range gParams {
			gg[i] = g.prog.Grad(i)
		}
		t.gOpt.Step(gParams, gg)
		t.pending = map[string]float64{"g_loss": g.prog.Scalar(0)}
	}
	for k, v := range t.pending {
		met[k] = v
	}
	return met, nil
}

// samples draws the progress grid from the same noise every time (item i
// from seed i, as generate's item with seed i), in eval mode so that the
// training state is untouched. Unconditional presets show 64 samples in
// rows of 8, conditional ones 10 of each class, one row per class.
func (t *trainer) samples(context.Context, func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error) {
	a := t.m.Arch
	n, cols := 64, 8
	if a.Classes > 0 {
		n, cols = 10*a.Classes, 10
	}
	if t.preview == nil {
		s, err := t.m.buildSampler(n, false)
		if err != nil {
			return nil, 0, err
		}
		t.preview = s
	}
	w := a.Z + a.Classes
	z := make([]float32, n*w)
	for i := 0; i < n; i++ {
		row := z[i*w : (i+1)*w]
		Noise(row[:a.Z], nn.NewRNG(uint64(i)), 1, 0)
		if a.Classes > 0 {
			row[a.Z+i/cols] = 1
		}
	}
	out, err := t.preview.images(z)
	return out, cols, err
}

// spread is the mean over pixels of the standard deviation across the
// batch of generated images (in [-1, 1] units): near 0 means every sample
// is the same image, the signature of mode collapse. Batches of 64 real
// MNIST digits give 0.35-0.38.
func spread(x []float32, n int) float64 {
	per := len(x) / n
	var s float64
	for j := 0; j < per; j++ {
		var m, m2 float64
		for i := 0; i < n; i++ {
			v := float64(x[i*per+j])
			m += v
			m2 += v * v
		}
		m /= float64(n)
		s += math.Sqrt(math.Max(m2/float64(n)-m*m, 0))
	}
	return s / float64(per)
}

// collapseSpread is the batch spread below which samples are reported as
// collapsing (real digits: 0.35-0.38).
const collapseSpread = 0.05

// warn turns the averaged metrics of a progress event into a warning for
// the known failures: mode collapse (samples of a batch nearly identical)
// and a critic that wins outright (the generator no longer learns).
func warn(avg map[string]float64) string {
	if s, ok := avg["spread"]; ok && s < collapseSpread {
		return fmt.Sprintf("possible mode collapse: the samples of a batch differ by %.3f per pixel on average (real digits: ~0.36)", s)
	}
	_, critic := avg["wasserstein"]
	if l, ok := avg["d_loss"]; ok && !critic && l < 1e-3 {
		return fmt.Sprintf("the discriminator wins outright (loss %.2g): the generator gets no gradient; try a lower lr or g_loss: non_saturating", l)
	}
	return ""
}

// weights are the final safetensors: both networks with BatchNorm buffers,
// the architecture and the training parameters.
func (t *trainer) weights(map[string]float64) ([]byte, error) {
	meta := map[string]string{
		"format":  "genpipe.gan/1",
		"arch":    t.m.Arch.JSON(),
		"preset":  t.preset.name,
		"plugin":  Name + " " + Version,
		"steps":   strconv.Itoa(t.state.Step),
		"nparams": strconv.Itoa(t.m.Params.Count()),
	}
	if b, err := json.Marshal(t.params); err == nil {
		meta["train_params"] = string(b)
	}
	return (&safetensors.File{Metadata: meta, Tensors: t.m.Params.Tensors()}).Encode()
}
