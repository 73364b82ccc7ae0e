package diffusion

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

// TrainParams are the training hyperparameters (the architecture comes
// from the preset).
//
//	| param         | default | meaning                                                              |
//	|---------------|---------|----------------------------------------------------------------------|
//	| lr            | 5e-4    | Adam learning rate after the warm-up                                 |
//	| warmup        | 500     | steps of linear learning-rate warm-up from 0                         |
//	| ema           | 0.999   | decay of the exponential moving average of the weights (shipped)    |
//	| p_uncond      | 0.1     | probability a label is dropped ("no label"), for classifier-free guidance |
//	| clip_grad     | 1.0     | global gradient-norm clip (0: off)                                   |
//	| sample_steps  | 20      | DDIM steps of the progress grids                                     |
//	| log_every     | 50      | steps between progress events                                        |
var TrainParams = []sdk.Param{
	{Name: "lr", Type: sdk.Float, Default: 5e-4, Min: sdk.Bound(0), Max: sdk.Bound(1), Doc: "Adam learning rate after the warm-up"},
	{Name: "warmup", Type: sdk.Int, Default: 500, Min: sdk.Bound(0), Max: sdk.Bound(1000000), Doc: "steps of linear learning-rate warm-up from 0"},
	{Name: "ema", Type: sdk.Float, Default: 0.999, Min: sdk.Bound(0), Max: sdk.Bound(0.99999),
		Doc: "decay of the exponential moving average of the weights; the average is what ships (early steps use min(ema, (1+step)/(10+step)))"},
	{Name: "p_uncond", Type: sdk.Float, Default: 0.1, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "probability that a training item's label is replaced by 'no label' (classifier-free guidance needs both)"},
	{Name: "clip_grad", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(1000), Doc: "global gradient-norm clip (0: off)"},
	{Name: "sample_steps", Type: sdk.Int, Default: 20, Min: sdk.Bound(1), Max: sdk.Bound(T), Doc: "DDIM steps of the progress grids"},
	{Name: "log_every", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(100000), Doc: "steps between progress events"},
}

// trainStep is a compiled training graph for batches of n.
type trainStep struct {
	in    Inputs
	noise *layers.Program
	eps   []float32
	prog  *layers.Program
}

func (m *Model) buildTrainStep(n int) (*trainStep, error) {
	b := layers.NewBuilder()
	in := m.NewInputs(b, n)
	target := b.Input("noise", append([]int{n}, m.Arch.sampleShape()...)...)
	loss := b.MSE(m.Forward(b, in), target)
	prog, err := layers.Compile(b, loss, m.Params.Trainable())
	if err != nil {
		return nil, err
	}
	return &trainStep{in: in, prog: prog, eps: layers.Data(target)}, nil
}

// ema is the exponential moving average of a model's parameters, kept in
// a second model of the same architecture (whose graphs draw the progress
// grids and whose parameters are the final weights).
type ema struct {
	m *Model
}

// State checkpoints the average under "ema." names.
func (e *ema) State() ([]safetensors.Tensor, map[string]string, error) {
	var ts []safetensors.Tensor
	for _, t := range e.m.Params.Tensors() {
		t.Name = "ema." + t.Name
		ts = append(ts, t)
	}
	return ts, nil, nil
}

// Restore reads the average back.
func (e *ema) Restore(f *safetensors.File) error {
	for _, p := range e.m.Params.All() {
		t := f.Tensor("ema." + p.Name)
		if t == nil {
			return fmt.Errorf("checkpoint lacks ema.%s", p.Name)
		}
		v, err := t.Float32()
		if err != nil {
			return fmt.Errorf("ema.%s: %w", p.Name, err)
		}
		if len(v) != len(p.Data()) {
			return fmt.Errorf("ema.%s: %d values, want %d", p.Name, len(v), len(p.Data()))
		}
		copy(p.Data(), v)
	}
	return nil
}

// trainer is one run's state.
type trainer struct {
	preset *preset
	m      *Model
	avg    *ema
	params sdk.Params
	rng    *nn.RNG
	opt    *optim.Adam
	lr     float64
	state  *train.TrainState
	steps  map[int]*trainStep
	evalS  *sampler // the average's graphs: held-out loss and grids
	sched  Schedule
}

// Train trains the preset's architecture: each step noises a batch to
// uniformly drawn steps t and regresses the noise (ε-prediction, MSE).
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
	avg, err := NewModel(p.arch, nn.NewRNG(0))
	if err != nil {
		return err
	}
	for i, q := range m.Params.All() {
		copy(avg.Params.All()[i].Data(), q.Data())
	}
	t := &trainer{preset: p, m: m, avg: &ema{avg}, params: req.Params, rng: rng, lr: req.Params.Float("lr"),
		steps: map[int]*trainStep{}, evalS: newSampler(avg), sched: Cosine(T)}
	t.opt = optim.NewAdam(t.lr)
	t.state = &train.TrainState{Params: m.Params, RNG: rng, Optimizers: map[string]optim.Optimizer{"denoiser": t.opt},
		Identity: map[string]string{"arch": m.Arch.JSON(), "preset": p.name}, Extra: t.avg}
	defer t.evalS.close()
	loop := &train.Loop{Session: s, State: t.state, Step: t.step, Eval: t.eval, Weights: t.weights,
		LogEvery: req.Params.Int("log_every"), Samples: t.samples}
	_, err = loop.Run(ctx)
	return err
}

// data converts a batch to the model's units: images (uint8 0-255 or
// float32 0-1) to [-1, 1]; latents as they are.
func (m *Model) data(b *sdk.Batch, dst []float32) error {
	a := m.Arch
	want := append([]int{b.Len()}, a.sampleShape()...)
	if !slices.Equal(b.Shape, want) {
		return fmt.Errorf("batch: expected %v, got %s %v", want, b.DType, b.Shape)
	}
	switch {
	case a.Kind == UNet && b.DType == sdk.Uint8:
		for i, v := range b.Data {
			dst[i] = float32(v)/127.5 - 1
		}
	case a.Kind == UNet && b.DType == sdk.Float32:
		for i, v := range b.Float32s() {
			dst[i] = 2*v - 1
		}
	case a.Kind == MLP && b.DType == sdk.Float32:
		shift, scale := m.p("data.shift").Data()[0], m.p("data.scale").Data()[0]
		if scale == 0 {
			return fmt.Errorf("the model's data scale is unset (weights not trained?)")
		}
		for i, v := range b.Float32s() {
			dst[i] = (v - shift) / scale
		}
	default:
		return fmt.Errorf("batch: %s values are not what preset data are (%s)", b.DType, a.Kind)
	}
	return nil
}

// labels returns the batch's labels for a conditional model (-1 where an
// item has none), checking their range.
func (m *Model) labels(b *sdk.Batch) ([]int, error) {
	n := b.Len()
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	if m.Arch.Classes == 0 {
		return out, nil
	}
	if len(b.Labels) != n {
		return nil, fmt.Errorf("a conditional preset trains on labelled data: the batch has no labels (load with labels: idx or folders)")
	}
	for i, l := range b.Labels {
		if l >= m.Arch.Classes {
			return nil, fmt.Errorf("item %d has label %d; the preset has classes 0-%d", i, l, m.Arch.Classes-1)
		}
		out[i] = l
	}
	return out, nil
}

// setScale sets an MLP model's data shift and scale from a batch of
// latents (the first of a fresh run).
func (m *Model) setScale(b *sdk.Batch) error {
	if b.DType != sdk.Float32 {
		return fmt.Errorf("batch: expected float32 latents, got %s %v", b.DType, b.Shape)
	}
	v := b.Float32s()
	var s, s2 float64
	for _, x := range v {
		s += float64(x)
		s2 += float64(x) * float64(x)
	}
	mean := s / float64(len(v))
	sd := math.Sqrt(max(s2/float64(len(v))-mean*mean, 0))
	if sd == 0 || math.IsNaN(sd) {
		return fmt.Errorf("batch: the latents have no spread (deviation %v)", sd)
	}
	m.p("data.shift").Data()[0], m.p("data.scale").Data()[0] = float32(mean), float32(sd)
	return nil
}

func (t *trainer) step(b *sdk.Batch) (map[string]float64, error) {
	n := b.Len()
	if t.m.Arch.Kind == MLP && t.m.p("data.scale").Data()[0] == 0 {
		if err := t.m.setScale(b); err != nil {
			return nil, err
		}
	}
	st, ok := t.steps[n]
	if !ok {
		var err error
		if st, err = t.m.buildTrainStep(n); err != nil {
			return nil, err
		}
		t.steps[n] = st
	}
	x0 := make([]float32, n*t.m.Arch.per())
	if err := t.m.data(b, x0); err != nil {
		return nil, err
	}
	labels, err := t.m.labels(b)
	if err != nil {
		return nil, err
	}
	pu := t.params.Float("p_uncond")
	ts := make([]int, n)
	for i := range ts {
		ts[i] = t.rng.IntN(T)
		if labels[i] >= 0 && float64(t.rng.Float32()) < pu {
			labels[i] = -1
		}
	}
	t.rng.Normal(st.eps, 1)
	t.fill(st.in, x0, st.eps, ts, labels)
	if err := st.prog.Run(); err != nil {
		return nil, err
	}
	loss := st.prog.Scalar(0)
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("step %d: loss is %v", t.state.Step, loss)
	}
	ps := t.m.Params.Trainable()
	grads := make([][]float32, len(ps))
	var norm float64
	for i := range ps {
		grads[i] = st.prog.Grad(i)
		for _, g := range grads[i] {
			norm += float64(g) * float64(g)
		}
	}
	norm = math.Sqrt(norm)
	if c := t.params.Float("clip_grad"); c > 0 && norm > c {
		k := float32(c / norm)
		for _, g := range grads {
			for j := range g {
				g[j] *= k
			}
		}
	}
	step := t.state.Step
	t.opt.LR = t.lr
	if w := t.params.Int("warmup"); step < w {
		t.opt.LR = t.lr * float64(step+1) / float64(w)
	}
	if step == 0 {
		// The average was copied from the model before train.init's
		// weights replaced it: start it from what the run starts from.
		for i, p := range t.m.Params.All() {
			copy(t.avg.m.Params.All()[i].Data(), p.Data())
		}
	}
	t.opt.Step(ps, grads)
	d := float32(min(t.params.Float("ema"), float64(1+step)/float64(10+step)))
	for i, p := range t.m.Params.All() {
		a := t.avg.m.Params.All()[i].Data()
		if p.Buffer {
			copy(a, p.Data()) // set once (data scale), not averaged
			continue
		}
		for j, v := range p.Data() {
			a[j] = d*a[j] + (1-d)*v
		}
	}
	return map[string]float64{"loss": loss, "grad_norm": norm, "lr": t.opt.LR}, nil
}

// fill writes a graph's inputs: x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, the time
// features and the labels.
func (t *trainer) fill(in Inputs, x0, eps []float32, ts, labels []int) {
	per := t.m.Arch.per()
	xt := layers.Data(in.X)
	tf := make([]float64, len(ts))
	for i, s := range ts {
		ab := t.sched.AlphaBar[s]
		a, c := float32(math.Sqrt(ab)), float32(math.Sqrt(1-ab))
		for j := i * per; j < (i+1)*per; j++ {
			xt[j] = a*x0[j] + c*eps[j]
		}
		tf[i] = float64(s)
	}
	sinusoidal(layers.Data(in.Feats), tf, t.m.Arch.features())
	if in.Labels != nil {
		oneHot(layers.Data(in.Labels), labels, t.m.Arch.Classes)
	}
}

// eval is the averaged model's ε-prediction loss on the held-out data,
// item k of the pass noised to a step and with noise drawn from seed k,
// so that evaluations along a run compare like with like; the loss is
// also reported over three bands of t (low, middle, high noise).
func (t *trainer) eval(ctx context.Context, next func(context.Context) (*sdk.Batch, error)) (map[string]float64, error) {
	per := t.m.Arch.per()
	var sum [4]float64
	var cnt [4]int
	k := 0
	for {
		b, err := next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		n := b.Len()
		x0 := make([]float32, n*per)
		if err := t.m.data(b, x0); err != nil {
			return nil, err
		}
		labels, err := t.m.labels(b)
		if err != nil {
			return nil, err
		}
		d, err := t.evalS.net(n)
		if err != nil {
			return nil, err
		}
		eps := make([]float32, n*per)
		ts := make([]int, n)
		for i := 0; i < n; i++ {
			r := nn.NewRNG(uint64(k + i))
			ts[i] = r.IntN(T)
			r.Normal(eps[i*per:(i+1)*per], 1)
		}
		t.fill(d.in, x0, eps, ts, labels)
		if err := d.prog.Run(); err != nil {
			return nil, err
		}
		pred := d.prog.Output(0)
		for i := 0; i < n; i++ {
			var s float64
			for j := i * per; j < (i+1)*per; j++ {
				e := float64(pred[j] - eps[j])
				s += e * e
			}
			s /= float64(per)
			band := 1 + ts[i]*3/T
			sum[0] += s
			sum[band] += s
			cnt[0]++
			cnt[band]++
		}
		k += n
	}
	if cnt[0] == 0 {
		return nil, nil
	}
	out := map[string]float64{"loss": sum[0] / float64(cnt[0])}
	for i, name := range []string{"", "loss_low_t", "loss_mid_t", "loss_high_t"} {
		if i > 0 && cnt[i] > 0 {
			out[name] = sum[i] / float64(cnt[i])
		}
	}
	return out, nil
}

// samples draws the progress grid with the averaged weights, from the
// same noise every time (item i from seed i): a conditional preset shows
// ten of each label, one row per label, at guidance 2; an unconditional
// one 64 samples.
func (t *trainer) samples(ctx context.Context, _ func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error) {
	a := t.m.Arch
	if a.Kind != UNet {
		return nil, 0, nil
	}
	n, cols := 64, 8
	if a.Classes > 0 {
		n, cols = 10*a.Classes, 10
	}
	labels := make([]int, n)
	rngs := make([]*nn.RNG, n)
	x := make([]float32, n*a.per())
	for i := range labels {
		labels[i] = -1
		if a.Classes > 0 {
			labels[i] = i / cols
		}
		rngs[i] = nn.NewRNG(uint64(i))
		rngs[i].Normal(x[i*a.per():(i+1)*a.per()], 1)
	}
	out, _, err := t.evalS.Run(ctx, x, labels, rngs, Sampling{Sampler: DDIM, Steps: t.params.Int("sample_steps"),
		Guidance: 2, Temperature: 1, Clip: 1, From: T - 1})
	if err != nil {
		return nil, 0, err
	}
	return toImages(out, n, a), cols, nil
}

// toImages maps model units [-1, 1] to float32 images in [0, 1].
func toImages(x []float32, n int, a Arch) *sdk.Tensor {
	px := make([]float32, len(x))
	for i, v := range x {
		px[i] = max(0, min(1, (v+1)/2))
	}
	return sdk.FromFloat32(px, append([]int{n}, a.sampleShape()...)...)
}

// weights are the final safetensors: the averaged parameters, the
// architecture and the training parameters.
func (t *trainer) weights(metrics map[string]float64) ([]byte, error) {
	meta := map[string]string{
		"format":  weightsFormat,
		"arch":    t.m.Arch.JSON(),
		"preset":  t.preset.name,
		"plugin":  Name + " " + Version,
		"steps":   strconv.Itoa(t.state.Step),
		"nparams": strconv.Itoa(t.m.Params.Count()),
		"weights": "exponential moving average, decay " + strconv.FormatFloat(t.params.Float("ema"), 'g', -1, 64),
	}
	if b, err := json.Marshal(t.params); err == nil {
		meta["train_params"] = string(b)
	}
	if b, err := json.Marshal(metrics); err == nil && metrics != nil {
		meta["eval"] = string(b)
	}
	return (&safetensors.File{Metadata: meta, Tensors: t.avg.m.Params.Tensors()}).Encode()
}
