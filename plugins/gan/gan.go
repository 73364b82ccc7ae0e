// Package gan is the built-in plugin "gan": generative adversarial
// networks on one convolutional architecture (see [Arch]) in four
// variants: DCGAN, a conditional DCGAN, WGAN (weight clipping) and WGAN-GP
// (gradient penalty). It generates images from noise (and labels), decodes
// given noise vectors (latent walks), and trains.
package gan

import (
	"context"
	"embed"
	"fmt"
	"strconv"
	"sync"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "gan"
	Version = "0.1.0"
)

//go:embed weights
var shipped embed.FS

// preset is a shipped configuration.
type preset struct {
	name, doc string
	arch      Arch
	def       bool
}

var presets = []preset{
	{name: "mnist-dcgan", def: true, arch: Arch{Variant: DCGAN, Z: 64, Width: 32},
		doc: "DCGAN on MNIST digits: 64-d noise in, 28x28 digit out"},
	{name: "mnist-cgan", arch: Arch{Variant: CGAN, Z: 64, Width: 32, Classes: 10},
		doc: "conditional DCGAN on MNIST: generate with labels 0-9 gives those digits"},
	{name: "mnist-wgan", arch: Arch{Variant: WGAN, Z: 64, Width: 32},
		doc: "WGAN with weight clipping and RMSProp on MNIST digits"},
	{name: "mnist-wgan-gp", arch: Arch{Variant: WGANGP, Z: 64, Width: 32},
		doc: "WGAN-GP (gradient penalty, no BatchNorm in the critic) on MNIST digits"},
}

func findPreset(name string) *preset {
	for i := range presets {
		if presets[i].name == name || (name == "" && presets[i].def) {
			return &presets[i]
		}
	}
	return nil
}

func (p *preset) space() string       { return "gan/" + p.name + "-z" + strconv.Itoa(p.arch.Z) }
func (p *preset) weightsFile() string { return "weights/" + p.name + ".safetensors" }

// GenerateParams are the generate capability's parameters.
var GenerateParams = []sdk.Param{
	{Name: "temperature", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(10),
		Doc: "scale of the noise's standard deviation (below 1 trades variety for cleaner digits)"},
	{Name: "truncation", Type: sdk.Float, Default: 0.0, Min: sdk.Bound(0), Max: sdk.Bound(10),
		Doc: "redraw noise values beyond ±truncation (the truncation trick; 0: off)"},
	{Name: "interpolate", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(512),
		Doc: "make each item an animation of this many frames from its noise to the next item's in the same call (the last item goes back to the first); set the stage's batch: to the number of items to walk through all of them; 0: one image per item"},
	{Name: "path", Type: sdk.String, Default: "slerp", Enum: []string{"slerp", "lerp"},
		Doc: "interpolation path: slerp (spherical, keeps the norm typical of the noise) or lerp (straight line)"},
}

// Plugin is the gan plugin. The zero value is ready to use.
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
	img := &sdk.ImageSpec{Channels: 1, Height: Size, Width: Size, DType: sdk.Uint8, Min: 0, Max: 255}
	d := sdk.Description{
		Name:      Name,
		Version:   Version,
		Doc:       "generative adversarial networks: DCGAN, conditional DCGAN, WGAN and WGAN-GP",
		BatchSize: 64,
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapGenerate, Doc: "noise (one draw per item seed, with labels for a conditional preset) or given noise vectors -> image", Params: GenerateParams},
			{Name: sdk.CapTrain, Doc: "train a preset's architecture on real images (labelled for the conditional preset)", Params: TrainParams},
		},
	}
	for _, p := range presets {
		sp := sdk.Preset{Name: p.name, Doc: p.doc, Default: p.def, Capabilities: []sdk.Capability{sdk.CapGenerate, sdk.CapTrain},
			Input: img, Output: img, Latent: &sdk.LatentSpec{Space: p.space(), Dim: p.arch.Z}, Classes: p.arch.Classes}
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
	return &model{m: m, preset: p, params: req.Params, samplers: map[int]*sampler{}}, nil
}

// model is a loaded preset; calls are serialised (one gorgonia machine
// per batch size, not safe for concurrent runs).
type model struct {
	m        *Model
	preset   *preset
	params   sdk.Params
	mu       sync.Mutex
	samplers map[int]*sampler
}

// Generate makes one image per seed (or per given noise vector). Each
// item's noise comes from its own seed, so a seed gives the same digit
// whatever the batch; a conditional preset draws the item's label from
// the request, or from its seed when there is none.
func (md *model) Generate(ctx context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	a := md.m.Arch
	n := len(req.Seeds)
	var given []float32
	if req.Latents != nil {
		if req.Latents.Space != "" && req.Latents.Space != md.preset.space() {
			return nil, fmt.Errorf("latents are from space %q; preset %q takes %q", req.Latents.Space, md.preset.name, md.preset.space())
		}
		if len(req.Latents.Shape) != 2 || req.Latents.Shape[1] != a.Z || req.Latents.DType != sdk.Float32 {
			return nil, fmt.Errorf("latents: expected float32 [N %d], got %s %v", a.Z, req.Latents.DType, req.Latents.Shape)
		}
		given, n = req.Latents.Float32s(), req.Latents.Shape[0]
	}
	if n == 0 {
		return sdk.NewTensor(sdk.Uint8, 0, 1, Size, Size), nil
	}
	w := a.Z + a.Classes
	z := make([]float32, n*w)
	temp, trunc := md.params.Float("temperature"), md.params.Float("truncation")
	for i := 0; i < n; i++ {
		row := z[i*w : (i+1)*w]
		seed := uint64(i)
		if i < len(req.Seeds) {
			seed = req.Seeds[i]
		}
		rng := nn.NewRNG(seed)
		if given != nil {
			copy(row[:a.Z], given[i*a.Z:(i+1)*a.Z])
		} else {
			Noise(row[:a.Z], rng, temp, trunc)
		}
		if a.Classes > 0 {
			label := -1
			if i < len(req.Labels) {
				label = req.Labels[i]
			}
			if label < 0 {
				label = rng.IntN(a.Classes)
			}
			if label >= a.Classes {
				return nil, fmt.Errorf("item %d: label %d out of range 0-%d", i, label, a.Classes-1)
			}
			row[a.Z+label] = 1
		}
	}
	frames := md.params.Int("interpolate")
	if frames > 0 {
		z = walk(z, n, w, a.Z, frames, md.params.String("path") == "slerp")
		n *= frames
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	s, ok := md.samplers[n]
	if !ok {
		if len(md.samplers) >= 8 {
			for k, old := range md.samplers {
				old.prog.Close()
				delete(md.samplers, k)
			}
		}
		var err error
		if s, err = md.m.buildSampler(n, false); err != nil {
			return nil, err
		}
		md.samplers[n] = s
	}
	out, err := s.images(z)
	if err != nil {
		return nil, err
	}
	if frames > 0 {
		out.Shape = []int{n / frames, frames, 1, Size, Size}
	}
	return out, nil
}

// walk expands n generator inputs (rows of w values, the first zdim of
// them noise, the rest the one-hot label) into n·frames rows: item i's
// frames go from its noise to item i+1's (cyclically), keeping its label.
func walk(z []float32, n, w, zdim, frames int, slerp bool) []float32 {
	out := make([]float32, n*frames*w)
	for i := 0; i < n; i++ {
		from, to := z[i*w:i*w+zdim], z[((i+1)%n)*w:((i+1)%n)*w+zdim]
		for f := 0; f < frames; f++ {
			t := 0.0
			if frames > 1 {
				t = float64(f) / float64(frames-1)
			}
			row := out[(i*frames+f)*w : (i*frames+f+1)*w]
			nn.Interpolate(row[:zdim], from, to, t, slerp)
			copy(row[zdim:], z[i*w+zdim:(i+1)*w])
		}
	}
	return out
}

// Noise fills z with N(0, temperature²) values, redrawing those beyond
// ±truncation·temperature when truncation > 0.
func Noise(z []float32, rng *nn.RNG, temperature, truncation float64) {
	rng.Normal(z, 1)
	if truncation > 0 {
		one := make([]float32, 1)
		for j := range z {
			for float64(z[j]) > truncation || float64(z[j]) < -truncation {
				rng.Normal(one, 1)
				z[j] = one[0]
			}
		}
	}
	for j := range z {
		z[j] *= float32(temperature)
	}
}

// Close frees the compiled graphs.
func (md *model) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	for k, s := range md.samplers {
		s.prog.Close()
		delete(md.samplers, k)
	}
	return nil
}
