package gan

import (
	"fmt"

	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk"
	G "gorgonia.org/gorgonia"
)

// The GAN trains with separate graphs that share the model's parameter
// tensors (gorgonia cannot take two gradients of one graph whose losses
// share nodes): a generator pass that makes fakes as values, a critic step
// on real and fake values, and a generator step through the critic.

// sampler is G in eval mode (running BatchNorm statistics): z -> images.
type sampler struct {
	prog *layers.Program
	z    *G.Node
	n    int
}

func (m *Model) buildSampler(n int, training bool) (*sampler, error) {
	b := layers.NewBuilder()
	s := &sampler{n: n}
	s.z = b.Input("z", n, m.Arch.Z+m.Arch.Classes)
	x := m.generator(b, s.z, training)
	prog, err := layers.Compile(b, nil, nil, x)
	if err != nil {
		return nil, fmt.Errorf("build generator: %w", err)
	}
	s.prog = prog
	return s, nil
}

// images runs the sampler on generator inputs z (n rows of Z+Classes)
// and returns uint8 images [n 1 28 28].
func (s *sampler) images(z []float32) (*sdk.Tensor, error) {
	copy(layers.Data(s.z), z)
	if err := s.prog.Run(); err != nil {
		return nil, err
	}
	out := sdk.NewTensor(sdk.Uint8, s.n, 1, Size, Size)
	for i, v := range s.prog.Output(0) {
		out.Data[i] = uint8(max(0, min(255, (v+1)*127.5+0.5)))
	}
	return out, nil
}

// critic is one critic (discriminator) step: inputs real and fake images
// in [-1, 1], the label planes of a conditional model, and for WGAN-GP the
// interpolates. Outputs: the loss, then the mean scores of real and fake.
type critic struct {
	prog               *layers.Program
	real, fake, planes *G.Node
	interp             *G.Node
	ones, zeros        *G.Node
	n                  int
	outReal, outFake   int
	outPenalty         int
}

// withPlanes appends the label planes to an image batch for a conditional
// model.
func (m *Model) withPlanes(b *layers.Builder, x, planes *G.Node) *G.Node {
	if planes == nil {
		return x
	}
	return b.ConcatChannels(x, planes)
}

func mean(b *layers.Builder, x *G.Node) *G.Node {
	return b.Apply("mean", func() (*G.Node, error) { return G.Mean(x) })
}

func scale(b *layers.Builder, x *G.Node, k float64) *G.Node {
	return b.Apply("scale", func() (*G.Node, error) { return G.Mul(x, G.NewConstant(float32(k))) })
}

func add(b *layers.Builder, x, y *G.Node) *G.Node {
	return b.Apply("add", func() (*G.Node, error) { return G.Add(x, y) })
}

func sub(b *layers.Builder, x, y *G.Node) *G.Node {
	return b.Apply("sub", func() (*G.Node, error) { return G.Sub(x, y) })
}

func (m *Model) buildCritic(n int, lambda float64) (*critic, error) {
	a := m.Arch
	b := layers.NewBuilder()
	c := &critic{n: n, outPenalty: -1}
	c.real = b.Input("real", n, 1, Size, Size)
	c.fake = b.Input("fake", n, 1, Size, Size)
	if a.Classes > 0 {
		c.planes = b.Input("planes", n, a.Classes, Size, Size)
	}
	dReal := m.discriminator(b, m.withPlanes(b, c.real, c.planes), true)
	dFake := m.discriminator(b, m.withPlanes(b, c.fake, c.planes), true)
	mReal, mFake := mean(b, dReal), mean(b, dFake)
	var loss, penalty *G.Node
	switch a.Variant {
	case DCGAN, CGAN:
		// -[log D(x) + log(1 - D(G(z)))] = BCE(D(x), 1) + BCE(D(G(z)), 0).
		c.ones, c.zeros = b.Input("ones", n, 1), b.Input("zeros", n, 1)
		for i := range layers.Data(c.ones) {
			layers.Data(c.ones)[i] = 1
		}
		loss = scale(b, add(b, b.BCEWithLogitsSum(dReal, c.ones), b.BCEWithLogitsSum(dFake, c.zeros)), 1/float64(n))
	default:
		// The critic maximises E[D(x)] - E[D(G(z))].
		loss = sub(b, mFake, mReal)
	}
	if a.Variant == WGANGP {
		c.interp = b.Input("interpolates", n, 1, Size, Size)
		dHat := m.discriminator(b, m.withPlanes(b, c.interp, c.planes), true)
		penalty = b.Apply("gradient penalty", func() (*G.Node, error) {
			s, err := G.Sum(dHat)
			if err != nil {
				return nil, err
			}
			gx, err := G.Grad(s, c.interp)
			if err != nil {
				return nil, err
			}
			flat, err := G.Reshape(gx[0], []int{n, Size * Size})
			if err != nil {
				return nil, err
			}
			sq, err := G.Square(flat)
			if err != nil {
				return nil, err
			}
			ss, err := G.Sum(sq, 1)
			if err != nil {
				return nil, err
			}
			// A tiny epsilon keeps the norm's derivative finite at 0.
			ss, err = G.Add(ss, G.NewConstant(float32(1e-12)))
			if err != nil {
				return nil, err
			}
			norm, err := G.Sqrt(ss)
			if err != nil {
				return nil, err
			}
			d, err := G.Sub(norm, G.NewConstant(float32(1)))
			if err != nil {
				return nil, err
			}
			d2, err := G.Square(d)
			if err != nil {
				return nil, err
			}
			return G.Mean(d2)
		})
		loss = add(b, loss, scale(b, penalty, lambda))
	}
	outs := []*G.Node{mReal, mFake}
	if penalty != nil {
		outs = append(outs, penalty)
		c.outPenalty = 3
	}
	prog, err := layers.Compile(b, loss, m.part(discNet), outs...)
	if err != nil {
		return nil, fmt.Errorf("build critic step: %w", err)
	}
	c.prog, c.outReal, c.outFake = prog, 1, 2
	return c, nil
}

// genStep is one generator step through the critic: input z (with the
// one-hot labels) and the label planes; outputs the loss, then the mean
// critic score of the fakes and the fakes themselves.
type genStep struct {
	prog      *layers.Program
	z, planes *G.Node
	ones      *G.Node
	n         int
}

func (m *Model) buildGenStep(n int, minimax bool) (*genStep, error) {
	a := m.Arch
	b := layers.NewBuilder()
	g := &genStep{n: n}
	g.z = b.Input("z", n, a.Z+a.Classes)
	if a.Classes > 0 {
		g.planes = b.Input("planes", n, a.Classes, Size, Size)
	}
	fake := m.generator(b, g.z, true)
	score := m.discriminator(b, m.withPlanes(b, fake, g.planes), true)
	var loss *G.Node
	switch {
	case a.Variant == WGAN || a.Variant == WGANGP:
		loss = scale(b, mean(b, score), -1)
	case minimax:
		// Minimise log(1 - D(G(z))) = -BCE(D(G(z)), 0).
		g.ones = b.Input("zeros", n, 1)
		loss = scale(b, b.BCEWithLogitsSum(score, g.ones), -1/float64(n))
	default:
		// Non-saturating: maximise log D(G(z)), i.e. minimise BCE(D(G(z)), 1).
		g.ones = b.Input("ones", n, 1)
		for i := range layers.Data(g.ones) {
			layers.Data(g.ones)[i] = 1
		}
		loss = scale(b, b.BCEWithLogitsSum(score, g.ones), 1/float64(n))
	}
	prog, err := layers.Compile(b, loss, m.part(genNet), mean(b, score), fake)
	if err != nil {
		return nil, fmt.Errorf("build generator step: %w", err)
	}
	g.prog = prog
	return g, nil
}
