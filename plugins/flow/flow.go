package flow

import (
	"context"
	"embed"
	"fmt"
	"math"
	"sync"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
	G "gorgonia.org/gorgonia"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "flow"
	Version = "0.1.0"
)

// weightsFormat marks the weights this plugin writes.
const weightsFormat = "genpipe.flow/1"

//go:embed weights
var shipped embed.FS

// preset is a shipped configuration.
type preset struct {
	name, doc string
	arch      Arch
	def       bool
}

var presets = []preset{
	{name: "mnist-glow", def: true, arch: Arch{Ch: 1, Size: 28, Levels: 3, Steps: 8, Hidden: 64},
		doc: "Glow-style flow on MNIST digits: exact encoding to 784 latents and back, exact log-likelihood (bits per dimension)"},
}

func findPreset(name string) *preset {
	for i := range presets {
		if presets[i].name == name || (name == "" && presets[i].def) {
			return &presets[i]
		}
	}
	return nil
}

func (p *preset) weightsFile() string { return "weights/" + p.name + ".safetensors" }
func (p *preset) space() string       { return "flow/" + p.name }

// GenerateParams are the generate capability's parameters.
var GenerateParams = []sdk.Param{
	{Name: "temperature", Type: sdk.Float, Default: 0.7, Min: sdk.Bound(0), Max: sdk.Bound(2),
		Doc: "scale of the prior's standard deviation when sampling (1: the model's distribution; below 1 cleaner, less varied digits, as Glow samples); given latents are decoded as they are"},
	{Name: "interpolate", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(512),
		Doc: "when decoding latents: make each item an animation of this many frames from its latent to the next item's in the same call (the last item goes back to the first); the first frame is the item's own latent decoded exactly, so between two encoded images it starts and ends on their very pixels; set the stage's batch: to the number of items to interpolate across all of them; 0: decode each latent to one image"},
	{Name: "path", Type: sdk.String, Default: "slerp", Enum: []string{"slerp", "lerp"},
		Doc: "interpolation path: slerp (spherical: keeps the norm the prior expects of a 784-d Gaussian latent, so the frames stay digit-like) or lerp (straight line: its middle has a smaller norm, a blurrier, more probable image)"},
}

// EncodeParams are the encode capability's parameters.
var EncodeParams = []sdk.Param{}

// TranslateParams are the translate capability's parameters.
var TranslateParams = []sdk.Param{}

// Scores are what encode and translate attach to every item: the
// likelihood of its 8-bit pixels, estimated with uniform dequantisation
// noise drawn from the item's seed (so a score depends on the item and its
// seed, never on its batch). High bits/dim means the model finds the image
// unlike its training data; Nalisnick et al. (2019) show where that fails
// as an out-of-distribution test.
var Scores = []sdk.ScoreSpec{
	{Name: "bits_per_dim", Doc: "negative log-likelihood in bits per pixel value, dequantised (lower: more like the training data)"},
	{Name: "log_likelihood", Doc: "log-likelihood of the 8-bit image in nats, dequantised: log p(y) - D ln 256 = -bits_per_dim * D ln 2"},
}

// Plugin is the flow plugin. The zero value is ready to use.
type Plugin struct{}

// New returns the plugin, for sdk.Serve or for use in process.
func New() sdk.Plugin { return &Plugin{} }

var (
	_ sdk.Plugin     = (*Plugin)(nil)
	_ sdk.Trainer    = (*Plugin)(nil)
	_ sdk.Generator  = (*model)(nil)
	_ sdk.Encoder    = (*model)(nil)
	_ sdk.Translator = (*model)(nil)
)

// Describe declares the capabilities and presets.
func (*Plugin) Describe() sdk.Description {
	desc := sdk.Description{
		Name: Name, Version: Version,
		Doc:       "normalizing flows: exact, invertible encoding and exact likelihood",
		BatchSize: 64,
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapEncode, Doc: "image -> its exact latent (the centre of each pixel's 8-bit bin, so decoding gives the pixels back)", Params: EncodeParams, Scores: Scores},
			{Name: sdk.CapGenerate, Doc: "the prior at a temperature (one draw per item seed) or given latents -> image (the exact inverse)", Params: GenerateParams},
			{Name: sdk.CapTranslate, Doc: "image -> latent -> image, the exact round trip (identical pixels), to score images by their likelihood in a pipeline that keeps them", Params: TranslateParams, Scores: Scores},
			{Name: sdk.CapTrain, Doc: "maximise the likelihood of dequantised images (loss: bits per dimension)", Params: TrainParams},
		},
	}
	for _, p := range presets {
		img := &sdk.ImageSpec{Channels: p.arch.Ch, Height: p.arch.Size, Width: p.arch.Size, DType: sdk.Uint8, Min: 0, Max: 255}
		sp := sdk.Preset{Name: p.name, Doc: p.doc, Default: p.def,
			Capabilities: []sdk.Capability{sdk.CapEncode, sdk.CapGenerate, sdk.CapTranslate, sdk.CapTrain},
			Input:        img, Output: img, Latent: &sdk.LatentSpec{Space: p.space(), Dim: p.arch.Dims()},
			ExactInput: true}
		sp.Weights = train.WeightsInfo(shipped, p.weightsFile())
		desc.Presets = append(desc.Presets, sp)
	}
	return desc
}

// Load builds the preset's model and loads its weights (embedded, or the
// file req.Weights names), refusing weights of another architecture.
func (*Plugin) Load(ctx context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	p := findPreset(req.Preset)
	if p == nil {
		return nil, fmt.Errorf("unknown preset %q", req.Preset)
	}
	m, err := NewModel(p.arch, nn.NewRNG(0))
	if err != nil {
		return nil, err
	}
	if err := train.LoadWeights(m.Params, req.Weights, shipped, p.weightsFile(), p.name, train.ArchCheck(p.arch)); err != nil {
		return nil, err
	}
	return &model{m: m, preset: p, params: req.Params, s: newSampler(m)}, nil
}

// model is a loaded preset; calls are serialised.
type model struct {
	m      *Model
	preset *preset
	params sdk.Params
	mu     sync.Mutex
	s      *sampler
}

// sampler holds the compiled inverse graphs by batch size and mode.
type sampler struct {
	m    *Model
	invs map[[2]int]*compiledInverse
}

type compiledInverse struct {
	inv  *inverse
	prog *layers.Program
}

func newSampler(m *Model) *sampler { return &sampler{m: m, invs: map[[2]int]*compiledInverse{}} }

func (s *sampler) get(n int, sample bool) (*compiledInverse, error) {
	key := [2]int{n, 0}
	if sample {
		key[1] = 1
	}
	if c, ok := s.invs[key]; ok {
		return c, nil
	}
	if len(s.invs) >= 6 {
		s.close()
	}
	b := layers.NewBuilder()
	inv := s.m.inverse(b, n, sample)
	if b.Err() != nil {
		return nil, b.Err()
	}
	prog, err := layers.Compile(b, nil, nil, inv.y)
	if err != nil {
		return nil, err
	}
	c := &compiledInverse{inv: inv, prog: prog}
	s.invs[key] = c
	return c, nil
}

func (s *sampler) close() {
	for k, c := range s.invs {
		c.prog.Close()
		delete(s.invs, k)
	}
}

// run fills the inverse graph's latent inputs from z (n items of Dims
// values, levels in order) and returns the images as uint8.
func (s *sampler) run(z []float32, n int, sample bool, temp float64) (*sdk.Tensor, error) {
	c, err := s.get(n, sample)
	if err != nil {
		return nil, err
	}
	a := s.m.Arch
	per := a.Dims()
	off := 0
	for i, sh := range a.latentShapes() {
		k := sh[0] * sh[1] * sh[2]
		d := layers.Data(c.inv.zs[i])
		for item := 0; item < n; item++ {
			copy(d[item*k:(item+1)*k], z[item*per+off:item*per+off+k])
		}
		off += k
	}
	if sample {
		layers.Data(c.inv.temp)[0] = float32(temp)
	}
	s.m.fillInverses(c.inv)
	if err := c.prog.Run(); err != nil {
		return nil, err
	}
	y := append([]float32(nil), c.prog.Output(0)...)
	a.flowOutput(y)
	px := make([]uint8, len(y))
	for i, v := range y {
		// y = (x + ½)/256 − ½ at the bin's centre: x = 256·(y + ½) − ½.
		q := 256*(float64(v)+0.5) - 0.5
		px[i] = uint8(max(0, min(255, q+0.5)))
	}
	return sdk.FromUint8(px, n, a.Ch, a.Size, a.Size), nil
}

// sample draws one image per seed from the prior at a temperature.
func (s *sampler) sample(seeds []uint64, temp float64) (*sdk.Tensor, error) {
	per := s.m.Arch.Dims()
	eps := make([]float32, len(seeds)*per)
	for i, seed := range seeds {
		nn.NewRNG(seed).Normal(eps[i*per:(i+1)*per], 1)
	}
	return s.run(eps, len(seeds), true, temp)
}

// Generate samples the prior (one draw per seed) or decodes given latents.
func (md *model) Generate(ctx context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if req.Latents != nil {
		l := req.Latents
		if l.Space != "" && l.Space != md.preset.space() {
			return nil, fmt.Errorf("latents are from space %q; preset %q takes %q", l.Space, md.preset.name, md.preset.space())
		}
		if len(l.Shape) != 2 || l.Shape[1] != md.m.Arch.Dims() || l.DType != sdk.Float32 {
			return nil, fmt.Errorf("latents: expected float32 [N %d], got %s %v", md.m.Arch.Dims(), l.DType, l.Shape)
		}
		if frames := md.params.Int("interpolate"); frames > 0 && l.Shape[0] > 0 {
			return md.interpolate(ctx, l.Float32s(), l.Shape[0], frames, md.params.String("path") == "slerp")
		}
		return md.s.run(l.Float32s(), l.Shape[0], false, 1)
	}
	return md.s.sample(req.Seeds, md.params.Float("temperature"))
}

// Encode maps images to their exact latents: each pixel at the centre of
// its 8-bit bin, through the flow; decoding the latent gives the pixels
// back.
func (md *model) Encode(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	z, scores, err := md.encode(in)
	if err != nil {
		return nil, err
	}
	t := sdk.FromFloat32(z, in.Len(), md.m.Arch.Dims())
	t.Space = md.preset.space()
	t.Scores = scores
	return t, nil
}

// Translate encodes the images exactly and decodes them back: the same
// pixels, with the scores attached.
func (md *model) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	z, scores, err := md.encode(in)
	if err != nil {
		return nil, err
	}
	out, err := md.s.run(z, in.Len(), false, 1)
	if err != nil {
		return nil, err
	}
	out.Scores = scores
	return out, nil
}

// encode returns the exact latents of a batch (pixels at their bin
// centres) and its scores (a second pass over the pixels dequantised with
// noise from each item's seed). Callers hold md.mu.
func (md *model) encode(in *sdk.Batch) ([]float32, map[string][]float64, error) {
	n, d := in.Len(), md.m.Arch.Dims()
	y := make([]float32, n*d)
	if err := md.m.dequantize(in, y, nil); err != nil {
		return nil, nil, err
	}
	z, err := md.m.encode(y, n)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i < n; i++ {
		one := &sdk.Batch{Tensor: in.Tensor.Slice(i, i+1)}
		seed := uint64(i)
		if i < len(in.Seeds) {
			seed = in.Seeds[i]
		}
		if err := md.m.dequantize(one, y[i*d:(i+1)*d], nn.NewRNG(seed)); err != nil {
			return nil, nil, err
		}
	}
	logp, err := md.m.logLikelihood(y, n)
	if err != nil {
		return nil, nil, err
	}
	bpd, ll := make([]float64, n), make([]float64, n)
	for i, v := range logp {
		bpd[i] = BitsPerDim(v, d)
		ll[i] = v - float64(d)*math.Log(256)
	}
	return z, map[string][]float64{"bits_per_dim": bpd, "log_likelihood": ll}, nil
}

// fwdProg is a compiled forward graph for n items: outputs log p(y)
// per item, then the latents of each level.
type fwdProg struct {
	y    *G.Node
	prog *layers.Program
}

// forwardProg returns the compiled forward graph for n items, kept per
// batch size (a few at most).
func (m *Model) forwardProg(n int) (*fwdProg, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.fwd[n]; ok {
		return f, nil
	}
	if m.fwd == nil || len(m.fwd) >= 4 {
		m.closeForward()
		m.fwd = map[int]*fwdProg{}
	}
	a := m.Arch
	b := layers.NewBuilder()
	x := b.Input("y", n, a.Ch, a.Size, a.Size)
	f := m.forward(b, x)
	if b.Err() != nil {
		return nil, b.Err()
	}
	prog, err := layers.Compile(b, nil, nil, append([]*G.Node{f.logp}, f.zs...)...)
	if err != nil {
		return nil, err
	}
	fp := &fwdProg{y: x, prog: prog}
	m.fwd[n] = fp
	return fp, nil
}

func (m *Model) closeForward() {
	for k, f := range m.fwd {
		f.prog.Close()
		delete(m.fwd, k)
	}
}

// run computes log p(y) per item (y the dequantised images, the logit
// transform's log-det included) and the latents flattened per item,
// levels in order. Callers serialise runs of one model.
func (m *Model) run(y []float32, n int) ([]float64, []float32, error) {
	fp, err := m.forwardProg(n)
	if err != nil {
		return nil, nil, err
	}
	u, ld := m.Arch.flowInput(y, n)
	copy(layers.Data(fp.y), u)
	if err := fp.prog.Run(); err != nil {
		return nil, nil, err
	}
	logp := make([]float64, n)
	for i, v := range fp.prog.Output(0) {
		logp[i] = float64(v)
		if ld != nil {
			logp[i] += ld[i]
		}
	}
	a := m.Arch
	per := a.Dims()
	z := make([]float32, n*per)
	off := 0
	for i, s := range a.latentShapes() {
		k := s[0] * s[1] * s[2]
		v := fp.prog.Output(1 + i)
		for item := 0; item < n; item++ {
			copy(z[item*per+off:item*per+off+k], v[item*k:(item+1)*k])
		}
		off += k
	}
	return logp, z, nil
}

// encode runs the flow on y and returns the latents.
func (m *Model) encode(y []float32, n int) ([]float32, error) {
	_, z, err := m.run(y, n)
	return z, err
}

// Close frees the compiled graphs.
func (md *model) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	md.s.close()
	md.m.mu.Lock()
	md.m.closeForward()
	md.m.mu.Unlock()
	return nil
}

// interpolate decodes, for each latent, the path to the next one (cyclic)
// as frames: the result is [N, frames, C, H, W]. The path is decoded in
// chunks of the preferred batch, so a long animation does not build one
// huge program.
func (md *model) interpolate(ctx context.Context, z []float32, n, frames int, slerp bool) (*sdk.Tensor, error) {
	a := md.m.Arch
	d := a.Dims()
	path := nn.InterpolationPath(z, n, d, frames, slerp)
	total := n * frames
	px := make([]uint8, 0, total*d)
	const chunk = 64 // the preferred batch
	for lo := 0; lo < total; lo += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(total, lo+chunk)
		t, err := md.s.run(path[lo*d:hi*d], hi-lo, false, 1)
		if err != nil {
			return nil, err
		}
		px = append(px, t.Data...)
	}
	out := sdk.FromUint8(px, total, a.Ch, a.Size, a.Size)
	out.Shape = []int{n, frames, a.Ch, a.Size, a.Size}
	return out, nil
}
