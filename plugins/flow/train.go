package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
	G "gorgonia.org/gorgonia"
)

// TrainParams are the training hyperparameters (the architecture comes
// from the preset).
//
//	| param     | default | meaning                                                        |
//	|-----------|---------|----------------------------------------------------------------|
//	| lr        | 1e-3    | Adam learning rate after the warm-up                           |
//	| warmup    | 200     | steps of linear learning-rate warm-up from 0                   |
//	| decay     | 0.999   | learning rate multiplied by this every 100 steps after warm-up |
//	| clip_grad | 100     | global gradient-norm clip (0: off)                             |
//	| log_every | 50      | steps between progress events                                  |
var TrainParams = []sdk.Param{
	{Name: "lr", Type: sdk.Float, Default: 1e-3, Min: sdk.Bound(0), Max: sdk.Bound(1), Doc: "Adam learning rate after the warm-up"},
	{Name: "warmup", Type: sdk.Int, Default: 200, Min: sdk.Bound(0), Max: sdk.Bound(1000000), Doc: "steps of linear learning-rate warm-up from 0"},
	{Name: "decay", Type: sdk.Float, Default: 0.999, Min: sdk.Bound(0.5), Max: sdk.Bound(1), Doc: "the learning rate is multiplied by this every 100 steps after the warm-up"},
	{Name: "clip_grad", Type: sdk.Float, Default: 100.0, Min: sdk.Bound(0), Max: sdk.Bound(1e6), Doc: "global gradient-norm clip (0: off)"},
	{Name: "log_every", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(100000), Doc: "steps between progress events"},
}

// dequantize maps 8-bit pixels (uint8 0-255, or float32 0-1 as a float
// stage delivers them, rounded to the 256 levels) to y = (x + u)/256 − ½,
// with u uniform in [0, 1) drawn from rng, or ½ (the bin's centre) when
// rng is nil.
func (m *Model) dequantize(b *sdk.Batch, dst []float32, rng *nn.RNG) error {
	a := m.Arch
	want := []int{b.Len(), a.Ch, a.Size, a.Size}
	if len(b.Shape) != 4 || b.Shape[1] != a.Ch || b.Shape[2] != a.Size || b.Shape[3] != a.Size {
		return fmt.Errorf("batch: expected %v, got %s %v", want, b.DType, b.Shape)
	}
	var px []float32
	switch b.DType {
	case sdk.Uint8:
		px = make([]float32, len(b.Data))
		for i, v := range b.Data {
			px[i] = float32(v)
		}
	case sdk.Float32:
		px = b.Float32s()
		for i, v := range px {
			px[i] = float32(math.Round(float64(max(0, min(1, v))) * 255))
		}
	default:
		return fmt.Errorf("batch: %s pixels; want uint8 or float32", b.DType)
	}
	if rng != nil {
		rng.Uniform(dst[:len(px)], 0, 1)
	} else {
		for i := range px {
			dst[i] = 0.5
		}
	}
	for i, v := range px {
		dst[i] = (v+dst[i])/256 - 0.5
	}
	return nil
}

// step is a compiled training graph for batches of n.
type step struct {
	y    *G.Node
	prog *layers.Program
}

func (m *Model) buildStep(n int) (*step, error) {
	b := layers.NewBuilder()
	y := b.Input("y", n, m.Arch.Ch, m.Arch.Size, m.Arch.Size)
	f := m.forward(b, y)
	if b.Err() != nil {
		return nil, b.Err()
	}
	d := float64(m.Arch.Dims())
	loss := b.Apply("bits per dim", func() (*G.Node, error) {
		mean, err := G.Mean(f.logp)
		if err != nil {
			return nil, err
		}
		s, err := G.Mul(mean, G.NewConstant(float32(-1/(d*math.Ln2))))
		if err != nil {
			return nil, err
		}
		return G.Add(s, G.NewConstant(float32(8)))
	})
	prog, err := layers.Compile(b, loss, m.Params.Trainable())
	if err != nil {
		return nil, err
	}
	return &step{y: y, prog: prog}, nil
}

// run runs the training graph on n dequantised images y and returns their
// mean bits per dimension, the logit transform's log-det included (it
// depends on the data only: it moves the figure, not the gradient).
func (st *step) run(a Arch, y []float32, n int) (float64, error) {
	u, ld := a.flowInput(y, n)
	copy(layers.Data(st.y), u)
	if err := st.prog.Run(); err != nil {
		return 0, err
	}
	loss := st.prog.Scalar(0)
	for _, v := range ld {
		loss -= v / float64(n) / (float64(a.Dims()) * math.Ln2)
	}
	return loss, nil
}

// InitActNorm sets every actnorm layer, in order, so that its output on
// y (n items) has zero mean and unit variance per channel (Glow's
// data-dependent initialisation), and marks it initialised.
func (m *Model) InitActNorm(y []float32, n int) error {
	a := m.Arch
	b := layers.NewBuilder()
	x := b.Input("y", n, a.Ch, a.Size, a.Size)
	u, _ := a.flowInput(y, n)
	copy(layers.Data(x), u)
	f := m.forward(b, x)
	if b.Err() != nil {
		return b.Err()
	}
	prog, err := layers.Compile(b, nil, nil, f.actIn...)
	if err != nil {
		return err
	}
	defer prog.Close()
	i := 0
	for l := range a.levels() {
		for k := 0; k < a.Steps; k++ {
			if err := prog.Run(); err != nil {
				return err
			}
			v := prog.Output(i)
			s := f.actIn[i].Shape()
			c, inner := s[1], s[2]*s[3]
			name := stepName(l, k) + ".actnorm"
			bias, logs := m.p(name+".bias").Data(), m.p(name+".logs").Data()
			for ch := 0; ch < c; ch++ {
				var sum, sq float64
				for it := 0; it < n; it++ {
					for _, u := range v[(it*c+ch)*inner : (it*c+ch+1)*inner] {
						sum += float64(u)
						sq += float64(u) * float64(u)
					}
				}
				cnt := float64(n * inner)
				mean := sum / cnt
				sd := math.Sqrt(max(sq/cnt-mean*mean, 0))
				bias[ch] = float32(-mean)
				logs[ch] = float32(-math.Log(sd + 1e-6))
			}
			m.p(name + ".initialized").Data()[0] = 1
			i++
		}
	}
	return nil
}

// trainer is one run's state.
type trainer struct {
	preset *preset
	m      *Model
	params sdk.Params
	rng    *nn.RNG
	opt    *optim.Adam
	state  *train.TrainState
	steps  map[int]*step
	smp    *sampler
}

// Train maximises the likelihood of the dequantised images: the loss is
// their mean bits per dimension.
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
	t := &trainer{preset: p, m: m, params: req.Params, rng: rng, opt: optim.NewAdam(req.Params.Float("lr")),
		steps: map[int]*step{}}
	t.state = &train.TrainState{Params: m.Params, RNG: rng, Optimizers: map[string]optim.Optimizer{"flow": t.opt},
		Identity: map[string]string{"arch": m.Arch.JSON(), "preset": p.name}}
	loop := &train.Loop{Session: s, State: t.state, Step: t.step, Eval: t.eval, Weights: t.weights,
		LogEvery: req.Params.Int("log_every"), Samples: t.samples}
	defer func() {
		if t.smp != nil {
			t.smp.close()
		}
	}()
	_, err = loop.Run(ctx)
	return err
}

func (t *trainer) step(b *sdk.Batch) (map[string]float64, error) {
	n := b.Len()
	y := make([]float32, n*t.m.Arch.Dims())
	if err := t.m.dequantize(b, y, t.rng); err != nil {
		return nil, err
	}
	if t.m.p(stepName(0, 0) + ".actnorm.initialized").Data()[0] == 0 {
		if err := t.m.InitActNorm(y, n); err != nil {
			return nil, fmt.Errorf("actnorm initialisation: %w", err)
		}
	}
	st, ok := t.steps[n]
	if !ok {
		var err error
		if st, err = t.m.buildStep(n); err != nil {
			return nil, err
		}
		t.steps[n] = st
	}
	loss, err := st.run(t.m.Arch, y, n)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("step %d: bits per dim is %v%s", t.state.Step, loss, t.m.diagnose(y, n))
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
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return nil, fmt.Errorf("step %d: the gradient norm is %v%s", t.state.Step, norm, t.m.diagnose(y, n))
	}
	if c := t.params.Float("clip_grad"); c > 0 && norm > c {
		k := float32(c / norm)
		for _, g := range grads {
			for j := range g {
				g[j] *= k
			}
		}
	}
	lr := t.params.Float("lr")
	if w := t.params.Int("warmup"); t.state.Step < w {
		lr *= float64(t.state.Step+1) / float64(w)
	} else {
		lr *= math.Pow(t.params.Float("decay"), float64((t.state.Step-w)/100))
	}
	t.opt.LR = lr
	t.opt.Step(ps, grads)
	return map[string]float64{"bits_per_dim": loss, "grad_norm": norm, "lr": lr}, nil
}

// diagnose names the first flow step whose input holds a value that is
// not finite, for the error that stops a training.
func (m *Model) diagnose(y []float32, n int) string {
	a := m.Arch
	b := layers.NewBuilder()
	x := b.Input("y", n, a.Ch, a.Size, a.Size)
	u, _ := a.flowInput(y, n)
	copy(layers.Data(x), u)
	f := m.forward(b, x)
	if b.Err() != nil {
		return ""
	}
	outs := append(append([]*G.Node(nil), f.actIn...), f.logdet)
	prog, err := layers.Compile(b, nil, nil, outs...)
	if err != nil {
		return ""
	}
	defer prog.Close()
	if err := prog.Run(); err != nil {
		return ""
	}
	i := 0
	for l := range a.levels() {
		for k := 0; k < a.Steps; k++ {
			for _, v := range prog.Output(i) {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return fmt.Sprintf(" (first non-finite values enter layer %s)", stepName(l, k))
				}
			}
			i++
		}
	}
	for _, v := range prog.Output(i) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return " (the layers' inputs are finite; the log-determinant is not: an actnorm or 1x1-convolution scale overflowed)"
		}
	}
	return ""
}

// eval is the held-out data's mean bits per dimension, item k of the pass
// dequantised with noise from seed k, so evaluations compare like with
// like.
func (t *trainer) eval(ctx context.Context, next func(context.Context) (*sdk.Batch, error)) (map[string]float64, error) {
	var sum float64
	k := 0
	for {
		b, err := next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		bpd, err := t.m.bitsPerDim(b, k)
		if err != nil {
			return nil, err
		}
		for _, v := range bpd {
			sum += v
		}
		k += b.Len()
	}
	if k == 0 {
		return nil, nil
	}
	return map[string]float64{"bits_per_dim": sum / float64(k)}, nil
}

// bitsPerDim is each item's bits per dimension, item i dequantised with
// noise from seed first+i.
func (m *Model) bitsPerDim(b *sdk.Batch, first int) ([]float64, error) {
	n, d := b.Len(), m.Arch.Dims()
	y := make([]float32, n*d)
	for i := 0; i < n; i++ {
		one := &sdk.Batch{Tensor: b.Tensor.Slice(i, i+1)}
		if err := m.dequantize(one, y[i*d:(i+1)*d], nn.NewRNG(uint64(first+i))); err != nil {
			return nil, err
		}
	}
	logp, err := m.logLikelihood(y, n)
	if err != nil {
		return nil, err
	}
	out := make([]float64, n)
	for i, v := range logp {
		out[i] = BitsPerDim(v, d)
	}
	return out, nil
}

// logLikelihood is log p(y) per item.
func (m *Model) logLikelihood(y []float32, n int) ([]float64, error) {
	logp, _, err := m.run(y, n)
	return logp, err
}

// samples draws the progress grid: 64 samples at temperature 0.7 from
// the same noise every time (item i from seed i).
func (t *trainer) samples(ctx context.Context, _ func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error) {
	if t.m.p(stepName(0, 0) + ".actnorm.initialized").Data()[0] == 0 {
		return nil, 0, nil // before the first batch: nothing meaningful yet
	}
	if t.smp == nil {
		t.smp = newSampler(t.m)
	}
	seeds := make([]uint64, 64)
	for i := range seeds {
		seeds[i] = uint64(i)
	}
	img, err := t.smp.sample(seeds, 0.7)
	return img, 8, err
}

// weights are the final safetensors.
func (t *trainer) weights(metrics map[string]float64) ([]byte, error) {
	meta := map[string]string{
		"format":  weightsFormat,
		"arch":    t.m.Arch.JSON(),
		"preset":  t.preset.name,
		"plugin":  Name + " " + Version,
		"steps":   strconv.Itoa(t.state.Step),
		"nparams": strconv.Itoa(t.m.Params.Count()),
	}
	if b, err := json.Marshal(t.params); err == nil {
		meta["train_params"] = string(b)
	}
	if b, err := json.Marshal(metrics); err == nil && metrics != nil {
		meta["eval"] = string(b)
	}
	return (&safetensors.File{Metadata: meta, Tensors: t.m.Params.Tensors()}).Encode()
}
