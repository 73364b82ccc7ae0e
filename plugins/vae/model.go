package vae

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// Variant is the member of the family a model is.
type Variant string

// The variants.
const (
	// AE is a plain autoencoder: a deterministic bottleneck.
	AE Variant = "ae"
	// DAE is a denoising autoencoder: an AE trained on corrupted inputs.
	DAE Variant = "dae"
	// VAE is a variational autoencoder (Kingma & Welling 2014).
	VAE Variant = "vae"
)

// Arch is the architecture: every hyperparameter that changes the shape of
// a weight. It is recorded in the weights' metadata.
//
//	| field     | meaning                                          | shipped |
//	|-----------|--------------------------------------------------|---------|
//	| Variant   | ae, dae or vae                                    |         |
//	| Channels  | input channels (1: grayscale)                     | 1       |
//	| Size      | input height = width; must be divisible by 4      | 28      |
//	| Width     | channels of the first conv; the second has 2x     | 32      |
//	| Latent    | latent dimensions                                 | 16 / 32 |
//
// Encoder: conv(Channels→W, 4, s2, p1) ReLU, conv(W→2W, 4, s2, p1) ReLU,
// flatten, then linear heads to the latent (the VAE has two: mean and
// log-variance). Decoder: linear(latent→2W·S/4·S/4) ReLU, reshape,
// convT(2W→W, 4, s2, p1) ReLU, convT(W→Channels, 4, s2, p1) to logits;
// pixels are sigmoid(logits). Parameter names follow the PyTorch twin in
// testdata/torch_vae.py (nn.Sequential indices).
type Arch struct {
	Variant  Variant `json:"variant"`
	Channels int     `json:"channels"`
	Size     int     `json:"size"`
	Width    int     `json:"width"`
	Latent   int     `json:"latent"`
}

// Validate checks the sizes.
func (a Arch) Validate() error {
	switch a.Variant {
	case AE, DAE, VAE:
	default:
		return fmt.Errorf("variant %q: want ae, dae or vae", a.Variant)
	}
	if a.Channels < 1 || a.Size < 4 || a.Size%4 != 0 || a.Width < 1 || a.Latent < 1 {
		return fmt.Errorf("architecture %+v: channels, width and latent must be positive and size a positive multiple of 4", a)
	}
	return nil
}

// Model is an architecture with its parameters.
type Model struct {
	Arch   Arch
	Params *layers.Params
}

func (a Arch) flat() int { return 2 * a.Width * (a.Size / 4) * (a.Size / 4) }

// NewModel creates a model initialised like PyTorch's default layers, from rng.
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ps := layers.NewParams()
	w := a.Width
	conv := func(name string, out, in, k int) {
		wt := ps.Add(name+".weight", out, in, k, k)
		rng.KaimingUniform(wt.Data(), in*k*k)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), in*k*k)
	}
	// PyTorch's ConvTranspose2d computes fan-in from weight.size(1)*k*k.
	convT := func(name string, in, out, k int) {
		wt := ps.Add(name+".weight", in, out, k, k)
		rng.KaimingUniform(wt.Data(), out*k*k)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), out*k*k)
	}
	linear := func(name string, out, in int) {
		rng.KaimingUniform(ps.Add(name+".weight", out, in).Data(), in)
		rng.KaimingUniform(ps.Add(name+".bias", out).Data(), in)
	}
	conv("encoder.0", w, a.Channels, 4)
	conv("encoder.2", 2*w, w, 4)
	linear("fc_mu", a.Latent, a.flat())
	if a.Variant == VAE {
		linear("fc_logvar", a.Latent, a.flat())
	}
	linear("decoder_fc", a.flat(), a.Latent)
	convT("decoder.0", 2*w, w, 4)
	convT("decoder.2", w, a.Channels, 4)
	if a.Variant != VAE {
		// An autoencoder has no prior to sample from; generate uses the
		// diagonal Gaussian of its training codes, tracked during training.
		ps.AddBuffer("latent_mean", a.Latent)
		std := ps.AddBuffer("latent_std", a.Latent)
		for i := range std.Data() {
			std.Data()[i] = 1
		}
	}
	return &Model{Arch: a, Params: ps}, nil
}

// latentStats returns the autoencoder's code statistics (nil for a VAE).
func (m *Model) latentStats() (mean, std []float32) {
	if p := m.Params.Get("latent_mean"); p != nil {
		return p.Data(), m.Params.Get("latent_std").Data()
	}
	return nil, nil
}

// JSON is the architecture as recorded in weights metadata ("arch").
func (a Arch) JSON() string {
	b, _ := json.Marshal(a)
	return string(b)
}

func expHalf(logvar float32) float64 { return math.Exp(0.5 * float64(logvar)) }

// encode builds the encoder on x [N, C, S, S]: the latent mean and, for a
// VAE, the log-variance.
func (m *Model) encode(b *layers.Builder, x *G.Node) (mu, logvar *G.Node) {
	p := m.Params.Get
	n := x.Shape()[0]
	h := b.ReLU(b.Conv2d(x, p("encoder.0.weight"), p("encoder.0.bias"), 2, 1))
	h = b.ReLU(b.Conv2d(h, p("encoder.2.weight"), p("encoder.2.bias"), 2, 1))
	h = b.Reshape(h, n, m.Arch.flat())
	mu = b.Linear(h, p("fc_mu.weight"), p("fc_mu.bias"))
	if m.Arch.Variant == VAE {
		logvar = b.Linear(h, p("fc_logvar.weight"), p("fc_logvar.bias"))
	}
	return mu, logvar
}

// decode builds the decoder on z [N, latent], giving logits [N, C, S, S].
func (m *Model) decode(b *layers.Builder, z *G.Node) *G.Node {
	p := m.Params.Get
	a := m.Arch
	n := z.Shape()[0]
	h := b.ReLU(b.Linear(z, p("decoder_fc.weight"), p("decoder_fc.bias")))
	h = b.Reshape(h, n, 2*a.Width, a.Size/4, a.Size/4)
	h = b.ReLU(b.ConvTranspose2d(h, p("decoder.0.weight"), p("decoder.0.bias"), 2, 1, 0))
	return b.ConvTranspose2d(h, p("decoder.2.weight"), p("decoder.2.bias"), 2, 1, 0)
}
