// Package vae is the built-in plugin "vae": the autoencoder family. One
// convolutional architecture (see [Arch]) in three variants: a plain
// autoencoder, a denoising autoencoder trained on corrupted inputs, and a
// variational autoencoder trained on the negative ELBO. It encodes images to
// latents, generates images from the prior or from given latents, denoises,
// and trains.
package vae

import (
	"context"
	"embed"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "vae"
	Version = "0.1.0"
)

//go:embed weights
var shipped embed.FS

// preset is a shipped configuration: an architecture, its contract and the
// file its weights are embedded as.
type preset struct {
	name, doc string
	arch      Arch
	caps      []sdk.Capability
	def       bool
}

var presets = []preset{
	{name: "mnist-vae", def: true, arch: Arch{Variant: VAE, Channels: 1, Size: 28, Width: 32, Latent: 32},
		doc:  "variational autoencoder on MNIST digits, 32-d latent; samples from the prior, encodes and decodes",
		caps: []sdk.Capability{sdk.CapEncode, sdk.CapGenerate, sdk.CapTrain}},
	{name: "mnist-ae", arch: Arch{Variant: AE, Channels: 1, Size: 28, Width: 32, Latent: 16},
		doc:  "plain autoencoder on MNIST digits, 16-d code; generate samples a Gaussian fitted to the training codes",
		caps: []sdk.Capability{sdk.CapEncode, sdk.CapGenerate, sdk.CapTrain}},
	{name: "mnist-dae", arch: Arch{Variant: DAE, Channels: 1, Size: 28, Width: 32, Latent: 32},
		doc:  "denoising autoencoder on MNIST digits, trained on Gaussian and salt-and-pepper noise; denoises 28x28 digits",
		caps: []sdk.Capability{sdk.CapDenoise, sdk.CapEncode, sdk.CapGenerate, sdk.CapTrain}},
}

func findPreset(name string) *preset {
	for i := range presets {
		if presets[i].name == name || (name == "" && presets[i].def) {
			return &presets[i]
		}
	}
	return nil
}

// Space is the latent-space id of a preset: a latent from one preset's
// encoder is only meaningful to the same preset's decoder.
func (p *preset) space() string { return "vae/" + p.name + "-z" + strconv.Itoa(p.arch.Latent) }

func (p *preset) weightsFile() string { return "weights/" + p.name + ".safetensors" }

// EncodeParams, GenerateParams, DenoiseParams and TrainParams are the
// parameters of each capability, declared once for validation, docs and
// the JSON Schema.
var (
	EncodeParams = []sdk.Param{
		{Name: "sample", Type: sdk.Bool, Default: false,
			Doc: "vae: output a sample z ~ q(z|x) drawn with the item's seed instead of the mean"},
	}
	GenerateParams = []sdk.Param{
		{Name: "temperature", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(10),
			Doc: "scale of the prior's standard deviation when sampling (0: the prior's mean); ignored when latents are decoded"},
		{Name: "interpolate", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(512),
			Doc: "when decoding latents: make each item an animation of this many frames from its latent to the next item's in the same call (the last item goes back to the first); set the stage's batch: to the number of items to interpolate across all of them; 0: decode each latent to one image"},
		{Name: "path", Type: sdk.String, Default: "slerp", Enum: []string{"slerp", "lerp"},
			Doc: "interpolation path: slerp (spherical, stays where the prior has its mass) or lerp (straight line)"},
	}
	DenoiseParams = []sdk.Param{}
)

// Plugin is the vae plugin. The zero value is ready to use.
type Plugin struct{}

// New returns the plugin, for sdk.Serve or for use in process.
func New() sdk.Plugin { return &Plugin{} }

var (
	_ sdk.Plugin    = (*Plugin)(nil)
	_ sdk.Trainer   = (*Plugin)(nil)
	_ sdk.Encoder   = (*model)(nil)
	_ sdk.Generator = (*model)(nil)
	_ sdk.Denoiser  = (*model)(nil)
)

// Describe declares the capabilities and presets.
func (*Plugin) Describe() sdk.Description {
	// Float pixels in [0, 1], what the networks compute in: the host keeps
	// them float between chained float models, never rounding to 8 bits.
	img := &sdk.ImageSpec{Channels: 1, Height: 28, Width: 28, DType: sdk.Float32, Min: 0, Max: 1}
	d := sdk.Description{
		Name:      Name,
		Version:   Version,
		Doc:       "autoencoder family: plain, denoising and variational autoencoders with a convolutional encoder and decoder",
		BatchSize: 64,
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapEncode, Doc: "image -> latent (the encoder's mean, or a sample for a VAE)", Params: EncodeParams},
			{Name: sdk.CapGenerate, Doc: "latent -> image (decoding), or samples from the prior when no latents are given", Params: GenerateParams},
			{Name: sdk.CapDenoise, Doc: "noisy image -> clean image (denoising autoencoder)", Params: DenoiseParams},
			{Name: sdk.CapTrain, Doc: "train a preset's architecture from scratch or from a checkpoint", Params: TrainParams},
		},
	}
	for _, p := range presets {
		sp := sdk.Preset{Name: p.name, Doc: p.doc, Default: p.def, Capabilities: p.caps,
			Input: img, Output: img, Latent: &sdk.LatentSpec{Space: p.space(), Dim: p.arch.Latent}}
		sp.Weights = train.WeightsInfo(shipped, p.weightsFile())
		d.Presets = append(d.Presets, sp)
	}
	return d
}

// Load builds the preset's model and loads its weights: the embedded ones,
// or the file req.Weights names. Weights of another architecture, a
// truncated file or a missing tensor are refused here, before any item.
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
	return &model{m: m, preset: p, params: req.Params, graphs: map[graphKey]*inferGraph{}}, nil
}

// graphKey identifies a compiled inference graph.
type graphKey struct {
	kind string
	n    int
}

// model is a loaded preset. Compiled graphs are cached by batch size; calls
// are serialised because a gorgonia machine is not safe for concurrent
// runs (the kernels use both cores within a call).
type model struct {
	m      *Model
	preset *preset
	params sdk.Params

	mu     sync.Mutex
	graphs map[graphKey]*inferGraph
}

func (md *model) graph(kind string, n int) (*inferGraph, error) {
	k := graphKey{kind, n}
	if g, ok := md.graphs[k]; ok {
		return g, nil
	}
	if len(md.graphs) >= 8 {
		for k, g := range md.graphs {
			g.prog.Close()
			delete(md.graphs, k)
		}
	}
	var g *inferGraph
	var err error
	switch kind {
	case "encode":
		g, err = md.m.buildEncode(n)
	default:
		g, err = md.m.buildDecode(n)
	}
	if err != nil {
		return nil, err
	}
	md.graphs[k] = g
	return g, nil
}

// pixels converts an NCHW batch to float32 in [0,1]: float32 pixels (the
// declared contract) as they are, uint8 ones divided by 255.
func (md *model) pixels(in *sdk.Batch) ([]float32, int, error) {
	a := md.m.Arch
	if len(in.Shape) != 4 || in.Shape[1] != a.Channels || in.Shape[2] != a.Size || in.Shape[3] != a.Size || in.DType != sdk.Float32 && in.DType != sdk.Uint8 {
		return nil, 0, fmt.Errorf("input: expected float32 or uint8 [N %d %d %d], got %s %v", a.Channels, a.Size, a.Size, in.DType, in.Shape)
	}
	out := make([]float32, in.NumElements())
	toPixels(in.Tensor, out)
	return out, in.Shape[0], nil
}

// toPixels writes the [0,1] pixels of t (float32, or uint8 divided by 255)
// to dst.
func toPixels(t *sdk.Tensor, dst []float32) {
	if t.DType == sdk.Float32 {
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return
	}
	for i, v := range t.Data {
		dst[i] = float32(v) / 255
	}
}

// toImage makes the float32 image tensor of the decoder's output, clamped
// to the declared [0, 1] (NaN: 0).
func toImage(px []float32, n int, a Arch) *sdk.Tensor {
	out := make([]float32, len(px))
	for i, v := range px {
		out[i] = clamp01(v)
	}
	return sdk.FromFloat32(out, n, a.Channels, a.Size, a.Size)
}

func clamp01(v float32) float32 {
	if v < 0 || v != v {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// Encode maps images to latents: the posterior mean, or with sample: true a
// draw from q(z|x) using each item's seed.
func (md *model) Encode(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	g, n, err := md.encode(in)
	if err != nil {
		return nil, err
	}
	d := md.m.Arch.Latent
	z := append([]float32(nil), g.prog.Output(0)...)
	if md.params.Bool("sample") && md.m.Arch.Variant == VAE {
		logvar := g.prog.Output(1)
		eps := make([]float32, d)
		for i := 0; i < n; i++ {
			nn.NewRNG(seedAt(in.Seeds, i)).Normal(eps, 1)
			for j := 0; j < d; j++ {
				z[i*d+j] += float32(expHalf(logvar[i*d+j])) * eps[j]
			}
		}
	}
	t := sdk.FromFloat32(z, n, d)
	t.Space = md.preset.space()
	return t, nil
}

// Generate decodes the given latents, or samples n latents from the prior
// (one per seed) and decodes them.
func (md *model) Generate(ctx context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	a := md.m.Arch
	var z []float32
	var n int
	if req.Latents != nil {
		if req.Latents.Space != "" && req.Latents.Space != md.preset.space() {
			return nil, fmt.Errorf("latents are from space %q; preset %q decodes %q", req.Latents.Space, md.preset.name, md.preset.space())
		}
		if len(req.Latents.Shape) != 2 || req.Latents.Shape[1] != a.Latent || req.Latents.DType != sdk.Float32 {
			return nil, fmt.Errorf("latents: expected float32 [N %d], got %s %v", a.Latent, req.Latents.DType, req.Latents.Shape)
		}
		z, n = req.Latents.Float32s(), req.Latents.Shape[0]
		if frames := md.params.Int("interpolate"); frames > 0 && n > 0 {
			md.mu.Lock()
			defer md.mu.Unlock()
			return md.interpolate(z, n, frames, md.params.String("path") == "slerp")
		}
	} else {
		n = len(req.Seeds)
		z = md.prior(req.Seeds, md.params.Float("temperature"))
	}
	if n == 0 {
		return sdk.NewTensor(sdk.Float32, 0, a.Channels, a.Size, a.Size), nil
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	return md.decode(z, n)
}

func (md *model) decode(z []float32, n int) (*sdk.Tensor, error) {
	g, err := md.graph("decode", n)
	if err != nil {
		return nil, err
	}
	copy(layers.Data(g.in), z)
	if err := g.prog.Run(); err != nil {
		return nil, err
	}
	return toImage(g.prog.Output(0), n, md.m.Arch), nil
}

// interpolate decodes, for each latent, the path to the next one (cyclic)
// as frames: the result is [N, frames, C, H, W].
func (md *model) interpolate(z []float32, n, frames int, slerp bool) (*sdk.Tensor, error) {
	a := md.m.Arch
	d := a.Latent
	path := nn.InterpolationPath(z, n, d, frames, slerp)
	img, err := md.decode(path, n*frames)
	if err != nil {
		return nil, err
	}
	img.Shape = []int{n, frames, a.Channels, a.Size, a.Size}
	return img, nil
}

// prior draws one latent per seed: N(0, T²I) for a VAE; for the
// autoencoders, which have no prior, the diagonal Gaussian fitted to the
// training codes (the buffers latent_mean and latent_std).
func (md *model) prior(seeds []uint64, temp float64) []float32 {
	d := md.m.Arch.Latent
	z := make([]float32, len(seeds)*d)
	mean, std := md.m.latentStats()
	for i, s := range seeds {
		row := z[i*d : (i+1)*d]
		nn.NewRNG(s).Normal(row, temp)
		if mean != nil {
			for j := range row {
				row[j] = mean[j] + std[j]*row[j]
			}
		}
	}
	return z
}

// Denoise runs a noisy image through the autoencoder: its reconstruction
// is the denoised image.
func (md *model) Denoise(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	g, n, err := md.encode(in)
	if err != nil {
		return nil, err
	}
	return md.decode(g.prog.Output(0), n)
}

// encode runs the encoder on a batch of images; the caller holds md.mu and
// reads the mean (output 0) and, for a VAE, the log-variance (output 1).
func (md *model) encode(in *sdk.Batch) (*inferGraph, int, error) {
	x, n, err := md.pixels(in)
	if err != nil {
		return nil, 0, err
	}
	g, err := md.graph("encode", n)
	if err != nil {
		return nil, 0, err
	}
	copy(layers.Data(g.in), x)
	if err := g.prog.Run(); err != nil {
		return nil, 0, err
	}
	return g, n, nil
}

// Close frees the compiled graphs.
func (md *model) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	for k, g := range md.graphs {
		g.prog.Close()
		delete(md.graphs, k)
	}
	return nil
}

func seedAt(seeds []uint64, i int) uint64 {
	if i < len(seeds) {
		return seeds[i]
	}
	return uint64(i)
}
