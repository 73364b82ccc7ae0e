package gan

import (
	"encoding/json"
	"fmt"

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
// discriminator.*, in one set so a checkpoint holds both, and the layers
// that own them.
type Model struct {
	Arch   Arch
	Params *layers.Params
	gen    struct {
		fc       *layers.Linear
		bn0, bn1 *layers.BatchNorm
		up1, up2 *layers.ConvTranspose2d
	}
	disc struct {
		conv1, conv2 *layers.Conv2d
		// bn2 is nil for WGAN-GP's critic.
		bn2 *layers.BatchNorm
		fc  *layers.Linear
	}
}

func (a Arch) flat() int { return 2 * a.Width * 7 * 7 }

// The two networks' scopes: the prefix of their parameter names (the
// PyTorch twin's attributes) and the names of their optimisers in
// checkpoints.
const (
	genNet  = "generator"
	discNet = "discriminator"
)

// NewModel creates a model with DCGAN's initialisation: weights N(0, 0.02),
// BatchNorm scales N(1, 0.02), biases 0.
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ps := layers.NewParams()
	m := &Model{Arch: a, Params: ps}
	s := layers.NewScope(ps, rng).WithInit(layers.DCGANInit)
	w := a.Width
	g, d := s.In(genNet), s.In(discNet)
	m.gen.fc = g.Linear("fc", a.Z+a.Classes, a.flat())
	m.gen.bn0 = g.BatchNorm2d("bn0", 2*w)
	m.gen.up1 = g.ConvTranspose2d("up1", 2*w, w, 4, 2, 1, 0)
	m.gen.bn1 = g.BatchNorm2d("bn1", w)
	m.gen.up2 = g.ConvTranspose2d("up2", w, 1, 4, 2, 1, 0)
	m.disc.conv1 = d.Conv2d("conv1", 1+a.Classes, w, 4, 2, 1)
	m.disc.conv2 = d.Conv2d("conv2", w, 2*w, 4, 2, 1)
	if a.Variant != WGANGP {
		m.disc.bn2 = d.BatchNorm2d("bn2", 2*w)
	}
	m.disc.fc = d.Linear("fc", a.flat(), 1)
	return m, nil
}

// part returns the trainable parameters of one network (genNet or
// discNet).
func (m *Model) part(network string) []*layers.Param { return m.Params.TrainableIn(network) }

// generator builds G on z [N, Z+Classes] (labels one-hot in the last
// Classes columns), giving images [N, 1, 28, 28] in [-1, 1]. training
// selects batch statistics (and updates the running ones) in BatchNorm.
func (m *Model) generator(b *layers.Builder, z *G.Node, training bool) *G.Node {
	g, w := &m.gen, m.Arch.Width
	h := b.Reshape(g.fc.Forward(b, z), z.Shape()[0], 2*w, 7, 7)
	h = b.ReLU(g.bn0.Forward(b, h, training))
	h = b.ReLU(g.bn1.Forward(b, g.up1.Forward(b, h), training))
	return b.Tanh(g.up2.Forward(b, h))
}

// discriminator builds D on x [N, 1+Classes, 28, 28] (an image in [-1, 1]
// and, for a conditional model, one constant plane per class), giving a
// logit or critic score [N, 1].
func (m *Model) discriminator(b *layers.Builder, x *G.Node, training bool) *G.Node {
	d := &m.disc
	h := b.LeakyReLU(d.conv1.Forward(b, x), 0.2)
	h = d.conv2.Forward(b, h)
	if d.bn2 != nil {
		h = d.bn2.Forward(b, h, training)
	}
	h = b.Reshape(b.LeakyReLU(h, 0.2), x.Shape()[0], m.Arch.flat())
	return d.fc.Forward(b, h)
}
