package sdktest

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// Fault-injection seeds understood by the plugin of [NewTestPlugin]. A batch
// that carries one of them as any item's seed triggers the fault, so host
// tests can make one chosen batch fail.
const (
	// SeedPanic makes the call panic (the SDK turns it into an error).
	SeedPanic uint64 = 0xDEAD_0001
	// SeedExit makes the plugin log "injected crash" and exit with status 3,
	// as a crash would.
	SeedExit uint64 = 0xDEAD_0002
	// SeedBlock makes the call wait for its context to end; the plugin then
	// logs "observed cancellation" and returns the context's error.
	SeedBlock uint64 = 0xDEAD_0003
)

// NewTestPlugin returns a small but real plugin that implements every
// capability, for testing hosts and this kit. Its presets:
//
//   - "gray28" (default): 1x28x28 uint8 in and out, 10 classes; encode,
//     generate, translate, denoise, train.
//   - "rgb": 3xHxW float32 in [0,1], any size; encode, translate, denoise.
//   - "rgb8": 3xHxW uint8, any size; translate, denoise.
//   - "up2": 1xHxW uint8 of any size in, twice that size out (size rule
//     scale x2, nearest neighbour); translate.
//
// Translate applies op "scale" (multiply by gain, clamp), "invert" or
// "edges" (Sobel magnitude); tint (a colour, "#rgb" or "#rrggbb") multiplies
// op scale's output; tag (a declared pattern) is only logged; delay_ms adds
// a context-aware sleep. Denoise
// mixes a 3x3 box blur in by strength. Encode returns each channel's mean
// in [0,1]. Generate draws seeded uniform noise (a label brightens the first
// row; latents fill each channel with their value). Train learns per-channel
// mean and standard deviation from the data and returns them as JSON
// weights, which Load accepts as Weights to standardise in Translate (op
// "standardize"). See also the Seed* fault-injection seeds.
func NewTestPlugin(name string) sdk.Plugin { return &testPlugin{name: name} }

type testPlugin struct{ name string }

var (
	_ sdk.Plugin  = (*testPlugin)(nil)
	_ sdk.Trainer = (*testPlugin)(nil)
)

func (p *testPlugin) Describe() sdk.Description {
	gray := &sdk.ImageSpec{Channels: 1, Height: 28, Width: 28, DType: sdk.Uint8, Min: 0, Max: 255}
	rgb := &sdk.ImageSpec{Channels: 3, DType: sdk.Float32, Min: 0, Max: 1}
	rgb8 := &sdk.ImageSpec{Channels: 3, DType: sdk.Uint8, Min: 0, Max: 255}
	return sdk.Description{
		Name:    p.name,
		Version: "1.0.0",
		Doc:     "A tiny plugin with every capability, for testing hosts and sdktest.",
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapEncode, Doc: "Per-channel means."},
			{Name: sdk.CapGenerate, Doc: "Seeded noise.", Params: []sdk.Param{
				{Name: "amplitude", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(1), Doc: "Scale of the noise."},
			}},
			{Name: sdk.CapTranslate, Doc: "Point and edge filters.", Params: []sdk.Param{
				{Name: "op", Type: sdk.String, Default: "scale", Enum: []string{"scale", "invert", "edges", "standardize"}, Doc: "The filter."},
				{Name: "gain", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(10), Doc: "Multiplier of op scale."},
				{Name: "delay_ms", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(10000), Doc: "Sleep per call, to simulate a slow model."},
				{Name: "exit_on_label", Type: sdk.Int, Default: -1, Min: sdk.Bound(-1), Doc: "Exit the process with status 3 when a batch holds an item of this label (-1: never): a poison item, to test that a crash on one item does not sink the others."},
				{Name: "tint", Type: sdk.String, Default: "#ffffff", Format: sdk.FormatColor, Doc: "Colour multiplied into op scale's output (channel c by component c; gray images by red)."},
				{Name: "tag", Type: sdk.String, Pattern: `[a-z][a-z0-9-]*`, Doc: "A name logged with every call."},
			}, Scores: []sdk.ScoreSpec{
				{Name: "mean", Doc: "Mean of the input's values scaled to [0, 1]: a score for hosts to keep items by."},
			}},
			{Name: sdk.CapDenoise, Doc: "Box blur.", Params: []sdk.Param{
				{Name: "strength", Type: sdk.Float, Default: 0.5, Min: sdk.Bound(0), Max: sdk.Bound(1), Doc: "How much blur is mixed in."},
			}},
			{Name: sdk.CapTrain, Doc: "Learns per-channel statistics.", Params: []sdk.Param{
				{Name: "rate", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0.001), Max: sdk.Bound(1), Doc: "Running-average rate (1: exact mean)."},
				{Name: "pad_bytes", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(64 << 20), Doc: "Padding appended to the weights, to test large transfers."},
				{Name: "format", Type: sdk.String, Default: "json", Enum: []string{"json", "safetensors"}, Doc: "Final weights as JSON stats, or as safetensors (tensors mean and std, with metadata)."},
				{Name: "eval_passes", Type: sdk.Int, Default: 1, Min: sdk.Bound(0), Max: sdk.Bound(10), Doc: "Passes over the held-out data at the end; each must see the same data."},
				{Name: "bad_samples", Type: sdk.Bool, Default: false, Doc: "Report samples of the wrong shape (a [N 28] tensor), to test that the host survives them."},
				{Name: "exit_after", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Doc: "Exit the process with status 3 after this many steps of a run that did not resume (0: never), to test crash recovery."},
				{Name: "step_delay_ms", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(10000), Doc: "Sleep per step, to simulate a slow model."},
			}},
		},
		Presets: []sdk.Preset{
			{Name: "gray28", Default: true, Doc: "MNIST-sized grayscale.", Classes: 10,
				Capabilities: []sdk.Capability{sdk.CapEncode, sdk.CapGenerate, sdk.CapTranslate, sdk.CapDenoise, sdk.CapTrain},
				Input:        gray, Output: gray, Latent: &sdk.LatentSpec{Space: p.name + "/gray-mean", Dim: 1}},
			{Name: "rgb", Doc: "RGB float32 of any size.",
				Capabilities: []sdk.Capability{sdk.CapEncode, sdk.CapTranslate, sdk.CapDenoise},
				Input:        rgb, Output: rgb, Latent: &sdk.LatentSpec{Space: p.name + "/rgb-mean", Dim: 3}},
			{Name: "rgb8", Doc: "RGB uint8 of any size.",
				Capabilities: []sdk.Capability{sdk.CapTranslate, sdk.CapDenoise},
				Input:        rgb8, Output: rgb8},
			{Name: "up2", Doc: "Grayscale of any size, upscaled x2.",
				Capabilities: []sdk.Capability{sdk.CapTranslate},
				Input:        &sdk.ImageSpec{Channels: 1, DType: sdk.Uint8, Min: 0, Max: 255},
				Output:       &sdk.ImageSpec{Channels: 1, DType: sdk.Uint8, Min: 0, Max: 255, Size: sdk.ScaleSize(2, 1)}},
		},
		BatchSize: 16,
	}
}

// Stats are the weights the test plugin trains. Order fingerprints the
// sequence of training items (their seeds and labels, in the order they
// came), so tests can check that a resumed run saw the same data in the same
// order as an uninterrupted one. Eval* describe the held-out data.
type Stats struct {
	Mean      []float64 `json:"mean"`
	Std       []float64 `json:"std"`
	Items     int       `json:"items"`
	Steps     int       `json:"steps,omitempty"`
	Order     uint64    `json:"order,omitempty"`
	EvalItems int       `json:"eval_items,omitempty"`
	EvalMean  []float64 `json:"eval_mean,omitempty"`
	Pad       []byte    `json:"pad,omitempty"`
	// SumSq is the running mean square per channel (checkpoints only).
	SumSq []float64 `json:"sum_sq,omitempty"`
}

func (p *testPlugin) Load(_ context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	desc := p.Describe()
	m := &testModel{
		preset: *desc.Preset(req.Preset),
		params: req.Params,
		log:    req.Logger,
	}
	if m.log == nil {
		m.log = hclog.NewNullLogger()
	}
	if req.Weights != "" {
		raw, err := os.ReadFile(req.Weights)
		if err != nil {
			return nil, fmt.Errorf("weights: %w", err)
		}
		var st Stats
		if err := json.Unmarshal(raw, &st); err != nil {
			return nil, fmt.Errorf("weights %s: not test-plugin stats: %w", req.Weights, err)
		}
		m.stats = &st
	}
	if m.stats == nil {
		// Untrained: the statistics of uniform noise in [0,1].
		m.stats = &Stats{Mean: []float64{0.5}, Std: []float64{math.Sqrt(1.0 / 12)}}
	}
	return m, nil
}

// Train learns per-channel mean and standard deviation from every batch the
// host sends, reporting after each batch, saving a checkpoint every
// Request().CheckpointEvery steps and, after a pass over the held-out data,
// the final stats.
func (p *testPlugin) Train(ctx context.Context, s sdk.TrainSession) error {
	req := s.Request()
	rate := req.Params.Float("rate")
	var st Stats
	if req.Resume != nil {
		if err := json.Unmarshal(req.Resume, &st); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		s.Logger().Info("resuming", "step", st.Steps, "items", st.Items)
	} else if req.Init != nil {
		// Start from earlier final weights: the statistics go on
		// accumulating; the step count is this run's.
		if err := json.Unmarshal(req.Init, &st); err != nil {
			return fmt.Errorf("init: these are not %s weights: %w", p.name, err)
		}
		st.Steps, st.Order = 0, 0
	}
	sumSq := st.SumSq
	if len(sumSq) != len(st.Mean) {
		sumSq = make([]float64, len(st.Mean))
		for c := range st.Mean {
			sumSq[c] = st.Std[c]*st.Std[c] + st.Mean[c]*st.Mean[c]
		}
	}
	st.SumSq = nil // kept in sumSq; only checkpoints carry it
	stepsThisRun := 0
	for {
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := fault(ctx, s.Logger(), b.Seeds); err != nil {
			return err
		}
		if d := req.Params.Int("step_delay_ms"); d > 0 {
			select {
			case <-time.After(time.Duration(d) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		step := st.Steps + 1
		mean, sq := channelMoments(b.Tensor)
		if st.Mean == nil {
			st.Mean, st.Std, sumSq = make([]float64, len(mean)), make([]float64, len(mean)), make([]float64, len(mean))
		}
		if len(mean) != len(st.Mean) {
			return fmt.Errorf("batch %d has %d channels, earlier batches %d", step, len(mean), len(st.Mean))
		}
		n := b.Len()
		change := 0.0
		for c := range mean {
			// With rate 1 this is the exact running mean over all items.
			w := float64(n) / float64(st.Items+n)
			if rate < 1 {
				w = rate
			}
			old := st.Mean[c]
			st.Mean[c] += w * (mean[c] - st.Mean[c])
			sumSq[c] += w * (sq[c] - sumSq[c])
			st.Std[c] = math.Sqrt(math.Max(0, sumSq[c]-st.Mean[c]*st.Mean[c]))
			change += math.Abs(st.Mean[c] - old)
		}
		st.Order = fingerprint(st.Order, b)
		st.Items += n
		st.Steps = step
		stepsThisRun++
		epoch := 1
		if req.Epochs > 0 && req.Steps > 0 {
			epoch = 1 + (step-1)/max(1, req.Steps/req.Epochs)
		}
		if err := s.Report(sdk.TrainEvent{Epoch: epoch, Step: step, Total: req.Steps, Metrics: map[string]float64{"mean_change": change, "items": float64(st.Items)}}); err != nil {
			return err
		}
		if every := req.SampleEvery; every > 0 && step%every == 0 {
			// The batch's first items stand in for samples: this plugin
			// generates nothing it learnt.
			part := b.Tensor.Slice(0, min(4, n))
			smp := &sdk.Tensor{DType: part.DType, Shape: slices.Clone(part.Shape), Data: slices.Clone(part.Data)}
			if req.Params.Bool("bad_samples") {
				smp.Shape = []int{smp.Shape[0], len(smp.Data) / smp.Shape[0]}
			}
			if err := s.Report(sdk.TrainEvent{Epoch: epoch, Step: step, Total: req.Steps, Samples: smp, SampleColumns: 2}); err != nil {
				return err
			}
		}
		if every := req.CheckpointEvery; every > 0 && step%every == 0 {
			ck := st
			ck.SumSq = sumSq
			w, err := json.Marshal(ck)
			if err != nil {
				return err
			}
			if err := s.Save(w, false); err != nil {
				return err
			}
		}
		if x := req.Params.Int("exit_after"); x > 0 && req.Resume == nil && stepsThisRun == x {
			s.Logger().Error("injected crash after steps: exiting with status 3", "steps", x)
			os.Exit(3)
		}
	}
	for pass := 0; pass < req.Params.Int("eval_passes"); pass++ {
		items, mean, err := evalPass(ctx, s)
		if err != nil {
			return err
		}
		if pass > 0 && (items != st.EvalItems || fmt.Sprint(mean) != fmt.Sprint(st.EvalMean)) {
			return fmt.Errorf("eval pass %d saw %d items of mean %v, pass 1 saw %d of mean %v", pass+1, items, mean, st.EvalItems, st.EvalMean)
		}
		st.EvalItems, st.EvalMean = items, mean
	}
	if st.EvalItems > 0 {
		m := map[string]float64{"eval_items": float64(st.EvalItems)}
		for c, v := range st.EvalMean {
			m[fmt.Sprintf("eval_mean%d", c)] = v
		}
		if err := s.Report(sdk.TrainEvent{Step: st.Steps, Total: req.Steps, Metrics: m, Message: fmt.Sprintf("held-out: %d items", st.EvalItems)}); err != nil {
			return err
		}
	}
	if pad := req.Params.Int("pad_bytes"); pad > 0 {
		st.Pad = make([]byte, pad)
		for i := range st.Pad {
			st.Pad[i] = byte(i)
		}
	}
	var w []byte
	var err error
	if req.Params.String("format") == "safetensors" {
		w, err = st.safetensors(p.name, req.Preset)
	} else {
		w, err = json.Marshal(st)
	}
	if err != nil {
		return err
	}
	s.Logger().Info("trained", "items", st.Items, "mean", fmt.Sprint(st.Mean))
	return s.Save(w, true)
}

// evalPass reads one pass of held-out data and returns its item count and
// per-channel mean.
func evalPass(ctx context.Context, s sdk.TrainSession) (int, []float64, error) {
	items := 0
	var sum []float64
	for {
		b, err := s.Eval(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, err
		}
		mean, _ := channelMoments(b.Tensor)
		if sum == nil {
			sum = make([]float64, len(mean))
		}
		for c := range mean {
			if c < len(sum) {
				sum[c] += mean[c] * float64(b.Len())
			}
		}
		items += b.Len()
	}
	for c := range sum {
		sum[c] /= float64(items)
	}
	return items, sum, nil
}

// fingerprint folds a batch's seeds and labels into h (FNV-1a).
func fingerprint(h uint64, b *sdk.Batch) uint64 {
	if h == 0 {
		h = 14695981039346656037
	}
	mix := func(x uint64) {
		for i := 0; i < 8; i++ {
			h ^= x & 0xff
			h *= 1099511628211
			x >>= 8
		}
	}
	for _, s := range b.Seeds {
		mix(s)
	}
	for _, l := range b.Labels {
		mix(uint64(int64(l)))
	}
	return h
}

// safetensors encodes the stats as a safetensors file (F32 tensors mean and
// std) whose metadata, like a real model's, records the architecture and the
// measured held-out metric.
func (st Stats) safetensors(name, preset string) ([]byte, error) {
	f32 := func(v []float64) []float32 {
		out := make([]float32, len(v))
		for i, x := range v {
			out[i] = float32(x)
		}
		return out
	}
	meta := map[string]string{
		"format": "pt",
		"arch":   name + "/" + preset,
		"items":  fmt.Sprint(st.Items),
		"order":  fmt.Sprint(st.Order),
	}
	if st.EvalItems > 0 {
		meta["test_mean"] = fmt.Sprint(st.EvalMean)
	}
	f := &safetensors.File{Metadata: meta, Tensors: []safetensors.Tensor{
		safetensors.F32("mean", []int{len(st.Mean)}, f32(st.Mean)),
		safetensors.F32("std", []int{len(st.Std)}, f32(st.Std)),
	}}
	return f.Encode()
}

// channelMoments returns each channel's mean and mean square in [0,1] units.
func channelMoments(t *sdk.Tensor) (mean, sq []float64) {
	v := normalized(t)
	c, hw := t.Shape[1], 1
	for _, d := range t.Shape[2:] {
		hw *= d
	}
	mean, sq = make([]float64, c), make([]float64, c)
	n := t.Len()
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			for _, x := range v[(i*c+ch)*hw : (i*c+ch+1)*hw] {
				mean[ch] += float64(x)
				sq[ch] += float64(x) * float64(x)
			}
		}
	}
	for ch := range mean {
		cnt := float64(n * hw)
		if cnt > 0 {
			mean[ch] /= cnt
			sq[ch] /= cnt
		}
	}
	return mean, sq
}

type testModel struct {
	preset sdk.Preset
	params sdk.Params
	log    hclog.Logger
	stats  *Stats
}

var (
	_ sdk.Encoder    = (*testModel)(nil)
	_ sdk.Generator  = (*testModel)(nil)
	_ sdk.Translator = (*testModel)(nil)
	_ sdk.Denoiser   = (*testModel)(nil)
)

// fault triggers the injected faults of the Seed* constants.
func fault(ctx context.Context, log hclog.Logger, seeds []uint64) error {
	for _, s := range seeds {
		switch s {
		case SeedPanic:
			panic("injected panic")
		case SeedExit:
			log.Error("injected crash: exiting with status 3")
			os.Exit(3)
		case SeedBlock:
			select {
			case <-ctx.Done():
			case <-time.After(time.Minute):
			}
			log.Warn("observed cancellation", "error", fmt.Sprint(ctx.Err()))
			return ctx.Err()
		}
	}
	return nil
}

func (m *testModel) Encode(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	if err := fault(ctx, m.log, in.Seeds); err != nil {
		return nil, err
	}
	n, c := in.Len(), in.Shape[1]
	v := normalized(in.Tensor)
	hw := len(v) / max(1, n*c)
	out := make([]float32, n*c)
	for i := range out {
		s := 0.0
		for _, x := range v[i*hw : (i+1)*hw] {
			s += float64(x)
		}
		out[i] = float32(s / float64(max(1, hw)))
	}
	t := sdk.FromFloat32(out, n, c)
	t.Space = m.preset.Latent.Space
	return t, nil
}

func (m *testModel) Generate(ctx context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	if err := fault(ctx, m.log, req.Seeds); err != nil {
		return nil, err
	}
	spec := m.preset.Output
	n := len(req.Seeds)
	c, h, w := spec.Channels, spec.Height, spec.Width
	amp := m.params.Float("amplitude")
	v := make([]float32, n*c*h*w)
	for i := 0; i < n; i++ {
		item := v[i*c*h*w : (i+1)*c*h*w]
		if req.Latents != nil {
			lat := req.Latents.Float32s()[i*req.Latents.Shape[1] : (i+1)*req.Latents.Shape[1]]
			for ch := 0; ch < c; ch++ {
				for k := range h * w {
					item[ch*h*w+k] = clamp01(lat[ch%len(lat)])
				}
			}
		} else {
			rng := rand.New(rand.NewPCG(req.Seeds[i], 0x9e3779b97f4a7c15))
			for k := range item {
				item[k] = float32(rng.Float64() * amp)
			}
		}
		if y := req.Labels[i]; y >= 0 {
			for k := 0; k < w; k++ {
				item[k] = float32(y+1) / float32(m.preset.Classes)
			}
		}
	}
	return denormalized(v, spec, n, c, h, w), nil
}

func (m *testModel) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	if err := fault(ctx, m.log, in.Seeds); err != nil {
		return nil, err
	}
	if d := m.params.Int("delay_ms"); d > 0 {
		select {
		case <-time.After(time.Duration(d) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if l := m.params.Int("exit_on_label"); l >= 0 && slices.Contains(in.Labels, l) {
		m.log.Error("injected crash on a poison item: exiting with status 3", "label", l)
		os.Exit(3)
	}
	if tag, ok := m.params.Lookup("tag"); ok {
		m.log.Debug("translate", "tag", tag, "items", in.Len())
	}
	out, err := m.translate(in)
	if err != nil {
		return nil, err
	}
	if z := m.preset.Output.Size; z.Rule == sdk.SizeScale {
		out = resample(out, z.Num, z.Den)
	}
	n := in.Len()
	v := normalized(in.Tensor)
	per := len(v) / max(1, n)
	mean := make([]float64, n)
	for i := range mean {
		sum := 0.0
		for _, x := range v[i*per : (i+1)*per] {
			sum += float64(x)
		}
		mean[i] = sum / float64(max(1, per))
	}
	out.Scores = map[string][]float64{"mean": mean}
	return out, nil
}

// translate applies op at the input's size.
func (m *testModel) translate(in *sdk.Batch) (*sdk.Tensor, error) {
	switch op := m.params.String("op"); op {
	case "scale":
		g := m.params.Float("gain")
		tint := parseColor(m.params.String("tint"))
		if g == 1 && tint == [3]float32{1, 1, 1} {
			// Exact identity, so hosts can check a round trip byte for byte.
			return &sdk.Tensor{Shape: in.Shape, DType: in.DType, Data: append([]byte(nil), in.Data...)}, nil
		}
		c := in.Shape[1]
		hw := in.NumElements() / max(1, in.Len()*c)
		v := normalized(in.Tensor)
		for k := range v {
			v[k] = clamp01(v[k] * float32(g) * tint[(k/hw)%c%3])
		}
		return denormalized(v, m.preset.Output, in.Shape...), nil
	case "invert":
		return mapValues(in.Tensor, m.preset.Output, func(x float32) float32 { return 1 - x }), nil
	case "edges":
		return sobel(in.Tensor, m.preset.Output), nil
	case "standardize":
		st := m.stats
		c := in.Shape[1]
		hw := in.NumElements() / max(1, in.Len()*c)
		v := normalized(in.Tensor)
		for k := range v {
			ch := (k / hw) % c % len(st.Mean)
			sd := st.Std[ch]
			if sd == 0 {
				sd = 1
			}
			v[k] = clamp01(float32((float64(v[k])-st.Mean[ch])/sd*0.25 + 0.5))
		}
		return denormalized(v, m.preset.Output, in.Shape...), nil
	default:
		return nil, fmt.Errorf("unknown op %q", op)
	}
}

func (m *testModel) Denoise(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	if err := fault(ctx, m.log, in.Seeds); err != nil {
		return nil, err
	}
	s := float32(m.params.Float("strength"))
	n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2], in.Shape[3]
	v := normalized(in.Tensor)
	out := make([]float32, len(v))
	for p := 0; p < n*c; p++ {
		img, dst := v[p*h*w:(p+1)*h*w], out[p*h*w:(p+1)*h*w]
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				sum, cnt := float32(0), float32(0)
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						yy, xx := y+dy, x+dx
						if yy >= 0 && yy < h && xx >= 0 && xx < w {
							sum += img[yy*w+xx]
							cnt++
						}
					}
				}
				dst[y*w+x] = (1-s)*img[y*w+x] + s*sum/cnt
			}
		}
	}
	return denormalized(out, m.preset.Output, in.Shape...), nil
}

// parseColor reads "#rgb" or "#rrggbb" (checked by the SDK against the
// declared format) as components in [0,1].
func parseColor(s string) [3]float32 {
	hex := strings.TrimPrefix(s, "#")
	if len(hex) == 3 {
		hex = string([]byte{hex[0], hex[0], hex[1], hex[1], hex[2], hex[2]})
	}
	var c [3]float32
	for i := range c {
		v, _ := strconv.ParseUint(hex[2*i:2*i+2], 16, 8)
		c[i] = float32(v) / 255
	}
	return c
}

// resample scales the height and width of an NCHW batch by num/den
// (rounded down), nearest neighbour.
func resample(in *sdk.Tensor, num, den int) *sdk.Tensor {
	n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2], in.Shape[3]
	oh, ow := h*num/den, w*num/den
	es := in.DType.Size()
	out := sdk.NewTensor(in.DType, n, c, oh, ow)
	for p := 0; p < n*c; p++ {
		src, dst := in.Data[p*h*w*es:(p+1)*h*w*es], out.Data[p*oh*ow*es:(p+1)*oh*ow*es]
		for y := 0; y < oh; y++ {
			sy := min(y*den/num, h-1)
			for x := 0; x < ow; x++ {
				sx := min(x*den/num, w-1)
				copy(dst[(y*ow+x)*es:(y*ow+x+1)*es], src[(sy*w+sx)*es:(sy*w+sx+1)*es])
			}
		}
	}
	return out
}

// sobel computes the gradient magnitude of every channel.
func sobel(in *sdk.Tensor, spec *sdk.ImageSpec) *sdk.Tensor {
	n, c, h, w := in.Shape[0], in.Shape[1], in.Shape[2], in.Shape[3]
	v := normalized(in)
	out := make([]float32, len(v))
	at := func(img []float32, y, x int) float32 {
		y = min(max(y, 0), h-1)
		x = min(max(x, 0), w-1)
		return img[y*w+x]
	}
	for p := 0; p < n*c; p++ {
		img, dst := v[p*h*w:(p+1)*h*w], out[p*h*w:(p+1)*h*w]
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				gx := at(img, y-1, x+1) + 2*at(img, y, x+1) + at(img, y+1, x+1) - at(img, y-1, x-1) - 2*at(img, y, x-1) - at(img, y+1, x-1)
				gy := at(img, y+1, x-1) + 2*at(img, y+1, x) + at(img, y+1, x+1) - at(img, y-1, x-1) - 2*at(img, y-1, x) - at(img, y-1, x+1)
				dst[y*w+x] = clamp01(float32(math.Sqrt(float64(gx*gx+gy*gy))) / 4)
			}
		}
	}
	return denormalized(out, spec, in.Shape...)
}

func mapValues(in *sdk.Tensor, spec *sdk.ImageSpec, f func(float32) float32) *sdk.Tensor {
	v := normalized(in)
	for i, x := range v {
		v[i] = clamp01(f(x))
	}
	return denormalized(v, spec, in.Shape...)
}

// normalized decodes pixels to [0,1]: uint8 is divided by 255, float32 is
// taken as is.
func normalized(t *sdk.Tensor) []float32 {
	if t.DType == sdk.Uint8 {
		out := make([]float32, len(t.Data))
		for i, b := range t.Data {
			out[i] = float32(b) / 255
		}
		return out
	}
	return t.Float32s()
}

// denormalized encodes [0,1] values in the spec's dtype.
func denormalized(v []float32, spec *sdk.ImageSpec, shape ...int) *sdk.Tensor {
	if spec.DType == sdk.Uint8 {
		b := make([]byte, len(v))
		for i, x := range v {
			b[i] = uint8(clamp01(x)*255 + 0.5)
		}
		return sdk.FromUint8(b, shape...)
	}
	t := sdk.NewTensor(sdk.Float32, shape...)
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(x))
	}
	return t
}

func clamp01(x float32) float32 {
	if x < 0 || x != x {
		return 0
	}
	if x > 1 {
		return 1
	}
	return x
}
