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

// Model is an architecture with its parameters and the layers that own
// them.
type Model struct {
	Arch   Arch
	Params *layers.Params
	enc    [2]*layers.Conv2d
	fcMu   *layers.Linear
	// fcLogvar is the VAE's log-variance head (nil for AE and DAE).
	fcLogvar *layers.Linear
	decFC    *layers.Linear
	dec      [2]*layers.ConvTranspose2d
	// latentMean and latentStd are an autoencoder's code statistics (nil
	// for a VAE).
	latentMean, latentStd *layers.Param
}

func (a Arch) flat() int { return 2 * a.Width * (a.Size / 4) * (a.Size / 4) }

// NewModel creates a model initialised like PyTorch's default layers, from rng.
func NewModel(a Arch, rng *nn.RNG) (*Model, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	ps := layers.NewParams()
	s := layers.NewScope(ps, rng)
	w := a.Width
	m := &Model{Arch: a, Params: ps}
	enc, dec := s.In("encoder"), s.In("decoder")
	m.enc[0] = enc.Conv2d("0", a.Channels, w, 4, 2, 1)
	m.enc[1] = enc.Conv2d("2", w, 2*w, 4, 2, 1)
	m.fcMu = s.Linear("fc_mu", a.flat(), a.Latent)
	if a.Variant == VAE {
		m.fcLogvar = s.Linear("fc_logvar", a.flat(), a.Latent)
	}
	m.decFC = s.Linear("decoder_fc", a.Latent, a.flat())
	m.dec[0] = dec.ConvTranspose2d("0", 2*w, w, 4, 2, 1, 0)
	m.dec[1] = dec.ConvTranspose2d("2", w, a.Channels, 4, 2, 1, 0)
	if a.Variant != VAE {
		// An autoencoder has no prior to sample from; generate uses the
		// diagonal Gaussian of its training codes, tracked during training.
		m.latentMean = s.Buffer("latent_mean", a.Latent)
		m.latentStd = s.Buffer("latent_std", a.Latent)
		for i := range m.latentStd.Data() {
			m.latentStd.Data()[i] = 1
		}
	}
	return m, nil
}

// latentStats returns the autoencoder's code statistics (nil for a VAE).
func (m *Model) latentStats() (mean, std []float32) {
	if m.latentMean != nil {
		return m.latentMean.Data(), m.latentStd.Data()
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
	h := b.ReLU(m.enc[0].Forward(b, x))
	h = b.ReLU(m.enc[1].Forward(b, h))
	h = b.Reshape(h, x.Shape()[0], m.Arch.flat())
	mu = m.fcMu.Forward(b, h)
	if m.fcLogvar != nil {
		logvar = m.fcLogvar.Forward(b, h)
	}
	return mu, logvar
}

// decode builds the decoder on z [N, latent], giving logits [N, C, S, S].
func (m *Model) decode(b *layers.Builder, z *G.Node) *G.Node {
	a := m.Arch
	h := b.ReLU(m.decFC.Forward(b, z))
	h = b.Reshape(h, z.Shape()[0], 2*a.Width, a.Size/4, a.Size/4)
	h = b.ReLU(m.dec[0].Forward(b, h))
	return m.dec[1].Forward(b, h)
}
