package vae

import (
	"fmt"

	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// trainGraph is a compiled loss program for one batch size: a training
// step (forward, backward) or, without gradients, an evaluation. Inputs are
// filled in place before each run: x is the (possibly corrupted) input, t
// the clean target in [0,1], eps the VAE's N(0, I) noise. The *Out fields
// are the output indexes of each value (-1: absent).
type trainGraph struct {
	prog                             *layers.Program
	x, t, eps                        *G.Node
	n                                int
	reconOut, klOut, pixOut, codeOut int
}

// buildLoss builds the loss on a batch of n: reconstruction as summed
// binary cross-entropy per image and, for a VAE, the KL term, so that
// recon + KL is the negative ELBO in nats per image. With train, gradients
// of recon + kl_weight·KL are added; otherwise the decoded pixels are an
// output instead.
func (m *Model) buildLoss(n int, train bool, klWeight float64) (*trainGraph, error) {
	a := m.Arch
	b := layers.NewBuilder()
	tg := &trainGraph{n: n, reconOut: -1, klOut: -1, pixOut: -1, codeOut: -1}
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
	outs := []*G.Node{recon}
	if kl != nil {
		outs = append(outs, kl)
	}
	var loss *G.Node
	if train {
		loss = recon
		if kl != nil {
			loss = b.Apply("loss", func() (*G.Node, error) {
				wkl, err := G.Mul(kl, G.NewConstant(float32(klWeight)))
				if err != nil {
					return nil, err
				}
				return G.Add(recon, wkl)
			})
		}
		if a.Variant != VAE {
			outs = append(outs, mu)
		}
	} else {
		outs = append(outs, b.Sigmoid(logits))
	}
	prog, err := layers.Compile(b, loss, m.Params.Trainable(), outs...)
	if err != nil {
		return nil, fmt.Errorf("build loss graph: %w", err)
	}
	i := 0
	if train {
		i = 1 // the loss
	}
	tg.reconOut, i = i, i+1
	if kl != nil {
		tg.klOut, i = i, i+1
	}
	if train && a.Variant != VAE {
		tg.codeOut = i
	}
	if !train {
		tg.pixOut = i
	}
	tg.prog = prog
	return tg, nil
}

// inferGraph is a compiled inference program for one batch size: encode
// (x -> mu[, logvar]) or decode (z -> pixels in [0,1]).
type inferGraph struct {
	prog *layers.Program
	in   *G.Node
	n    int
}

func (m *Model) buildEncode(n int) (*inferGraph, error) {
	a := m.Arch
	b := layers.NewBuilder()
	x := b.Input("x", n, a.Channels, a.Size, a.Size)
	mu, logvar := m.encode(b, x)
	outs := []*G.Node{mu}
	if logvar != nil {
		outs = append(outs, logvar)
	}
	prog, err := layers.Compile(b, nil, nil, outs...)
	if err != nil {
		return nil, fmt.Errorf("build encoder: %w", err)
	}
	return &inferGraph{prog: prog, in: x, n: n}, nil
}

func (m *Model) buildDecode(n int) (*inferGraph, error) {
	b := layers.NewBuilder()
	z := b.Input("z", n, m.Arch.Latent)
	px := b.Sigmoid(m.decode(b, z))
	prog, err := layers.Compile(b, nil, nil, px)
	if err != nil {
		return nil, fmt.Errorf("build decoder: %w", err)
	}
	return &inferGraph{prog: prog, in: z, n: n}, nil
}
