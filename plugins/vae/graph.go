package vae

import (
	"fmt"

	"github.com/genpipe/genpipe/nn"
	G "gorgonia.org/gorgonia"
)

// trainGraph is the compiled training step for one batch size. Inputs are
// filled in place before each run: x is the (possibly corrupted) input, t
// the clean target in [0,1], eps the VAE's N(0, I) noise.
type trainGraph struct {
	prog      *nn.Program
	x, t, eps *G.Node
	n         int
}

// Outputs of a training program after the loss (output 0).
const (
	outRecon = 1 // Σ BCE / N: reconstruction, nats per image
	outKL    = 2 // KL(q(z|x) || N(0, I)) / N, VAE only
)

func (m *Model) buildTrain(n int) (*trainGraph, error) {
	a := m.Arch
	b := nn.NewBuilder()
	tg := &trainGraph{n: n}
	tg.x = b.Input("x", n, a.Channels, a.Size, a.Size)
	tg.t = b.Input("target", n, a.Channels, a.Size, a.Size)
	mu, logvar := m.encode(b, tg.x)
	z := mu
	var kl *G.Node
	if a.Variant == VAE {
		tg.eps = b.Input("eps", n, a.Latent)
		// The reparameterisation z = mu + exp(logvar/2)·eps keeps the
		// sample differentiable in mu and logvar.
		z = b.Apply("reparameterise", func() (*G.Node, error) {
			half, err := G.Mul(logvar, G.NewConstant(float32(0.5)))
			if err != nil {
				return nil, err
			}
			std, err := G.Exp(half)
			if err != nil {
				return nil, err
			}
			s, err := G.HadamardProd(std, tg.eps)
			if err != nil {
				return nil, err
			}
			return G.Add(mu, s)
		})
		// KL(N(mu, sigma²) || N(0, 1)) = -1/2 Σ (1 + logvar - mu² - exp(logvar)).
		kl = b.Apply("kl", func() (*G.Node, error) {
			ev, err := G.Exp(logvar)
			if err != nil {
				return nil, err
			}
			mu2, err := G.Square(mu)
			if err != nil {
				return nil, err
			}
			s, err := G.Sub(logvar, mu2)
			if err != nil {
				return nil, err
			}
			if s, err = G.Sub(s, ev); err != nil {
				return nil, err
			}
			sum, err := G.Sum(s)
			if err != nil {
				return nil, err
			}
			// Σ 1 over the N·latent terms, folded into a constant.
			sum, err = G.Add(sum, G.NewConstant(float32(n*a.Latent)))
			if err != nil {
				return nil, err
			}
			return G.Mul(sum, G.NewConstant(float32(-0.5/float64(n))))
		})
	}
	logits := m.decode(b, z)
	bce := b.BCEWithLogitsSum(logits, tg.t)
	recon := b.Apply("recon", func() (*G.Node, error) { return G.Mul(bce, G.NewConstant(float32(1/float64(n)))) })
	loss := recon
	outs := []*G.Node{recon}
	if kl != nil {
		loss = b.Apply("loss", func() (*G.Node, error) { return G.Add(recon, kl) })
		outs = append(outs, kl)
	}
	prog, err := nn.Compile(b, loss, m.Params.Trainable(), outs...)
	if err != nil {
		return nil, fmt.Errorf("build training graph: %w", err)
	}
	tg.prog = prog
	return tg, nil
}

// inferGraph is a compiled inference program for one batch size: encode
// (x -> mu[, logvar]) or decode (z -> pixels in [0,1]).
type inferGraph struct {
	prog *nn.Program
	in   *G.Node
	n    int
}

func (m *Model) buildEncode(n int) (*inferGraph, error) {
	a := m.Arch
	b := nn.NewBuilder()
	x := b.Input("x", n, a.Channels, a.Size, a.Size)
	mu, logvar := m.encode(b, x)
	outs := []*G.Node{mu}
	if logvar != nil {
		outs = append(outs, logvar)
	}
	prog, err := nn.Compile(b, nil, nil, outs...)
	if err != nil {
		return nil, fmt.Errorf("build encoder: %w", err)
	}
	return &inferGraph{prog: prog, in: x, n: n}, nil
}

func (m *Model) buildDecode(n int) (*inferGraph, error) {
	b := nn.NewBuilder()
	z := b.Input("z", n, m.Arch.Latent)
	px := b.Sigmoid(m.decode(b, z))
	prog, err := nn.Compile(b, nil, nil, px)
	if err != nil {
		return nil, fmt.Errorf("build decoder: %w", err)
	}
	return &inferGraph{prog: prog, in: z, n: n}, nil
}
