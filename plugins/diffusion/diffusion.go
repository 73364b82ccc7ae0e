// Package diffusion is the built-in plugin "diffusion": denoising
// diffusion models (DDPM, Ho et al. 2020) with the cosine schedule, a
// class-conditional U-Net trained with label dropout for classifier-free
// guidance (Ho and Salimans 2022), and three samplers: DDPM ancestral,
// DDIM (Song et al. 2021) and DPM-Solver++(2M) (Lu et al. 2022). Every
// item's noise comes from its own seed, so a sample does not depend on
// the batch it was made in.
package diffusion

import (
	"context"
	"embed"
	"fmt"
	"sync"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "diffusion"
	Version = "0.1.0"
)

// weightsFormat marks the weights this plugin writes.
const weightsFormat = "genpipe.diffusion/1"

//go:embed weights
var shipped embed.FS

// Size is the side of the pixel presets' images.
const Size = 28

// preset is a shipped configuration.
type preset struct {
	name, doc string
	arch      Arch
	def       bool
	// space is the latent space whose vectors an MLP preset models.
	space string
}

// VAESpace is the latent space of the shipped VAE (vae/mnist-vae): the
// posterior means of its encoder, which mnist-latent models.
const VAESpace = "vae/mnist-vae-z32"

var presets = []preset{
	{name: "mnist-ddpm", def: true,
		arch: Arch{Kind: UNet, Ch: 1, Size: Size, Base: 32, TDim: 128, Groups: 8, Attn: true, Classes: 10},
		doc:  "class-conditional DDPM on MNIST digits (28x28 U-Net, cosine schedule, T = 1000): generate with labels 0-9 (or none), classifier-free guidance"},
	{name: "mnist-latent", space: VAESpace,
		arch: Arch{Kind: MLP, Ch: 32, Base: 256, Blocks: 4, TDim: 128, Classes: 10},
		doc:  "latent diffusion: a class-conditional DDPM over the 32-d latents of the vae plugin's mnist-vae; generate latents here, then decode them with a vae generate stage"},
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

// samplingParams are the reverse process's parameters, shared by every
// capability that runs one.
var samplingParams = []sdk.Param{
	{Name: "sampler", Type: sdk.String, Default: string(DDIM), Enum: []string{string(DDIM), string(DDPM), string(DPMSolver)},
		Doc: "reverse process: ddim (Song et al. 2021; eta 0 is deterministic), ddpm (ancestral; over all 1000 steps exactly Ho et al.'s) or dpm-solver (DPM-Solver++(2M), good at 10-20 steps); unconditional items (no label) come out best from ddpm at about 100 steps, whose fresh noise at each step corrects the weaker null-label model (mnist-ddpm, 1,000 samples: Frechet distance 77.6 against DDIM 50's 125.8)"},
	{Name: "steps", Type: sdk.Int, Default: 50, Min: sdk.Bound(1), Max: sdk.Bound(T),
		Doc: "network evaluations of the reverse process (the full one has 1000); more is slower and closer to the model's distribution"},
	{Name: "eta", Type: sdk.Float, Default: 0.0, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "ddim: scale of the noise added at each step (0 deterministic, 1 as DDPM)"},
	{Name: "guidance", Type: sdk.Float, Default: 1.4, Min: sdk.Bound(0), Max: sdk.Bound(20),
		Doc: "classifier-free guidance scale g, ε = ε_uncond + g·(ε_cond − ε_uncond): 1 is the conditional model alone, 0 ignores the label, above 1 follows it more closely at some cost in variety (mnist-ddpm, DDIM 50, 1,000 samples: g 1.25 keeps 98.6 % of labels at Frechet distance 30.0 to MNIST, 1.4 99.3 % at 36.8, 1.5 99.6 % at 42.2; the README has the table); items without a label are unconditional"},
	{Name: "temperature", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(2),
		Doc: "scale of the starting noise and of the noise added on the way (below 1: cleaner, less varied)"},
}

// GenerateParams are the generate capability's parameters.
var GenerateParams = append(append([]sdk.Param(nil), samplingParams...),
	sdk.Param{Name: "frames", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(T),
		Doc: "make each item an animation of the reverse process: this many frames from noise to the result (save it as a GIF); 0: the result only"},
)

// Plugin is the diffusion plugin. The zero value is ready to use.
type Plugin struct{}

// New returns the plugin, for sdk.Serve or for use in process.
func New() sdk.Plugin { return &Plugin{} }

var (
	_ sdk.Plugin    = (*Plugin)(nil)
	_ sdk.Trainer   = (*Plugin)(nil)
	_ sdk.Generator = (*model)(nil)
)

// Describe declares the capabilities and presets.
func (*Plugin) Describe() sdk.Description {
	d := sdk.Description{
		Name:      Name,
		Version:   Version,
		Doc:       "denoising diffusion: DDPM/DDIM/DPM-Solver sampling with classifier-free guidance",
		BatchSize: 64,
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapGenerate, Doc: "noise (one draw per item seed) and an optional label -> image (a latent preset: -> latent of its space, for that space's generate to decode), by the reverse process", Params: GenerateParams},
			{Name: sdk.CapDenoise, Doc: "noisy image -> clean image: the posterior mean at the noise level, or a sample from the reverse process from it", Params: DenoiseParams},
			{Name: sdk.CapTranslate, Doc: "image -> image: SDEdit (noise to a strength, then the reverse process, optionally toward a label), or inpainting of a box", Params: TranslateParams},
			{Name: sdk.CapTrain, Doc: "train a preset's architecture on images, or a latent preset's on latents of its space (train.input: an encode stage); labelled for the conditional presets", Params: TrainParams},
		},
	}
	for _, p := range presets {
		sp := sdk.Preset{Name: p.name, Doc: p.doc, Default: p.def, Classes: p.arch.Classes}
		if p.arch.Kind == MLP {
			// Its data are the latents of another plugin's space: the
			// host chains its generate with that space's decoder, and
			// trains it on that space's encoder's output.
			sp.LatentData = &sdk.LatentSpec{Space: p.space, Dim: p.arch.Ch}
			sp.Capabilities = []sdk.Capability{sdk.CapGenerate, sdk.CapTrain}
		}
		if p.arch.Kind == UNet {
			img := &sdk.ImageSpec{Channels: p.arch.Ch, Height: p.arch.Size, Width: p.arch.Size, DType: sdk.Float32, Min: 0, Max: 1}
			sp.Input, sp.Output = img, img
			sp.Capabilities = []sdk.Capability{sdk.CapGenerate, sdk.CapDenoise, sdk.CapTranslate, sdk.CapTrain}
		}
		sp.Weights = train.WeightsInfo(shipped, p.weightsFile())
		d.Presets = append(d.Presets, sp)
	}
	return d
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

// model is a loaded preset; calls are serialised (one gorgonia machine
// per batch size, not safe for concurrent runs).
type model struct {
	m      *Model
	preset *preset
	params sdk.Params
	mu     sync.Mutex
	s      *sampler
}

// sampling is the reverse process the stage's parameters ask for, from
// step from.
func (md *model) sampling(from int) Sampling {
	ps := md.params
	return Sampling{Sampler: Sampler(ps.String("sampler")), Steps: ps.Int("steps"), Eta: ps.Float("eta"),
		Guidance: ps.Float("guidance"), Temperature: ps.Float("temperature"), Clip: md.m.Arch.clip(), From: from}
}

// itemLabels returns the request's labels for n items (-1: none),
// checking their range.
func (md *model) itemLabels(labels []int, n int) ([]int, error) {
	out := make([]int, n)
	for i := range out {
		out[i] = -1
		if i < len(labels) && labels[i] >= 0 {
			if md.m.Arch.Classes == 0 {
				return nil, fmt.Errorf("item %d: label %d, but preset %s is unconditional", i, labels[i], md.preset.name)
			}
			if labels[i] >= md.m.Arch.Classes {
				return nil, fmt.Errorf("item %d: label %d out of range 0-%d", i, labels[i], md.m.Arch.Classes-1)
			}
			out[i] = labels[i]
		}
	}
	return out, nil
}

// Generate runs the reverse process from each item's own noise (drawn
// from its seed) to an image, toward the item's label when it has one.
func (md *model) Generate(ctx context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	a := md.m.Arch
	n, per := len(req.Seeds), a.per()
	if req.Latents != nil {
		return nil, fmt.Errorf("preset %s generates from its own noise: it takes no latents", md.preset.name)
	}
	labels, err := md.itemLabels(req.Labels, n)
	if err != nil {
		return nil, err
	}
	sp := md.sampling(T - 1)
	sp.Frames = md.params.Int("frames")
	x := make([]float32, n*per)
	rngs := make([]*nn.RNG, n)
	for i, seed := range req.Seeds {
		rngs[i] = nn.NewRNG(seed)
		rngs[i].Normal(x[i*per:(i+1)*per], sp.Temperature)
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	out, frames, err := md.s.Run(ctx, x, labels, rngs, sp)
	if err != nil {
		return nil, err
	}
	if a.Kind == MLP {
		if sp.Frames > 0 {
			return nil, fmt.Errorf("preset %s makes latents: frames need images (decode the latents first)", md.preset.name)
		}
		return md.latents(out, n), nil
	}
	if sp.Frames == 0 {
		return toImages(out, n, a), nil
	}
	// [N, frames, C, H, W]: item i's frames in order.
	all := make([]float32, 0, n*len(frames)*per)
	for i := 0; i < n; i++ {
		for _, f := range frames {
			all = append(all, f[i*per:(i+1)*per]...)
		}
	}
	t := toImages(all, n*len(frames), a)
	t.Shape = append([]int{n, len(frames)}, a.sampleShape()...)
	return t, nil
}

// clip is the bound on predicted clean values (see Sampling.Clip).
func (a Arch) clip() float64 {
	if a.Kind == UNet {
		return 1
	}
	return 5
}

// latents maps model units back to the latent space's.
func (md *model) latents(x []float32, n int) *sdk.Tensor {
	shift, scale := md.m.p("data.shift").Data()[0], md.m.p("data.scale").Data()[0]
	z := make([]float32, len(x))
	for i, v := range x {
		z[i] = v*scale + shift
	}
	t := sdk.FromFloat32(z, n, md.m.Arch.Ch)
	t.Space = md.preset.space
	return t
}

// Close frees the compiled graphs.
func (md *model) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	md.s.close()
	return nil
}
