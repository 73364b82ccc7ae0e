package cyclegan

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk/safetensors"
	G "gorgonia.org/gorgonia"
)

// Kind is the member of the family a model is.
type Kind string

// The kinds.
const (
	// CycleGAN is Zhu et al. 2017: unpaired domains A and B, generators
	// G: A->B and F: B->A of ResNet blocks, a PatchGAN discriminator per
	// domain, least-squares GAN losses, cycle and identity L1 losses.
	CycleGAN Kind = "cyclegan"
	// Pix2Pix is Isola et al. 2017: paired (input, target) images, a U-Net
	// generator whose only noise is dropout, a conditional PatchGAN on
	// (input, output), and the cGAN loss plus λ·L1 to the target.
	Pix2Pix Kind = "pix2pix"
)

// Arch is everything that changes the shape of a weight; it is recorded in
// the weights' metadata.
//
//	| field   | meaning                                                       | shipped (cyclegan / pix2pix) |
//	|---------|---------------------------------------------------------------|------------------------------|
//	| Kind    | cyclegan or pix2pix                                           |                              |
//	| A, B    | channels of domain A (the input) and B (the output)           | 1, 1                         |
//	| NGF     | generator channels at full resolution; x2 per downsampling    | 32 / 64                      |
//	| Downs   | stride-2 downsamplings (image sides must divide by 2^Downs)   | 2                            |
//	| Blocks  | residual blocks at the lowest resolution                      | 6 / 3                        |
//	| NDF     | discriminator channels of its first layer                     | 64                           |
//	| DLayers | stride-2 layers of the PatchGAN (receptive field 16, 34, 70)  | 2                            |
//	| Dropout | pix2pix: drop probability in the bottleneck and inner decoder | 0 / 0.5                      |
//
// CycleGAN's generator is junyanz/pytorch-CycleGAN-and-pix2pix's
// ResnetGenerator: reflect-pad 3, conv 7x7 → NGF, InstanceNorm, ReLU;
// Downs × (conv 3x3 stride 2, IN, ReLU); Blocks × (reflect-pad 1, conv 3x3,
// IN, ReLU, reflect-pad 1, conv 3x3, IN, + input); Downs × (conv-transpose
// 3x3 stride 2, IN, ReLU); reflect-pad 3, conv 7x7 → B, tanh.
//
// pix2pix's generator is a U-Net: conv 4x4 stride 2 → NGF (no norm), then
// Downs-1 × (LeakyReLU 0.2, conv 4x4 stride 2, IN); Blocks residual blocks
// (with dropout between their convolutions); then the decoder mirrors the
// encoder with ReLU, conv-transpose 4x4 stride 2, IN, dropout on the inner
// levels, each level's input the concatenation of the level below and the
// encoder's skip; the last level ends in tanh.
//
// The discriminator is the NLayerDiscriminator (PatchGAN): conv 4x4 stride
// 2 → NDF, LeakyReLU 0.2; DLayers-1 × (conv 4x4 stride 2, IN, LeakyReLU);
// conv 4x4 stride 1, IN, LeakyReLU; conv 4x4 stride 1 → 1 score per patch.
// pix2pix's sees the input and the output (A+B channels), CycleGAN's one
// image of its domain.
type Arch struct {
	Kind    Kind    `json:"kind"`
	A       int     `json:"a"`
	B       int     `json:"b"`
	NGF     int     `json:"ngf"`
	Downs   int     `json:"downs"`
	Blocks  int     `json:"blocks"`
	NDF     int     `json:"ndf"`
	DLayers int     `json:"d_layers"`
	Dropout float64 `json:"dropout"`
}

// Validate checks the sizes.
func (a Arch) Validate() error {
	switch a.Kind {
	case CycleGAN:
		if a.Dropout != 0 {
			return fmt.Errorf("cyclegan has no dropout (got %v)", a.Dropout)
		}
	case Pix2Pix:
		if a.Downs < 1 {
			return fmt.Errorf("pix2pix's U-Net needs at least one downsampling")
		}
	default:
		return fmt.Errorf("kind %q: want cyclegan or pix2pix", a.Kind)
	}
	if a.A < 1 || a.B < 1 || a.NGF < 1 || a.NDF < 1 || a.Downs < 0 || a.Blocks < 0 || a.DLayers < 1 {
		return fmt.Errorf("architecture %+v: channels and d_layers must be positive, downs and blocks not negative", a)
	}
	if a.Downs > 5 || a.DLayers > 5 {
		return fmt.Errorf("architecture %+v: at most 5 downsamplings and 5 discriminator layers", a)
	}
	if !(a.Dropout >= 0 && a.Dropout < 1) {
		return fmt.Errorf("dropout %v: want 0 <= p < 1", a.Dropout)
	}
	return nil
}

// JSON is the architecture as recorded in weights metadata ("arch").
func (a Arch) JSON() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// CheckSize reports whether an h x w image fits the networks: its sides
// must divide by 2^Downs (the generator's strides) and leave the
// discriminator at least one patch.
func (a Arch) CheckSize(h, w int) error {
	k := 1 << a.Downs
	if h%k != 0 || w%k != 0 {
		return fmt.Errorf("image %dx%d: width and height must be multiples of %d (%d downsamplings)", w, h, k, a.Downs)
	}
	// Each stride-2 layer halves, the two stride-1 layers take 1 each.
	sh, sw := h, w
	for range a.DLayers {
		sh, sw = sh/2, sw/2
	}
	if sh-2 < 1 || sw-2 < 1 {
		return fmt.Errorf("image %dx%d is too small for a %d-layer PatchGAN (at least %d pixels a side)", w, h, a.DLayers, (3 << a.DLayers))
	}
	return nil
}

// The networks' scopes: parameter name prefixes (the PyTorch twin's
// attributes) and optimiser names in checkpoints. pix2pix uses genAB and
// discB only.
const (
	genAB = "g_ab"
	genBA = "g_ba"
	discA = "d_a"
	discB = "d_b"
)

// resBlock is a residual block: two 3x3 convolutions on reflection-padded
// input, instance norm, ReLU between, and optional dropout (pix2pix).
type resBlock struct {
	conv1, conv2 *layers.Conv2d
	in1, in2     *layers.InstanceNorm
	name         string
}

// generator is one generator's layers.
type generator struct {
	kind   Kind
	stem   *layers.Conv2d // cyclegan: 7x7; pix2pix: first 4x4 stride-2
	stemIN *layers.InstanceNorm
	down   []*layers.Conv2d
	downIN []*layers.InstanceNorm
	blocks []resBlock
	up     []*layers.ConvTranspose2d
	upIN   []*layers.InstanceNorm
	head   *layers.Conv2d // cyclegan only: the 7x7 output conv
	drop   float64
	name   string
}

// discriminator is one PatchGAN's layers.
type discriminator struct {
	in    *layers.Conv2d
	down  []*layers.Conv2d
	downN []*layers.InstanceNorm
	mid   *layers.Conv2d
	midN  *layers.InstanceNorm
	out   *layers.Conv2d
}

// Model is an architecture with its parameters (both generators and both
// discriminators in one set, so a checkpoint holds them all).
type Model struct {
	Arch   Arch
	Params *layers.Params
	gAB    *generator
	gBA    *generator // nil for pix2pix
	dA     *discriminator
	dB     *discriminator
}

// NewModel creates a model with the reference implementation's init_type
// "normal": weights N(0, 0.02), biases 0.
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ps := layers.NewParams()
	m := &Model{Arch: a, Params: ps}
	s := layers.NewScope(ps, rng).WithInit(layers.DCGANInit)
	switch a.Kind {
	case CycleGAN:
		m.gAB = newResnet(s.In(genAB), a, a.A, a.B)
		m.gBA = newResnet(s.In(genBA), a, a.B, a.A)
		m.dA = newPatchGAN(s.In(discA), a, a.A)
		m.dB = newPatchGAN(s.In(discB), a, a.B)
	case Pix2Pix:
		m.gAB = newUNet(s.In(genAB), a)
		m.dB = newPatchGAN(s.In(discB), a, a.A+a.B)
	}
	return m, nil
}

// NewGenerators creates a model with the generators only (zero weights,
// to be loaded): translation needs nothing else, and shipped weights hold
// nothing else. Its discriminators are nil.
func NewGenerators(a Arch) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ps := layers.NewParams()
	m := &Model{Arch: a, Params: ps}
	s := layers.NewScope(ps, nn.NewRNG(0))
	m.gAB = newGenerator(s.In(genAB), a, a.A, a.B)
	if a.Kind == CycleGAN {
		m.gBA = newGenerator(s.In(genBA), a, a.B, a.A)
	}
	return m, nil
}

// newGenerator is a's generator from in to out channels.
func newGenerator(s layers.Scope, a Arch, in, out int) *generator {
	if a.Kind == Pix2Pix {
		return newUNet(s, a)
	}
	return newResnet(s, a, in, out)
}

// generatorTensors are the generators' entries of ps (the weights a
// training writes: the discriminators live in its checkpoints only).
func generatorTensors(ps *layers.Params) []safetensors.Tensor {
	var out []safetensors.Tensor
	for _, t := range ps.Tensors() {
		if strings.HasPrefix(t.Name, genAB+".") || strings.HasPrefix(t.Name, genBA+".") {
			out = append(out, t)
		}
	}
	return out
}

func newResBlock(s layers.Scope, name string, c int) resBlock {
	s = s.In(name)
	return resBlock{
		conv1: s.Conv2d("conv1", c, c, 3, 1, 0),
		in1:   s.InstanceNorm2d("in1", c, false),
		conv2: s.Conv2d("conv2", c, c, 3, 1, 0),
		in2:   s.InstanceNorm2d("in2", c, false),
		name:  s.Name(""),
	}
}

func newResnet(s layers.Scope, a Arch, in, out int) *generator {
	g := &generator{kind: CycleGAN, name: s.Name("")}
	g.stem = s.Conv2d("stem", in, a.NGF, 7, 1, 0)
	g.stemIN = s.InstanceNorm2d("stem_in", a.NGF, false)
	c := a.NGF
	for i := range a.Downs {
		g.down = append(g.down, s.In("down").Conv2d(fmt.Sprint(i), c, 2*c, 3, 2, 1))
		g.downIN = append(g.downIN, s.In("down_in").InstanceNorm2d(fmt.Sprint(i), 2*c, false))
		c *= 2
	}
	for i := range a.Blocks {
		g.blocks = append(g.blocks, newResBlock(s.In("blocks"), fmt.Sprint(i), c))
	}
	for i := range a.Downs {
		g.up = append(g.up, s.In("up").ConvTranspose2d(fmt.Sprint(i), c, c/2, 3, 2, 1, 1))
		g.upIN = append(g.upIN, s.In("up_in").InstanceNorm2d(fmt.Sprint(i), c/2, false))
		c /= 2
	}
	g.head = s.Conv2d("head", c, out, 7, 1, 0)
	return g
}

// newUNet declares pix2pix's U-Net. Level i of the encoder has NGF·2^i
// channels at 1/2^(i+1) of the input size; the decoder's level i maps the
// concatenation of the level below and encoder level i back up.
func newUNet(s layers.Scope, a Arch) *generator {
	g := &generator{kind: Pix2Pix, drop: a.Dropout, name: s.Name("")}
	g.stem = s.Conv2d("stem", a.A, a.NGF, 4, 2, 1)
	c := a.NGF
	for i := 1; i < a.Downs; i++ {
		g.down = append(g.down, s.In("down").Conv2d(fmt.Sprint(i), c, 2*c, 4, 2, 1))
		g.downIN = append(g.downIN, s.In("down_in").InstanceNorm2d(fmt.Sprint(i), 2*c, false))
		c *= 2
	}
	for i := range a.Blocks {
		g.blocks = append(g.blocks, newResBlock(s.In("blocks"), fmt.Sprint(i), c))
	}
	// Decoder levels from the innermost (Downs-1) to the outermost (0);
	// every level but the innermost sees the skip concatenated.
	for lvl := a.Downs - 1; lvl >= 0; lvl-- {
		inC := c
		if lvl < a.Downs-1 || a.Blocks > 0 {
			inC = 2 * c // the level below (or the blocks' output) and the skip
		}
		outC := c / 2
		if lvl == 0 {
			outC = a.B
		}
		g.up = append(g.up, s.In("up").ConvTranspose2d(fmt.Sprint(lvl), inC, outC, 4, 2, 1, 0))
		if lvl > 0 {
			g.upIN = append(g.upIN, s.In("up_in").InstanceNorm2d(fmt.Sprint(lvl), outC, false))
		}
		c = outC
	}
	return g
}

func newPatchGAN(s layers.Scope, a Arch, in int) *discriminator {
	d := &discriminator{}
	d.in = s.Conv2d("in", in, a.NDF, 4, 2, 1)
	c := a.NDF
	mult := func(n int) int { return a.NDF * min(1<<n, 8) }
	for n := 1; n < a.DLayers; n++ {
		d.down = append(d.down, s.In("down").Conv2d(fmt.Sprint(n), c, mult(n), 4, 2, 1))
		d.downN = append(d.downN, s.In("down_in").InstanceNorm2d(fmt.Sprint(n), mult(n), false))
		c = mult(n)
	}
	d.mid = s.Conv2d("mid", c, mult(a.DLayers), 4, 1, 1)
	d.midN = s.InstanceNorm2d("mid_in", mult(a.DLayers), false)
	d.out = s.Conv2d("out", mult(a.DLayers), 1, 4, 1, 1)
	return d
}

// masks collects the dropout masks of one built graph, to be filled per
// run from the items' seeds.
type masks []*layers.DropoutMask

func (ms masks) fill(seeds []uint64) error {
	for _, m := range ms {
		if err := m.Fill(seeds); err != nil {
			return err
		}
	}
	return nil
}

func (r *resBlock) forward(b *layers.Builder, x *G.Node, drop float64, ms *masks) *G.Node {
	h := b.ReLU(r.in1.Forward(b, r.conv1.Forward(b, b.ReflectionPad2d(x, 1))))
	if drop > 0 {
		var m *layers.DropoutMask
		h, m = b.Dropout(h, r.name+"dropout", drop)
		*ms = append(*ms, m)
	}
	h = r.in2.Forward(b, r.conv2.Forward(b, b.ReflectionPad2d(h, 1)))
	return b.Add(x, h)
}

// forward maps x [N, in, H, W] in [-1, 1] to [N, out, H, W] in [-1, 1];
// ms receives the dropout masks the graph needs (pix2pix).
func (g *generator) forward(b *layers.Builder, x *G.Node, ms *masks) *G.Node {
	if g.kind == CycleGAN {
		h := b.ReLU(g.stemIN.Forward(b, g.stem.Forward(b, b.ReflectionPad2d(x, 3))))
		for i := range g.down {
			h = b.ReLU(g.downIN[i].Forward(b, g.down[i].Forward(b, h)))
		}
		for i := range g.blocks {
			h = g.blocks[i].forward(b, h, 0, ms)
		}
		for i := range g.up {
			h = b.ReLU(g.upIN[i].Forward(b, g.up[i].Forward(b, h)))
		}
		return b.Tanh(g.head.Forward(b, b.ReflectionPad2d(h, 3)))
	}
	// U-Net: skips[i] is encoder level i's output (before its activation).
	skips := []*G.Node{g.stem.Forward(b, x)}
	h := skips[0]
	for i := range g.down {
		h = g.downIN[i].Forward(b, g.down[i].Forward(b, b.LeakyReLU(h, 0.2)))
		skips = append(skips, h)
	}
	if len(g.blocks) > 0 {
		h = b.LeakyReLU(h, 0.2)
		for i := range g.blocks {
			h = g.blocks[i].forward(b, h, g.drop, ms)
		}
		h = b.ConcatChannels(h, skips[len(skips)-1])
	}
	levels := len(g.up)
	for j := range g.up {
		lvl := levels - 1 - j
		h = g.up[j].Forward(b, b.ReLU(h))
		if lvl == 0 {
			return b.Tanh(h)
		}
		h = g.upIN[j].Forward(b, h)
		if g.drop > 0 && j < 3 {
			var m *layers.DropoutMask
			h, m = b.Dropout(h, fmt.Sprintf("%sup.%d.dropout", g.name, lvl), g.drop)
			*ms = append(*ms, m)
		}
		h = b.ConcatChannels(h, skips[lvl-1])
	}
	return h // unreachable: the last level returns
}

// forward scores x [N, C, H, W]: one score per patch, [N, 1, h, w].
func (d *discriminator) forward(b *layers.Builder, x *G.Node) *G.Node {
	h := b.LeakyReLU(d.in.Forward(b, x), 0.2)
	for i := range d.down {
		h = b.LeakyReLU(d.downN[i].Forward(b, d.down[i].Forward(b, h)), 0.2)
	}
	h = b.LeakyReLU(d.midN.Forward(b, d.mid.Forward(b, h)), 0.2)
	return d.out.Forward(b, h)
}
