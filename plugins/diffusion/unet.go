package diffusion

import (
	"encoding/json"
	"fmt"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// Kind is the denoiser network a model uses.
type Kind string

// The kinds.
const (
	// UNet denoises images: a U-Net with residual blocks, GroupNorm, SiLU,
	// a sinusoidal time embedding and self-attention at the lowest level.
	UNet Kind = "unet"
	// MLP denoises latent vectors: residual blocks of dense layers.
	MLP Kind = "mlp"
)

// Arch is everything that changes the shape of a weight; it is recorded in
// the weights' metadata ("arch").
//
//	| field   | meaning                                                        | mnist-ddpm |
//	|---------|----------------------------------------------------------------|------------|
//	| Kind    | unet or mlp                                                    | unet       |
//	| Ch      | image channels (unet) or latent dimensions (mlp)               | 1          |
//	| Size    | image side (unet; must divide by 4)                            | 28         |
//	| Base    | unet: channels at full resolution (2x at 1/2, 4x at 1/4)       | 32         |
//	|         | mlp: hidden width                                              |            |
//	| Blocks  | mlp: residual blocks (the unet has one per level, two in the middle) | -    |
//	| TDim    | width of the time (and label) embedding                        | 128        |
//	| Groups  | GroupNorm groups (unet)                                        | 8          |
//	| Attn    | self-attention in the middle, at 1/4 resolution (unet)         | true       |
//	| Classes | labels of a conditional model; label Classes is "no label"     | 10         |
//
// U-Net (names as the PyTorch twin's state_dict, testdata/torch_diffusion.py):
// conv_in 3x3 → down0 res(B) → downsample0 (3x3 stride 2) → down1
// res(B→2B) → downsample1 → mid0 res(2B→4B) → attn (GroupNorm, 1x1 qkv,
// single-head attention, 1x1 proj, residual) → mid1 res(4B) → nearest
// upsample, upconv1 3x3 (4B→2B), concat down1's output → up1 res(4B→2B) →
// upsample, upconv0 (2B→B), concat down0's → up0 res(2B→B) → GroupNorm,
// SiLU, conv_out 3x3 → the predicted noise. A residual block is
// GroupNorm, SiLU, conv3x3, + a per-channel projection of the embedding,
// GroupNorm, SiLU, conv3x3, + the input (through a 1x1 conv when the
// channels change). The embedding is time_mlp (linear B→TDim, SiLU,
// linear TDim→TDim) of the sinusoidal features of t, plus the label's row
// of label_emb [Classes+1, TDim], through a SiLU.
type Arch struct {
	Kind    Kind `json:"kind"`
	Ch      int  `json:"ch"`
	Size    int  `json:"size,omitempty"`
	Base    int  `json:"base"`
	Blocks  int  `json:"blocks,omitempty"`
	TDim    int  `json:"tdim"`
	Groups  int  `json:"groups,omitempty"`
	Attn    bool `json:"attn,omitempty"`
	Classes int  `json:"classes"`
}

// Validate checks the sizes.
func (a Arch) Validate() error {
	if a.Ch < 1 || a.Base < 1 || a.TDim < 2 || a.TDim%2 != 0 || a.Classes < 0 {
		return fmt.Errorf("architecture %s: ch, base and tdim must be positive (tdim even), classes >= 0", a.JSON())
	}
	switch a.Kind {
	case UNet:
		if a.Size < 4 || a.Size%4 != 0 {
			return fmt.Errorf("architecture %s: size must be a positive multiple of 4", a.JSON())
		}
		if a.Groups < 1 || a.Base%a.Groups != 0 || a.Base%2 != 0 {
			return fmt.Errorf("architecture %s: base must be even and divisible by groups", a.JSON())
		}
	case MLP:
		if a.Blocks < 1 {
			return fmt.Errorf("architecture %s: blocks must be positive", a.JSON())
		}
	default:
		return fmt.Errorf("architecture kind %q: want unet or mlp", a.Kind)
	}
	return nil
}

// JSON is the architecture as recorded in weights metadata.
func (a Arch) JSON() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// features is the width of the sinusoidal time features.
func (a Arch) features() int {
	if a.Kind == UNet {
		return a.Base
	}
	return a.TDim
}

// sampleShape is one item's shape: [Ch, Size, Size] or [Ch].
func (a Arch) sampleShape() []int {
	if a.Kind == UNet {
		return []int{a.Ch, a.Size, a.Size}
	}
	return []int{a.Ch}
}

// per is the number of values of one item.
func (a Arch) per() int {
	n := 1
	for _, d := range a.sampleShape() {
		n *= d
	}
	return n
}

// Model is an architecture with its parameters.
type Model struct {
	Arch   Arch
	Params *layers.Params
}

// resBlock is a residual block's layers.
type resBlock struct {
	norm1, norm2 [2]*layers.Param
	conv1, conv2 *layers.Conv2d
	temb         *layers.Linear
	skip         *layers.Conv2d // nil when the channels stay
}

// NewModel creates a model with PyTorch's default initialisation (Kaiming
// uniform), GroupNorm scales 1, and the output layer zeroed, so that a
// fresh model predicts no noise (as in the DDPM reference code).
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Arch: a, Params: layers.NewParams()}
	s := layers.NewScope(m.Params, rng)
	f := a.features()
	s.Linear("time_mlp.0", f, a.TDim)
	s.Linear("time_mlp.2", a.TDim, a.TDim)
	if a.Classes > 0 {
		e := m.Params.Add("label_emb.weight", a.Classes+1, a.TDim)
		rng.Normal(e.Data(), 1) // nn.Embedding's N(0, 1)
	}
	if a.Kind == MLP {
		// The data's mean and deviation (one of each over every
		// dimension), set from the first training batch: the network sees
		// (z - shift)/scale, of unit variance as the noise.
		m.Params.AddBuffer("data.shift", 1)
		m.Params.AddBuffer("data.scale", 1)
		s.Linear("in", a.Ch, a.Base)
		for i := 0; i < a.Blocks; i++ {
			bs := s.In(fmt.Sprintf("blocks.%d", i))
			m.norm(bs.Name("norm"), a.Base)
			bs.Linear("fc1", a.Base, a.Base)
			bs.Linear("temb", a.TDim, a.Base)
			bs.Linear("fc2", a.Base, a.Base)
		}
		m.norm("norm_out", a.Base)
		out := s.Linear("out", a.Base, a.Ch)
		clear(out.Weight.Data())
		clear(out.Bias.Data())
		return m, nil
	}
	b := a.Base
	s.Conv2d("conv_in", a.Ch, b, 3, 1, 1)
	m.res(s, "down0", b, b)
	s.Conv2d("downsample0", b, b, 3, 2, 1)
	m.res(s, "down1", b, 2*b)
	s.Conv2d("downsample1", 2*b, 2*b, 3, 2, 1)
	m.res(s, "mid0", 2*b, 4*b)
	if a.Attn {
		m.norm("attn.norm", 4*b)
		s.Conv2d("attn.qkv", 4*b, 12*b, 1, 1, 0)
		p := s.Conv2d("attn.proj", 4*b, 4*b, 1, 1, 0)
		clear(p.Weight.Data())
		clear(p.Bias.Data())
	}
	m.res(s, "mid1", 4*b, 4*b)
	s.Conv2d("upconv1", 4*b, 2*b, 3, 1, 1)
	m.res(s, "up1", 4*b, 2*b)
	s.Conv2d("upconv0", 2*b, b, 3, 1, 1)
	m.res(s, "up0", 2*b, b)
	m.norm("norm_out", b)
	out := s.Conv2d("conv_out", b, a.Ch, 3, 1, 1)
	clear(out.Weight.Data())
	clear(out.Bias.Data())
	return m, nil
}

// norm declares a GroupNorm's (or LayerNorm's) weight (ones) and bias.
func (m *Model) norm(name string, c int) {
	w := m.Params.Add(name+".weight", c)
	for i := range w.Data() {
		w.Data()[i] = 1
	}
	m.Params.Add(name+".bias", c)
}

func (m *Model) res(s layers.Scope, name string, cin, cout int) {
	m.norm(name+".norm1", cin)
	s.Conv2d(name+".conv1", cin, cout, 3, 1, 1)
	s.Linear(name+".temb", m.Arch.TDim, cout)
	m.norm(name+".norm2", cout)
	c2 := s.Conv2d(name+".conv2", cout, cout, 3, 1, 1)
	// A block starts as the identity (or its skip): the DDPM reference
	// code zero-initialises each block's last convolution.
	clear(c2.Weight.Data())
	clear(c2.Bias.Data())
	if cin != cout {
		s.Conv2d(name+".skip", cin, cout, 1, 1, 0)
	}
}

func (m *Model) p(name string) *layers.Param { return m.Params.Get(name) }

func (m *Model) conv(b *layers.Builder, x *G.Node, name string, stride, pad int) *G.Node {
	return b.Conv2d(x, m.p(name+".weight"), m.p(name+".bias"), stride, pad)
}

func (m *Model) linear(b *layers.Builder, x *G.Node, name string) *G.Node {
	return b.Linear(x, m.p(name+".weight"), m.p(name+".bias"))
}

func (m *Model) gn(b *layers.Builder, x *G.Node, name string) *G.Node {
	groups := m.Arch.Groups
	if c := x.Shape()[1]; c%groups != 0 {
		groups = 1
	}
	return b.GroupNorm(x, groups, m.p(name+".weight"), m.p(name+".bias"))
}

func (m *Model) resForward(b *layers.Builder, x, emb *G.Node, name string) *G.Node {
	if b.Err() != nil {
		return nil
	}
	h := m.conv(b, b.SiLU(m.gn(b, x, name+".norm1")), name+".conv1", 1, 1)
	h = b.AddSampleChannel(h, m.linear(b, emb, name+".temb"))
	h = m.conv(b, b.SiLU(m.gn(b, h, name+".norm2")), name+".conv2", 1, 1)
	skip := x
	if m.p(name+".skip.weight") != nil {
		skip = m.conv(b, x, name+".skip", 1, 0)
	}
	return b.Add(h, skip)
}

// Inputs are a denoiser graph's input nodes: x_t, the sinusoidal time
// features and (conditional models) the one-hot labels, the last column
// being "no label".
type Inputs struct {
	X, Feats, Labels *G.Node
}

// NewInputs declares the inputs of a batch of n items.
func (m *Model) NewInputs(b *layers.Builder, n int) Inputs {
	a := m.Arch
	in := Inputs{
		X:     b.Input("x_t", append([]int{n}, a.sampleShape()...)...),
		Feats: b.Input("t_features", n, a.features()),
	}
	if a.Classes > 0 {
		in.Labels = b.Input("labels", n, a.Classes+1)
	}
	return in
}

// Forward builds the denoiser: the predicted noise, shaped like in.X.
func (m *Model) Forward(b *layers.Builder, in Inputs) *G.Node {
	a := m.Arch
	emb := m.linear(b, b.SiLU(m.linear(b, in.Feats, "time_mlp.0")), "time_mlp.2")
	if a.Classes > 0 {
		emb = b.Add(emb, b.MatMul(in.Labels, b.Param(m.p("label_emb.weight")), false, false))
	}
	emb = b.SiLU(emb)
	if a.Kind == MLP {
		h := m.linear(b, in.X, "in")
		for i := 0; i < a.Blocks; i++ {
			name := fmt.Sprintf("blocks.%d", i)
			r := b.SiLU(m.layerNorm(b, h, name+".norm"))
			r = b.Add(m.linear(b, r, name+".fc1"), m.linear(b, emb, name+".temb"))
			r = m.linear(b, b.SiLU(r), name+".fc2")
			h = b.Add(h, r)
		}
		return m.linear(b, b.SiLU(m.layerNorm(b, h, "norm_out")), "out")
	}
	h0 := m.resForward(b, m.conv(b, in.X, "conv_in", 1, 1), emb, "down0")
	h1 := m.resForward(b, m.conv(b, h0, "downsample0", 2, 1), emb, "down1")
	h := m.resForward(b, m.conv(b, h1, "downsample1", 2, 1), emb, "mid0")
	if a.Attn {
		att := b.SelfAttention(m.conv(b, m.gn(b, h, "attn.norm"), "attn.qkv", 1, 0))
		h = b.Add(h, m.conv(b, att, "attn.proj", 1, 0))
	}
	h = m.resForward(b, h, emb, "mid1")
	h = m.conv(b, b.Upsample(h, 2), "upconv1", 1, 1)
	h = m.resForward(b, b.ConcatChannels(h, h1), emb, "up1")
	h = m.conv(b, b.Upsample(h, 2), "upconv0", 1, 1)
	h = m.resForward(b, b.ConcatChannels(h, h0), emb, "up0")
	return m.conv(b, b.SiLU(m.gn(b, h, "norm_out")), "conv_out", 1, 1)
}

// layerNorm is PyTorch's nn.LayerNorm over the features of x [N, F],
// as a one-group GroupNorm of x viewed as [N, F, 1].
func (m *Model) layerNorm(b *layers.Builder, x *G.Node, name string) *G.Node {
	s := x.Shape()
	y := b.GroupNorm(b.Reshape(x, s[0], s[1], 1), 1, m.p(name+".weight"), m.p(name+".bias"))
	return b.Reshape(y, s[0], s[1])
}
