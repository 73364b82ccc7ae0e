package flow

import (
	"fmt"
	"math"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/ops"
	G "gorgonia.org/gorgonia"
)

// squeeze is Glow's 2x2 space to depth: x[n, c, 2i+a, 2j+b] goes to
// channel 4c + 2a + b of [N, 4C, H/2, W/2].
func squeeze(b *layers.Builder, x *G.Node) *G.Node {
	s := x.Shape()
	n, c, h, w := s[0], s[1], s[2], s[3]
	y := b.Reshape(x, n, c, h/2, 2, w/2, 2)
	y = b.Apply("squeeze", func() (*G.Node, error) { return G.Transpose(y, 0, 1, 3, 5, 2, 4) })
	return b.Reshape(y, n, 4*c, h/2, w/2)
}

// unsqueeze inverts squeeze.
func unsqueeze(b *layers.Builder, x *G.Node) *G.Node {
	s := x.Shape()
	n, c, h, w := s[0], s[1]/4, s[2], s[3]
	y := b.Reshape(x, n, c, 2, 2, h, w)
	y = b.Apply("unsqueeze", func() (*G.Node, error) { return G.Transpose(y, 0, 1, 4, 2, 5, 3) })
	return b.Reshape(y, n, c, 2*h, 2*w)
}

// channels is x[:, lo:hi].
func channels(b *layers.Builder, x *G.Node, lo, hi int) *G.Node {
	if b.Err() != nil || x == nil {
		return nil
	}
	return b.Apply("slice channels", func() (*G.Node, error) { return ops.SliceChannels(x, lo, hi) })
}

func (m *Model) conv(b *layers.Builder, x *G.Node, name string, pad int) *G.Node {
	return b.Conv2d(x, m.p(name+".weight"), m.p(name+".bias"), 1, pad)
}

// couplingNet is NN(x_a) [N, 2·Cb, H, W]: the shift t in its first Cb
// channels, the pre-sigmoid scale r in the others.
func (m *Model) couplingNet(b *layers.Builder, xa *G.Node, name string) *G.Node {
	h := b.Conv2dReLU(xa, m.p(name+".conv1.weight"), m.p(name+".conv1.bias"), 1, 1)
	h = b.Conv2dReLU(h, m.p(name+".conv2.weight"), m.p(name+".conv2.bias"), 1, 0)
	return m.conv(b, h, name+".conv3", 1)
}

// couplingShift is the constant added to r before the sigmoid (Glow's
// sigmoid(r + 2), so that a zero-initialised coupling starts near the
// identity).
const couplingShift = 2

// couplingSplit is t and r + 2 of the coupling network's output h.
func couplingSplit(b *layers.Builder, h *G.Node, cb int) (t, r2 *G.Node) {
	t = channels(b, h, 0, cb)
	r := channels(b, h, cb, 2*cb)
	r2 = b.Apply("coupling r+2", func() (*G.Node, error) { return G.Add(r, G.NewConstant(float32(couplingShift))) })
	return t, r2
}

// gaussLogp is Σ log N(z; mean, exp(logs)²) per sample:
// −½·Σ(log 2π + 2·logs + (z − mean)²·exp(−2·logs)), one fused op; p
// holds the means in its first channels and logs in the others.
func gaussLogp(b *layers.Builder, z, p *G.Node) *G.Node {
	if b.Err() != nil || z == nil || p == nil {
		return nil
	}
	return b.Apply("gaussian log-density", func() (*G.Node, error) { return ops.GaussianLogDensity(z, p) })
}

// broadcastItems repeats p [shape...] for n items: [n, shape...].
func broadcastItems(b *layers.Builder, p *G.Node, n int) *G.Node {
	if b.Err() != nil || p == nil {
		return nil
	}
	shape := p.Shape()
	k := shape.TotalSize()
	ones := b.Input(fmt.Sprintf("ones%d", n), n, 1)
	for i := range layers.Data(ones) {
		layers.Data(ones)[i] = 1
	}
	y := b.MatMul(ones, b.Reshape(p, 1, k), false, false)
	return b.Reshape(y, append([]int{n}, shape...)...)
}

// forward is the flow on y [N, Ch, Size, Size] (dequantised images in
// [-0.5, 0.5]): the latents of each level in order, the log-determinant
// of the whole map per sample, and log p(y) per sample (nats).
type forward struct {
	zs     []*G.Node
	logdet *G.Node
	logp   *G.Node
	// actIn are the inputs of every actnorm, in order (for the
	// data-dependent initialisation).
	actIn []*G.Node
}

func (m *Model) forward(b *layers.Builder, y *G.Node) forward {
	a := m.Arch
	n := y.Shape()[0]
	var f forward
	h := y
	var constLD *G.Node // Σ over actnorms and 1x1 convs of H·W·Σ logs
	addConst := func(v *G.Node, hw int) {
		v = b.Apply("logdet", func() (*G.Node, error) { return G.Mul(v, G.NewConstant(float32(hw))) })
		if constLD == nil {
			constLD = v
		} else {
			constLD = b.Apply("logdet", func() (*G.Node, error) { return G.Add(constLD, v) })
		}
	}
	var sampleLD, prior *G.Node
	addTo := func(acc **G.Node, v *G.Node) {
		if *acc == nil {
			*acc = v
		} else {
			*acc = b.Add(*acc, v)
		}
	}
	for l, lv := range a.levels() {
		if lv.squeeze {
			h = squeeze(b, h)
		}
		hw := lv.s * lv.s
		for k := 0; k < a.Steps; k++ {
			name := stepName(l, k)
			f.actIn = append(f.actIn, h)
			logs := b.Param(m.p(name + ".actnorm.logs"))
			h = b.AddChannel(h, b.Param(m.p(name+".actnorm.bias")), "actnorm")
			h = b.ScaleChannel(h, b.Apply("actnorm exp", func() (*G.Node, error) { return G.Exp(logs) }))
			addConst(b.Apply("actnorm logdet", func() (*G.Node, error) { return G.Sum(logs) }), hw)
			w, ld := m.invconvWeight(b, name+".invconv", lv.c)
			h = b.Apply("invconv", func() (*G.Node, error) {
				g, err := ops.NewConvGeom(n, lv.c, lv.s, lv.s, lv.c, 1, 1, 1, 1, 0, 0)
				if err != nil {
					return nil, err
				}
				return ops.Conv2d(g, h, w)
			})
			addConst(ld, hw)
			// y = [x_a, (x_b + t)·sigmoid(r + 2)] and its log-determinant
			// Σ log sigmoid(r + 2), each one fused op reading x and NN(x_a)
			// in place (no split of x or of NN's output, no concatenation).
			nh := m.couplingNet(b, channels(b, h, 0, lv.c/2), name+".coupling")
			xin := h
			h = b.Apply("coupling", func() (*G.Node, error) { return ops.AffineCoupling(xin, nh, couplingShift) })
			addTo(&sampleLD, b.Apply("coupling logdet", func() (*G.Node, error) { return ops.CouplingLogDet(nh, couplingShift) }))
		}
		if lv.split {
			cz := lv.c / 2
			z, rest := channels(b, h, 0, cz), channels(b, h, cz, lv.c)
			pr := m.conv(b, rest, fmt.Sprintf("levels.%d.prior", l), 1)
			addTo(&prior, gaussLogp(b, z, pr))
			f.zs = append(f.zs, z)
			h = rest
		} else {
			mean := broadcastItems(b, b.Param(m.p("top.mean")), n)
			logs := broadcastItems(b, b.Param(m.p("top.logs")), n)
			addTo(&prior, gaussLogp(b, h, b.ConcatChannels(mean, logs)))
			f.zs = append(f.zs, h)
		}
	}
	f.logdet = b.Apply("logdet", func() (*G.Node, error) { return G.Add(sampleLD, constLD) })
	f.logp = b.Add(prior, f.logdet)
	return f
}

// BitsPerDim converts log p(y) of a dequantised image (y = (x + u)/256 −
// ½) to bits per dimension of the 8-bit image: (−log p(y) + D·log 256) /
// (D·ln 2).
func BitsPerDim(logp float64, dims int) float64 {
	return (-logp + float64(dims)*math.Log(256)) / (float64(dims) * math.Ln2)
}

// inverse is the flow run backwards: from the latents of every level (in
// the order forward returns them) to y. With sample set, the latents are
// instead the standard normal draws ε of each level, and each level's
// latent is mean + exp(logs)·ε·temperature under its prior.
type inverse struct {
	zs   []*G.Node // inputs, one per level
	temp *G.Node   // [1] temperature (sample mode)
	winv []*G.Node // inputs: each step's W⁻¹, level by level, step by step
	y    *G.Node
}

func (m *Model) inverse(b *layers.Builder, n int, sample bool) *inverse {
	a := m.Arch
	inv := &inverse{}
	for i, s := range a.latentShapes() {
		inv.zs = append(inv.zs, b.Input(fmt.Sprintf("z%d", i), n, s[0], s[1], s[2]))
	}
	if sample {
		inv.temp = b.Input("temperature", 1)
	}
	// draw turns ε into mean + exp(logs)·ε·T.
	draw := func(eps, mean, logs *G.Node) *G.Node {
		return b.Apply("prior sample", func() (*G.Node, error) {
			sd, err := G.Exp(logs)
			if err != nil {
				return nil, err
			}
			t, err := G.Reshape(inv.temp, nil)
			if err != nil {
				return nil, err
			}
			e, err := G.Mul(eps, t)
			if err != nil {
				return nil, err
			}
			p, err := G.HadamardProd(e, sd)
			if err != nil {
				return nil, err
			}
			return G.Add(p, mean)
		})
	}
	lvs := a.levels()
	winv := make([][]*G.Node, len(lvs))
	for l, lv := range lvs {
		for k := 0; k < a.Steps; k++ {
			w := b.Input(stepName(l, k)+".winv", lv.c, lv.c, 1, 1)
			winv[l] = append(winv[l], w)
			inv.winv = append(inv.winv, w)
		}
	}
	var h *G.Node
	for l := len(lvs) - 1; l >= 0; l-- {
		lv := lvs[l]
		z := inv.zs[l]
		if lv.split {
			cz := lv.c / 2
			if sample {
				pr := m.conv(b, h, fmt.Sprintf("levels.%d.prior", l), 1)
				z = draw(z, channels(b, pr, 0, cz), channels(b, pr, cz, 2*cz))
			}
			h = b.ConcatChannels(z, h)
		} else {
			if sample {
				z = draw(z, broadcastItems(b, b.Param(m.p("top.mean")), n), broadcastItems(b, b.Param(m.p("top.logs")), n))
			}
			h = z
		}
		for k := a.Steps - 1; k >= 0; k-- {
			name := stepName(l, k)
			ca, cb := lv.c/2, lv.c-lv.c/2
			xa, yb := channels(b, h, 0, ca), channels(b, h, ca, lv.c)
			t, r2 := couplingSplit(b, m.couplingNet(b, xa, name+".coupling"), cb)
			xb := b.Apply("coupling inverse", func() (*G.Node, error) {
				s, err := G.Sigmoid(r2)
				if err != nil {
					return nil, err
				}
				q, err := G.HadamardDiv(yb, s)
				if err != nil {
					return nil, err
				}
				return G.Sub(q, t)
			})
			h = b.ConcatChannels(xa, xb)
			w := winv[l][k]
			hh := h
			h = b.Apply("invconv inverse", func() (*G.Node, error) {
				g, err := ops.NewConvGeom(n, lv.c, lv.s, lv.s, lv.c, 1, 1, 1, 1, 0, 0)
				if err != nil {
					return nil, err
				}
				return ops.Conv2d(g, hh, w)
			})
			logs := b.Param(m.p(name + ".actnorm.logs"))
			h = b.ScaleChannel(h, b.Apply("actnorm inverse", func() (*G.Node, error) {
				ng, err := G.Neg(logs)
				if err != nil {
					return nil, err
				}
				return G.Exp(ng)
			}))
			bias := b.Param(m.p(name + ".actnorm.bias"))
			h = b.AddChannel(h, b.Apply("actnorm inverse", func() (*G.Node, error) { return G.Neg(bias) }), "actnorm inverse")
		}
		if lv.squeeze {
			h = unsqueeze(b, h)
		}
	}
	inv.y = h
	return inv
}

// fillInverses writes every step's W⁻¹ into the inverse graph's inputs.
func (m *Model) fillInverses(inv *inverse) {
	i := 0
	for l, lv := range m.Arch.levels() {
		for k := 0; k < m.Arch.Steps; k++ {
			copy(layers.Data(inv.winv[i]), m.invconvInverse(stepName(l, k)+".invconv", lv.c))
			i++
		}
	}
}
