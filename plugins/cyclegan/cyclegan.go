package cyclegan

import (
	"context"
	"embed"
	"fmt"
	"math"
	"sync"

	"github.com/genpipe/genpipe/nn/train"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "cyclegan"
	Version = "0.1.0"
)

//go:embed weights
var shipped embed.FS

// The shipped architectures (see [Arch]).
var (
	// digitsCycle is the typeset <-> handwritten CycleGAN.
	digitsCycle = Arch{Kind: CycleGAN, A: 1, B: 1, NGF: 32, Downs: 2, Blocks: 6, NDF: 64, DLayers: 2}
	// digitsPix is the edges -> digit pix2pix.
	digitsPix = Arch{Kind: Pix2Pix, A: 1, B: 1, NGF: 64, Downs: 2, Blocks: 3, NDF: 64, DLayers: 2, Dropout: 0.5}
)

// preset is a shipped configuration: an architecture, the weights file it
// reads (two presets may share one model) and the direction it translates.
type preset struct {
	name, doc string
	arch      Arch
	dir       Direction
	weights   string // file in weights/, "" for the custom presets
	train     bool
	def       bool
	inputs    []sdk.TrainInput
}

// Size is the side of the shipped presets' images.
const Size = 28

var cycleInputs = []sdk.TrainInput{
	{Name: "a", Doc: "images of domain A (the input of direction a2b)"},
	{Name: "b", Doc: "images of domain B, unpaired with A: shuffled on their own"},
}

var pixInputs = []sdk.TrainInput{
	{Name: "input", Doc: "the images to translate"},
	{Name: "target", Doc: "what each input should become: same count, names and size as input, item by item", Paired: true},
}

var presets = []preset{
	{name: "typeset2mnist", def: true, arch: digitsCycle, dir: AtoB, weights: "typeset-mnist", train: true, inputs: cycleInputs,
		doc: "CycleGAN: typeset digit (white on black, MNIST framing) -> handwritten MNIST style, keeping the digit"},
	{name: "mnist2typeset", arch: digitsCycle, dir: BtoA, weights: "typeset-mnist",
		doc: "CycleGAN, the same model as typeset2mnist run backwards: handwritten digit -> typeset ('clean up handwriting')"},
	{name: "edges2mnist", arch: digitsPix, dir: AtoB, weights: "edges2mnist", train: true, inputs: pixInputs,
		doc: "pix2pix: edge map of a digit (the host's edges op) -> the digit"},
	{name: "cyclegan", dir: AtoB, train: true, inputs: cycleInputs, arch: Arch{Kind: CycleGAN, A: 3, B: 3, NGF: 32, Downs: 2, Blocks: 6, NDF: 64, DLayers: 3},
		doc: "CycleGAN for your own two domains (any size divisible by 4, 1 or 3 channels, set by train params): no shipped weights; translate with weights: from your training"},
	{name: "pix2pix", dir: AtoB, train: true, inputs: pixInputs, arch: Arch{Kind: Pix2Pix, A: 3, B: 3, NGF: 64, Downs: 3, Blocks: 3, NDF: 64, DLayers: 3, Dropout: 0.5},
		doc: "pix2pix for your own pairs (any size divisible by 8, 1 or 3 channels, set by train params): no shipped weights; translate with weights: from your training"},
}

func findPreset(name string) *preset {
	for i := range presets {
		if presets[i].name == name || (name == "" && presets[i].def) {
			return &presets[i]
		}
	}
	return nil
}

func (p *preset) custom() bool        { return p.weights == "" }
func (p *preset) weightsFile() string { return "weights/" + p.weights + ".safetensors" }

// TranslateParams are the translate capability's parameters.
var TranslateParams = []sdk.Param{
	{Name: "direction", Type: sdk.String, Default: "preset", Enum: []string{"preset", "a2b", "b2a"},
		Doc: "which generator runs: a2b (G: A -> B) or b2a (F: B -> A, CycleGAN only); preset: the preset's own direction"},
}

// Plugin is the cyclegan plugin. The zero value is ready to use.
type Plugin struct{}

// New returns the plugin, for sdk.Serve or for use in process.
func New() sdk.Plugin { return &Plugin{} }

var (
	_ sdk.Plugin       = (*Plugin)(nil)
	_ sdk.Trainer      = (*Plugin)(nil)
	_ sdk.Translator   = (*model)(nil)
	_ sdk.OutputSpecer = (*model)(nil)
)

// OutputSpec is the loaded direction's output: the custom presets declare
// no channels (their weights decide them), so the SDK checks outputs
// against this instead.
func (md *model) OutputSpec() *sdk.ImageSpec {
	if !md.preset.custom() {
		return nil // the preset's declaration, size included
	}
	c := md.m.Arch.B
	if md.dir == BtoA {
		c = md.m.Arch.A
	}
	return &sdk.ImageSpec{Channels: c, DType: sdk.Float32, Min: 0, Max: 1}
}

// Describe declares the capabilities and presets.
func (*Plugin) Describe() sdk.Description {
	d := sdk.Description{
		Name:      Name,
		Version:   Version,
		Doc:       "image-to-image translation: CycleGAN (unpaired domains, both directions) and pix2pix (paired images)",
		BatchSize: 32,
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapTranslate, Doc: "image -> image of the other domain, same size", Params: TranslateParams},
			{Name: sdk.CapTrain, Doc: "train on two domains (CycleGAN: train.input {a, b}) or pairs (pix2pix: {input, target})", Params: TrainParams},
		},
	}
	for _, p := range presets {
		sp := sdk.Preset{Name: p.name, Doc: p.doc, Default: p.def, Capabilities: []sdk.Capability{sdk.CapTranslate}}
		if p.train {
			sp.Capabilities = append(sp.Capabilities, sdk.CapTrain)
			sp.TrainInputs = p.inputs
		}
		if p.custom() {
			sp.Input = &sdk.ImageSpec{DType: sdk.Float32, Min: 0, Max: 1}
			sp.Output = &sdk.ImageSpec{DType: sdk.Float32, Min: 0, Max: 1}
			sp.Weights = "none shipped: give weights: from a training"
		} else {
			img := &sdk.ImageSpec{Channels: 1, Height: Size, Width: Size, DType: sdk.Float32, Min: 0, Max: 1}
			sp.Input, sp.Output = img, img
			sp.Weights = train.WeightsInfo(shipped, p.weightsFile())
		}
		d.Presets = append(d.Presets, sp)
	}
	return d
}

// Load builds the preset's model and loads its weights (embedded, or the
// file req.Weights names), refusing weights of another architecture and a
// direction the model does not have.
func (*Plugin) Load(ctx context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	p := findPreset(req.Preset)
	if p == nil {
		return nil, fmt.Errorf("unknown preset %q", req.Preset)
	}
	arch := p.arch
	if p.custom() && req.Weights == "" {
		return nil, fmt.Errorf("preset %s ships no weights: give weights: (a file from pipeline train)", p.name)
	}
	if req.Weights != "" {
		a, err := weightsArch(req.Weights)
		if err != nil {
			return nil, err
		}
		if a.Kind != p.arch.Kind {
			return nil, fmt.Errorf("weights %s are a %s model, preset %s is %s", req.Weights, a.Kind, p.name, p.arch.Kind)
		}
		if p.custom() {
			arch = a
		}
	}
	dir := p.dir
	if d := req.Params.String("direction"); d != "preset" {
		dir = Direction(d)
	}
	if dir == BtoA && arch.Kind != CycleGAN {
		return nil, fmt.Errorf("preset %s is a pix2pix model: it translates a2b only, not %s", p.name, dir)
	}
	m, err := NewGenerators(arch)
	if err != nil {
		return nil, err
	}
	file := ""
	if !p.custom() {
		file = p.weightsFile()
	}
	if err := train.LoadWeights(m.Params, req.Weights, shipped, file, p.name, train.ArchCheck(arch)); err != nil {
		return nil, err
	}
	return &model{m: m, preset: p, dir: dir, graphs: map[graphKey]*translator{}}, nil
}

// graphKey identifies a compiled translator.
type graphKey struct{ n, h, w int }

// model is a loaded preset and direction. Compiled graphs are cached by
// batch shape; calls are serialised because a gorgonia machine is not
// safe for concurrent runs (the kernels use both cores within a call).
type model struct {
	m      *Model
	preset *preset
	dir    Direction

	mu     sync.Mutex
	graphs map[graphKey]*translator
}

// toTanh converts an NCHW batch (float32 in [0, 1] or uint8) to [-1, 1]
// after checking its channels and size against the model.
func toTanh(t *sdk.Tensor, channels int, a Arch, what string) ([]float32, error) {
	if t == nil || len(t.Shape) != 4 || t.Shape[1] != channels || (t.DType != sdk.Float32 && t.DType != sdk.Uint8) {
		var got any = "nothing"
		if t != nil {
			got = fmt.Sprintf("%s %v", t.DType, t.Shape)
		}
		return nil, fmt.Errorf("%s: expected float32 or uint8 images [N %d H W], got %v", what, channels, got)
	}
	if err := a.CheckSize(t.Shape[2], t.Shape[3]); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	v := t.Float32s()
	k, off := float32(2), float32(-1)
	if t.DType == sdk.Uint8 {
		k = 2.0 / 255
	}
	for i, x := range v {
		if math.IsNaN(float64(x)) {
			return nil, fmt.Errorf("%s: item %d has a NaN pixel", what, i/(len(v)/t.Shape[0]))
		}
		v[i] = max(-1, min(1, x*k+off))
	}
	return v, nil
}

// fromTanh maps generator outputs in [-1, 1] to float32 pixels in [0, 1].
func fromTanh(v []float32, shape ...int) *sdk.Tensor {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = max(0, min(1, (x+1)/2))
	}
	return sdk.FromFloat32(out, shape...)
}

// Translate runs the model's generator on a batch. pix2pix's dropout masks
// come from the items' seeds, so an item's result does not depend on the
// batch it is in.
func (md *model) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	inC, outC := md.m.channels(md.dir)
	x, err := toTanh(in.Tensor, inC, md.m.Arch, "input")
	if err != nil {
		return nil, err
	}
	n, h, w := in.Shape[0], in.Shape[2], in.Shape[3]
	md.mu.Lock()
	defer md.mu.Unlock()
	k := graphKey{n, h, w}
	t, ok := md.graphs[k]
	if !ok {
		if len(md.graphs) >= 8 {
			for k, g := range md.graphs {
				g.prog.Close()
				delete(md.graphs, k)
			}
		}
		if t, err = md.m.buildTranslator(md.dir, n, h, w); err != nil {
			return nil, err
		}
		md.graphs[k] = t
	}
	y, err := t.run(x, in.Seeds)
	if err != nil {
		return nil, err
	}
	return fromTanh(y, n, outC, h, w), nil
}

// Close releases the compiled graphs.
func (md *model) Close() error {
	md.mu.Lock()
	defer md.mu.Unlock()
	for k, g := range md.graphs {
		g.prog.Close()
		delete(md.graphs, k)
	}
	return nil
}

// weightsArch reads the architecture recorded in a weights file (custom
// presets take theirs from the training that wrote it).
func weightsArch(path string) (Arch, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return Arch{}, err
	}
	if fm, ok := f.Metadata["format"]; ok && fm != weightsFormat {
		return Arch{}, fmt.Errorf("weights %s are %s weights, of another model family: the %s plugin reads %s", path, fm, Name, weightsFormat)
	}
	s, ok := f.Metadata["arch"]
	if !ok {
		return Arch{}, fmt.Errorf("weights %s: no arch metadata (not written by pipeline train with this plugin)", path)
	}
	a, err := train.ParseArch[Arch](s)
	if err != nil {
		return Arch{}, fmt.Errorf("weights %s: metadata arch: %w", path, err)
	}
	return a, nil
}
