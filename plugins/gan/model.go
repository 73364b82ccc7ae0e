package gan

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// Variant is the member of the family a model is: its losses and how its
// discriminator (critic) is built.
type Variant string

// The variants.
const (
	// DCGAN is Radford et al. 2016: BatchNorm in both networks, the
	// non-saturating generator loss (or the minimax one), Adam.
	DCGAN Variant = "dcgan"
	// CGAN is a conditional DCGAN (Mirza & Osindero 2014): the label is a
	// one-hot vector appended to z and ten constant planes appended to the
	// discriminator's input.
	CGAN Variant = "cgan"
	// WGAN is Arjovsky et al. 2017: a critic without sigmoid, weights
	// clipped to [-c, c], n_critic critic updates per generator update,
	// RMSProp.
	WGAN Variant = "wgan"
	// WGANGP is Gulrajani et al. 2017: WGAN's loss with the gradient penalty
	// λ(‖∇D(x̂)‖₂ − 1)² on interpolates instead of clipping, Adam, and no
	// BatchNorm in the critic.
	WGANGP Variant = "wgan-gp"
)

// Arch is everything that changes the shape of a weight; it is recorded in
// the weights' metadata.
//
//	| field   | meaning                                             | shipped |
//	|---------|-----------------------------------------------------|---------|
//	| Variant | dcgan, cgan, wgan or wgan-gp                        |         |
//	| Z       | noise dimensions                                    | 64      |
//	| Width   | channels of the 14x14 layer; the 7x7 layer has 2x   | 32      |
//	| Classes | labels of a conditional model (0: unconditional)    | 10/0    |
//
// Generator: linear(Z[+Classes] → 2W·7·7), BatchNorm, ReLU, reshape;
// convT(2W→W, 4, s2, p1) BatchNorm ReLU → 14x14; convT(W→1, 4, s2, p1),
// tanh → 28x28 in [-1, 1]. Discriminator: conv(1[+Classes]→W, 4, s2, p1)
// LeakyReLU(0.2) → 14x14; conv(W→2W, 4, s2, p1) [BatchNorm] LeakyReLU →
// 7x7; linear(2W·7·7 → 1): a logit (a score for the WGANs). The critic of
// WGAN-GP has no BatchNorm: the penalty is per sample, and batch
// statistics would couple the samples.
type Arch struct {
	Variant Variant `json:"variant"`
	Z       int     `json:"z"`
	Width   int     `json:"width"`
	Classes int     `json:"classes"`
}

// Validate checks the sizes.
func (a Arch) Validate() error {
	switch a.Variant {
	case DCGAN, WGAN, WGANGP:
		if a.Classes != 0 {
			return fmt.Errorf("variant %s is unconditional; classes must be 0", a.Variant)
		}
	case CGAN:
		if a.Classes < 2 {
			return fmt.Errorf("variant cgan needs classes >= 2")
		}
	default:
		return fmt.Errorf("variant %q: want dcgan, cgan, wgan or wgan-gp", a.Variant)
	}
	if a.Z < 1 || a.Width < 1 {
		return fmt.Errorf("architecture %+v: z and width must be positive", a)
	}
	return nil
}

// JSON is the architecture as recorded in weights metadata ("arch").
func (a Arch) JSON() string {
	b, _ := json.Marshal(a)
	return string(b)
}

// Size is the side of the square images the family makes.
const Size = 28

// Model is an architecture with its parameters: generator.* and
// discriminator.*, in one set so a checkpoint holds both.
type Model struct {
	Arch   Arch
	Params *layers.Params
	gBN    [2]*layers.BatchNorm
	dBN    *layers.BatchNorm
}

func (a Arch) flat() int { return 2 * a.Width * 7 * 7 }

// NewModel creates a model with DCGAN's initialisation: weights N(0, 0.02),
// BatchNorm scales N(1, 0.02), biases 0.
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ps := layers.NewParams()
	m := &Model{Arch: a, Params: ps}
	w := a.Width
	normal := func(name string, shape ...int) { rng.Normal(ps.Add(name, shape...).Data(), 0.02) }
	bn := func(name string, c int) *layers.BatchNorm {
		b := layers.NewBatchNorm2d(ps, name, c)
		rng.Normal(b.Weight.Data(), 0.02)
		for i := range b.Weight.Data() {
			b.Weight.Data()[i]++
		}
		return b
	}
	normal("generator.fc.weight", a.flat(), a.Z+a.Classes)
	ps.Add("generator.fc.bias", a.flat())
	m.gBN[0] = bn("generator.bn0", 2*w)
	normal("generator.up1.weight", 2*w, w, 4, 4)
	ps.Add("generator.up1.bias", w)
	m.gBN[1] = bn("generator.bn1", w)
	normal("generator.up2.weight", w, 1, 4, 4)
	ps.Add("generator.up2.bias", 1)
	normal("discriminator.conv1.weight", w, 1+a.Classes, 4, 4)
	ps.Add("discriminator.conv1.bias", w)
	normal("discriminator.conv2.weight", 2*w, w, 4, 4)
	ps.Add("discriminator.conv2.bias", 2*w)
	if a.Variant != WGANGP {
		m.dBN = bn("discriminator.bn2", 2*w)
	}
	normal("discriminator.fc.weight", 1, a.flat())
	ps.Add("discriminator.fc.bias", 1)
	return m, nil
}

// part returns the trainable parameters of one network ("generator" or
// "discriminator").
func (m *Model) part(prefix string) []*layers.Param {
	var out []*layers.Param
	for _, p := range m.Params.Trainable() {
		if strings.HasPrefix(p.Name, prefix+".") {
			out = append(out, p)
		}
	}
	return out
}

// generator builds G on z [N, Z+Classes] (labels one-hot in the last
// Classes columns), giving images [N, 1, 28, 28] in [-1, 1]. training
// selects batch statistics (and updates the running ones) in BatchNorm.
func (m *Model) generator(b *layers.Builder, z *G.Node, training bool) *G.Node {
	p := m.Params.Get
	n := z.Shape()[0]
	w := m.Arch.Width
	h := b.Linear(z, p("generator.fc.weight"), p("generator.fc.bias"))
	h = b.Reshape(h, n, 2*w, 7, 7)
	h = b.ReLU(b.BatchNorm2d(h, m.gBN[0], training))
	h = b.ConvTranspose2d(h, p("generator.up1.weight"), p("generator.up1.bias"), 2, 1, 0)
	h = b.ReLU(b.BatchNorm2d(h, m.gBN[1], training))
	h = b.ConvTranspose2d(h, p("generator.up2.weight"), p("generator.up2.bias"), 2, 1, 0)
	return b.Tanh(h)
}

// discriminator builds D on x [N, 1+Classes, 28, 28] (an image in [-1, 1]
// and, for a conditional model, one constant plane per class), giving a
// logit or critic score [N, 1].
func (m *Model) discriminator(b *layers.Builder, x *G.Node, training bool) *G.Node {
	p := m.Params.Get
	n := x.Shape()[0]
	h := b.LeakyReLU(b.Conv2d(x, p("discriminator.conv1.weight"), p("discriminator.conv1.bias"), 2, 1), 0.2)
	h = b.Conv2d(h, p("discriminator.conv2.weight"), p("discriminator.conv2.bias"), 2, 1)
	if m.dBN != nil {
		h = b.BatchNorm2d(h, m.dBN, training)
	}
	h = b.LeakyReLU(h, 0.2)
	h = b.Reshape(h, n, m.Arch.flat())
	return b.Linear(h, p("discriminator.fc.weight"), p("discriminator.fc.bias"))
}
