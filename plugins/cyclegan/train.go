package cyclegan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TrainParams are the training hyperparameters. Defaults are those of
// junyanz/pytorch-CycleGAN-and-pix2pix, which its users rely on; a zero
// picks the kind's default where the two kinds differ.
//
//	| param      | default              | meaning                                                               |
//	|------------|----------------------|-----------------------------------------------------------------------|
//	| lr         | 2e-4                 | Adam learning rate of generators and discriminators                   |
//	| beta1      | 0.5                  | Adam's β1                                                             |
//	| lambda     | 10 cyclegan, 100 pix2pix | weight of the cycle loss (cyclegan) or of L1 to the target (pix2pix) |
//	| identity   | 0.5                  | cyclegan: identity loss weight, as a fraction of lambda               |
//	| pool       | 50                   | cyclegan: generated images kept per discriminator (0: none)           |
//	| decay      | 0.5                  | fraction of the planned steps after which lr decays linearly to 0     |
//	| channels_a, channels_b, ngf, blocks, downs, d_layers | 0 (the preset's) | custom presets: the architecture (see Arch) |
//	| log_every  | 50                   | steps between progress events                                         |
var TrainParams = []sdk.Param{
	{Name: "lr", Type: sdk.Float, Default: 2e-4, Min: sdk.Bound(0), Max: sdk.Bound(1), Doc: "Adam learning rate of every network"},
	{Name: "beta1", Type: sdk.Float, Default: 0.5, Min: sdk.Bound(0), Max: sdk.Bound(0.999), Doc: "Adam's first-moment decay"},
	{Name: "lambda", Type: sdk.Float, Default: 0.0, Min: sdk.Bound(0), Max: sdk.Bound(1000),
		Doc: "weight of the cycle loss (cyclegan, default 10) or of the L1 loss to the target (pix2pix, default 100); 0 picks the default"},
	{Name: "identity", Type: sdk.Float, Default: 0.5, Min: sdk.Bound(0), Max: sdk.Bound(10),
		Doc: "cyclegan: weight of the identity loss |G(b) - b| + |F(a) - a|, as a fraction of lambda"},
	{Name: "pool", Type: sdk.Int, Default: 50, Min: sdk.Bound(0), Max: sdk.Bound(10000),
		Doc: "cyclegan: generated images each discriminator keeps and draws from (0: only the current batch)"},
	{Name: "decay", Type: sdk.Float, Default: 0.5, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "fraction of the planned steps after which the learning rate decays linearly to zero (1: constant)"},
	{Name: "channels_a", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(4), Doc: "custom presets: channels of domain A / the input (0: the preset's)"},
	{Name: "channels_b", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(4), Doc: "custom presets: channels of domain B / the target (0: the preset's)"},
	{Name: "ngf", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(256), Doc: "custom presets: generator channels at full resolution (0: the preset's)"},
	{Name: "blocks", Type: sdk.Int, Default: -1, Min: sdk.Bound(-1), Max: sdk.Bound(32), Doc: "custom presets: residual blocks (-1: the preset's)"},
	{Name: "downs", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(5), Doc: "custom presets: stride-2 downsamplings; image sides must divide by 2^downs (0: the preset's)"},
	{Name: "d_layers", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(5), Doc: "custom presets: stride-2 layers of the PatchGAN (0: the preset's)"},
	{Name: "log_every", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(100000), Doc: "steps between progress events"},
}

// trainArch is the architecture a training builds: the preset's, with the
// custom presets' train params applied.
func trainArch(p *preset, ps sdk.Params) (Arch, error) {
	a := p.arch
	if !p.custom() {
		for _, k := range []string{"channels_a", "channels_b", "ngf", "downs", "d_layers"} {
			if ps.Int(k) != 0 {
				return a, fmt.Errorf("preset %s has a fixed architecture: %s applies to the custom presets (cyclegan, pix2pix) only", p.name, k)
			}
		}
		if ps.Int("blocks") >= 0 {
			return a, fmt.Errorf("preset %s has a fixed architecture: blocks applies to the custom presets (cyclegan, pix2pix) only", p.name)
		}
		return a, nil
	}
	set := func(dst *int, k string) {
		if v := ps.Int(k); v > 0 {
			*dst = v
		}
	}
	set(&a.A, "channels_a")
	set(&a.B, "channels_b")
	set(&a.NGF, "ngf")
	set(&a.Downs, "downs")
	set(&a.DLayers, "d_layers")
	if v := ps.Int("blocks"); v >= 0 {
		a.Blocks = v
	}
	return a, a.Validate()
}

// trainer is one run's state.
type trainer struct {
	preset     *preset
	m          *Model
	params     sdk.Params
	rng        *nn.RNG
	gOpt, dOpt *optim.Adam
	lr         float64
	steps      int // planned
	lambda     float64
	state      *train.TrainState
	pools      pools

	cycG map[graphKey]*cycleGStep
	cycD map[graphKey]*cycleDStep
	pixG map[graphKey]*pixGStep
	pixD map[graphKey]*pixDStep
	tr   map[trKey]*translator

	sampleIn *sdk.Batch // fixed sample inputs when there is no held-out data
	clf      *digits.Classifier
}

type trKey struct {
	dir     Direction
	n, h, w int
}

// Train trains the preset's architecture: CycleGAN on the roles a and b,
// pix2pix on input and target.
func (*Plugin) Train(ctx context.Context, s sdk.TrainSession) error {
	req := s.Request()
	p := findPreset(req.Preset)
	if p == nil || !p.train {
		return fmt.Errorf("preset %q cannot be trained (train typeset2mnist, edges2mnist, cyclegan or pix2pix)", req.Preset)
	}
	arch, err := trainArch(p, req.Params)
	if err != nil {
		return err
	}
	rng := nn.NewRNG(req.Seed)
	m, err := NewModel(arch, rng)
	if err != nil {
		return err
	}
	t := &trainer{preset: p, m: m, params: req.Params, rng: rng, lr: req.Params.Float("lr"), steps: req.Steps,
		lambda: req.Params.Float("lambda"),
		cycG:   map[graphKey]*cycleGStep{}, cycD: map[graphKey]*cycleDStep{},
		pixG: map[graphKey]*pixGStep{}, pixD: map[graphKey]*pixDStep{}, tr: map[trKey]*translator{}}
	if t.lambda == 0 {
		t.lambda = 10
		if arch.Kind == Pix2Pix {
			t.lambda = 100
		}
	}
	t.gOpt, t.dOpt = optim.NewAdam(t.lr), optim.NewAdam(t.lr)
	t.gOpt.Beta1, t.dOpt.Beta1 = req.Params.Float("beta1"), req.Params.Float("beta1")
	opts := map[string]optim.Optimizer{"g": t.gOpt, "d": t.dOpt}
	t.state = &train.TrainState{Params: m.Params, RNG: rng, Optimizers: opts,
		Identity: map[string]string{"arch": arch.JSON(), "preset": p.name}}
	if arch.Kind == CycleGAN {
		t.pools = pools{newPool("a", req.Params.Int("pool")), newPool("b", req.Params.Int("pool"))}
		t.state.Extra = t.pools
	}
	loop := &train.Loop{Session: s, State: t.state, Step: t.step, Weights: t.weights, Eval: t.eval,
		LogEvery: req.Params.Int("log_every"), Samples: t.samples}
	_, err = loop.Run(ctx)
	return err
}

// roles returns the first role's batch and the second's, checking that
// the host sent both with the same number of items.
func (t *trainer) roles(b *sdk.Batch) (*sdk.Batch, *sdk.Batch, error) {
	second := t.preset.inputs[1].Name
	o := b.Inputs[second]
	if o == nil {
		return nil, nil, fmt.Errorf("preset %s trains on %s and %s: the batch has no %q images (map train.input {%s: STAGE, %s: STAGE})",
			t.preset.name, t.preset.inputs[0].Name, second, second, t.preset.inputs[0].Name, second)
	}
	if o.Len() != b.Len() {
		return nil, nil, fmt.Errorf("batch: %d %s images beside %d %s images", o.Len(), second, b.Len(), t.preset.inputs[0].Name)
	}
	return b, o, nil
}

// setLR applies the schedule: constant, then linear decay to zero over the
// last (1 - decay) of the planned steps (the reference's lambda_rule per
// step rather than per epoch).
func (t *trainer) setLR() {
	lr := t.lr
	if d := t.params.Float("decay"); t.steps > 0 && d < 1 {
		start := int(d * float64(t.steps))
		if s := t.state.Step; s >= start {
			lr *= 1 - float64(s-start)/float64(t.steps-start+1)
		}
	}
	t.gOpt.LR, t.dOpt.LR = lr, lr
}

func grads(p *layers.Program, n int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = p.Grad(i)
	}
	return out
}

func (t *trainer) step(b *sdk.Batch) (map[string]float64, error) {
	first, second, err := t.roles(b)
	if err != nil {
		return nil, err
	}
	if t.sampleIn == nil {
		t.sampleIn = first
	}
	t.setLR()
	a := t.m.Arch
	if a.Kind == Pix2Pix {
		return t.pixStep(first, second)
	}
	x, err := toTanh(first.Tensor, a.A, a, "domain a")
	if err != nil {
		return nil, err
	}
	y, err := toTanh(second.Tensor, a.B, a, "domain b")
	if err != nil {
		return nil, err
	}
	n, h, w := first.Shape[0], first.Shape[2], first.Shape[3]
	if second.Shape[2] != h || second.Shape[3] != w {
		return nil, fmt.Errorf("batch: domain a is %dx%d, domain b %dx%d: CycleGAN trains on one size (conform both loads to it)", w, h, second.Shape[3], second.Shape[2])
	}
	k := graphKey{n, h, w}
	g, ok := t.cycG[k]
	if !ok {
		if g, err = t.m.buildCycleG(n, h, w, t.lambda, t.params.Float("identity")); err != nil {
			return nil, err
		}
		t.cycG[k] = g
	}
	d, ok := t.cycD[k]
	if !ok {
		if d, err = t.m.buildCycleD(n, h, w); err != nil {
			return nil, err
		}
		t.cycD[k] = d
	}
	copy(layers.Data(g.a), x)
	copy(layers.Data(g.b), y)
	if err := g.prog.Run(); err != nil {
		return nil, err
	}
	t.gOpt.Step(g.params, grads(g.prog, len(g.params)))
	met := map[string]float64{"g_loss": g.prog.Scalar(0)}
	for i, name := range g.terms {
		met[name] = g.prog.Scalar(1 + i)
	}
	fakeA, err := t.pools[0].query(g.prog.Output(g.fakeA), n, t.rng)
	if err != nil {
		return nil, err
	}
	fakeB, err := t.pools[1].query(g.prog.Output(g.fakeB), n, t.rng)
	if err != nil {
		return nil, err
	}
	copy(layers.Data(d.realA), x)
	copy(layers.Data(d.realB), y)
	copy(layers.Data(d.fakeA), fakeA)
	copy(layers.Data(d.fakeB), fakeB)
	if err := d.prog.Run(); err != nil {
		return nil, err
	}
	t.dOpt.Step(d.params, grads(d.prog, len(d.params)))
	met["d_a"], met["d_b"] = d.prog.Scalar(1), d.prog.Scalar(2)
	return met, nil
}

// stepSeeds mixes the items' seeds with the step, so an item's dropout
// differs between epochs but not with the batch it falls in.
func (t *trainer) stepSeeds(seeds []uint64, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		var s uint64
		if i < len(seeds) {
			s = seeds[i]
		} else {
			s = uint64(i)
		}
		out[i] = s ^ uint64(t.state.Step+1)*0x9e3779b97f4a7c15
	}
	return out
}

func (t *trainer) pixStep(in, target *sdk.Batch) (map[string]float64, error) {
	a := t.m.Arch
	x, err := toTanh(in.Tensor, a.A, a, "input")
	if err != nil {
		return nil, err
	}
	y, err := toTanh(target.Tensor, a.B, a, "target")
	if err != nil {
		return nil, err
	}
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	if target.Shape[2] != h || target.Shape[3] != w {
		return nil, fmt.Errorf("batch: input is %dx%d, target %dx%d: pairs must have one size", w, h, target.Shape[3], target.Shape[2])
	}
	k := graphKey{n, h, w}
	g, ok := t.pixG[k]
	if !ok {
		if g, err = t.m.buildPixG(n, h, w, t.lambda); err != nil {
			return nil, err
		}
		t.pixG[k] = g
	}
	d, ok := t.pixD[k]
	if !ok {
		if d, err = t.m.buildPixD(n, h, w); err != nil {
			return nil, err
		}
		t.pixD[k] = d
	}
	copy(layers.Data(g.x), x)
	copy(layers.Data(g.y), y)
	if err := g.ms.fill(t.stepSeeds(in.Seeds, n)); err != nil {
		return nil, err
	}
	if err := g.prog.Run(); err != nil {
		return nil, err
	}
	// The discriminator sees this step's fakes from the generator before
	// its update, as in the reference (D is updated first there, on the
	// same forward pass).
	copy(layers.Data(d.fake), g.prog.Output(g.fake))
	t.gOpt.Step(g.params, grads(g.prog, len(g.params)))
	met := map[string]float64{"g_loss": g.prog.Scalar(0)}
	for i, name := range g.terms {
		met[name] = g.prog.Scalar(1 + i)
	}
	copy(layers.Data(d.x), x)
	copy(layers.Data(d.y), y)
	if err := d.prog.Run(); err != nil {
		return nil, err
	}
	t.dOpt.Step(d.params, grads(d.prog, len(d.params)))
	met["d_loss"] = d.prog.Scalar(0)
	return met, nil
}

// translate runs a generator in inference on x in [-1, 1].
func (t *trainer) translate(dir Direction, x []float32, seeds []uint64, n, h, w int) ([]float32, error) {
	k := trKey{dir, n, h, w}
	tr, ok := t.tr[k]
	if !ok {
		var err error
		if tr, err = t.m.buildTranslator(dir, n, h, w); err != nil {
			return nil, err
		}
		t.tr[k] = tr
	}
	y, err := tr.run(x, seeds)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), y...), nil
}

// classifier returns the project's MNIST classifier when the model makes
// 28x28 gray images (the shipped presets), else nil.
func (t *trainer) classifier() *digits.Classifier {
	a := t.m.Arch
	if a.A != 1 || a.B != 1 {
		return nil
	}
	if t.clf == nil {
		c, err := digits.Load()
		if err != nil {
			return nil
		}
		t.clf = c
	}
	return t.clf
}

// agreement returns the share of images (in [-1, 1], 28x28) the digit
// classifier reads as their label, and how many had a label.
func (t *trainer) agreement(x []float32, labels []int, n int) (float64, int) {
	c := t.classifier()
	if c == nil || len(labels) != n || len(x) != n*Size*Size {
		return 0, 0
	}
	px := make([]float32, len(x))
	for i, v := range x {
		px[i] = (v + 1) / 2
	}
	probs, _, err := c.Classify(px, n)
	if err != nil {
		return 0, 0
	}
	kept, m := 0, 0
	for i, l := range labels {
		if l < 0 {
			continue
		}
		m++
		best := 0
		for j := range probs[i] {
			if probs[i][j] > probs[i][best] {
				best = j
			}
		}
		if best == l {
			kept++
		}
	}
	if m == 0 {
		return 0, 0
	}
	return float64(kept) / float64(m), m
}

func meanAbs(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += math.Abs(float64(a[i] - b[i]))
	}
	return s / float64(len(a))
}

// eval runs one pass over the held-out data. CycleGAN: the cycle L1 of
// both domains and, for digits, the share of labels the classifier still
// reads after translation (kept_a2b, kept_b2a). pix2pix: L1 to the target
// and kept.
func (t *trainer) eval(ctx context.Context, next func(context.Context) (*sdk.Batch, error)) (map[string]float64, error) {
	sums := map[string]float64{}
	weights := map[string]float64{}
	add := func(k string, v, w float64) {
		sums[k] += v * w
		weights[k] += w
	}
	a := t.m.Arch
	for {
		b, err := next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		first, second, err := t.roles(b)
		if err != nil {
			return nil, fmt.Errorf("held-out data: %w", err)
		}
		n, h, w := first.Shape[0], first.Shape[2], first.Shape[3]
		x, err := toTanh(first.Tensor, a.A, a, "held-out a")
		if err != nil {
			return nil, err
		}
		y, err := toTanh(second.Tensor, a.B, a, "held-out b")
		if err != nil {
			return nil, err
		}
		fx, err := t.translate(AtoB, x, first.Seeds, n, h, w)
		if err != nil {
			return nil, err
		}
		if a.Kind == Pix2Pix {
			add("l1", meanAbs(fx, y), float64(n))
			if k, m := t.agreement(fx, first.Labels, n); m > 0 {
				add("kept", k, float64(m))
			}
			continue
		}
		fy, err := t.translate(BtoA, y, second.Seeds, n, h, w)
		if err != nil {
			return nil, err
		}
		rx, err := t.translate(BtoA, fx, nil, n, h, w)
		if err != nil {
			return nil, err
		}
		ry, err := t.translate(AtoB, fy, nil, n, h, w)
		if err != nil {
			return nil, err
		}
		add("cycle_a", meanAbs(rx, x)/2, float64(n)) // in [0, 1] pixel units
		add("cycle_b", meanAbs(ry, y)/2, float64(n))
		if k, m := t.agreement(fx, first.Labels, n); m > 0 {
			add("kept_a2b", k, float64(m))
		}
		if k, m := t.agreement(fy, second.Labels, n); m > 0 {
			add("kept_b2a", k, float64(m))
		}
	}
	if len(sums) == 0 {
		return nil, nil
	}
	out := map[string]float64{}
	for k, v := range sums {
		out[k] = v / weights[k]
	}
	return out, nil
}

// samples shows 8 held-out items (else the first training batch's), one
// per row: CycleGAN a | G(a) | F(G(a)) | b | F(b) | G(F(b)), pix2pix
// input | output | target.
func (t *trainer) samples(ctx context.Context, eval func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error) {
	var src *sdk.Batch
	// Read a whole pass so the next evaluation starts at its beginning.
	for {
		b, err := eval(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, err
		}
		if src == nil {
			src = b
		}
	}
	if src == nil {
		src = t.sampleIn
	}
	if src == nil {
		return nil, 0, nil
	}
	first, second, err := t.roles(src)
	if err != nil {
		return nil, 0, err
	}
	a := t.m.Arch
	n := min(8, first.Len())
	first, second = sliceBatch(first, n), sliceBatch(second, n)
	h, w := first.Shape[2], first.Shape[3]
	x, err := toTanh(first.Tensor, a.A, a, "sample a")
	if err != nil {
		return nil, 0, err
	}
	y, err := toTanh(second.Tensor, a.B, a, "sample b")
	if err != nil {
		return nil, 0, err
	}
	fx, err := t.translate(AtoB, x, first.Seeds, n, h, w)
	if err != nil {
		return nil, 0, err
	}
	var cols [][]float32
	var chans []int
	if a.Kind == Pix2Pix {
		cols = [][]float32{x, fx, y}
		chans = []int{a.A, a.B, a.B}
	} else {
		rx, err := t.translate(BtoA, fx, nil, n, h, w)
		if err != nil {
			return nil, 0, err
		}
		fy, err := t.translate(BtoA, y, second.Seeds, n, h, w)
		if err != nil {
			return nil, 0, err
		}
		ry, err := t.translate(AtoB, fy, nil, n, h, w)
		if err != nil {
			return nil, 0, err
		}
		cols = [][]float32{x, fx, rx, y, fy, ry}
		chans = []int{a.A, a.B, a.A, a.B, a.A, a.B}
	}
	// One grid has one channel count: the wider domain's (an edge map
	// beside its photo is shown in colour).
	c := max(a.A, a.B)
	grid := make([]float32, 0, n*len(cols)*c*h*w)
	for i := 0; i < n; i++ {
		for k, col := range cols {
			grid = appendWidened(grid, col[i*chans[k]*h*w:(i+1)*chans[k]*h*w], chans[k], c)
		}
	}
	return fromTanh(grid, n*len(cols), c, h, w), len(cols), nil
}

// appendWidened appends one image of c planes (in [-1, 1]) as one of to
// planes: a gray plane is repeated, missing planes of a wider image (an
// alpha) are opaque.
func appendWidened(dst, img []float32, c, to int) []float32 {
	if c == to {
		return append(dst, img...)
	}
	plane := len(img) / c
	for k := range to {
		switch {
		case c == 1:
			dst = append(dst, img...)
		case k < c:
			dst = append(dst, img[k*plane:(k+1)*plane]...)
		default:
			for range plane {
				dst = append(dst, 1)
			}
		}
	}
	return dst
}

// sliceBatch is the first n items of b (tensor, seeds and labels).
func sliceBatch(b *sdk.Batch, n int) *sdk.Batch {
	out := &sdk.Batch{Tensor: b.Tensor.Slice(0, n)}
	if len(b.Seeds) >= n {
		out.Seeds = b.Seeds[:n]
	}
	if len(b.Labels) >= n {
		out.Labels = b.Labels[:n]
	}
	return out
}

// weightsFormat is the "format" metadata of the weights this plugin
// writes; a file with another one is another family's.
const weightsFormat = "genpipe.cyclegan/1"

// weights encodes the final generators (what translation loads; the
// discriminators stay in the checkpoints) with their architecture, the
// training's parameters and its final held-out metrics.
func (t *trainer) weights(met map[string]float64) ([]byte, error) {
	gen := generatorTensors(t.m.Params)
	n := 0
	for _, g := range gen {
		n += len(g.Data) / 4
	}
	meta := map[string]string{
		"format":  weightsFormat,
		"arch":    t.m.Arch.JSON(),
		"preset":  t.preset.name,
		"plugin":  Name + " " + Version,
		"steps":   strconv.Itoa(t.state.Step),
		"nparams": strconv.Itoa(n),
	}
	if b, err := json.Marshal(t.params); err == nil {
		meta["train_params"] = string(b)
	}
	if b, err := json.Marshal(met); err == nil && len(met) > 0 {
		meta["eval"] = string(b)
	}
	return (&safetensors.File{Metadata: meta, Tensors: gen}).Encode()
}
