package cyclegan

import (
	"fmt"

	"github.com/genpipe/genpipe/nn/layers"
	G "gorgonia.org/gorgonia"
)

// The family trains with separate graphs that share the model's parameter
// tensors (gorgonia cannot take two gradients of one graph whose losses
// share nodes): a generator step through the (fixed) discriminators, which
// also yields the fakes as values, and a discriminator step on real images
// and fakes drawn from the history pool.

// Direction names a generator: "a2b" is G (A -> B), "b2a" is F (B -> A).
type Direction string

// The directions.
const (
	AtoB Direction = "a2b"
	BtoA Direction = "b2a"
)

// gen returns the generator of direction d, or nil (pix2pix has no b2a).
func (m *Model) gen(d Direction) *generator {
	if d == BtoA {
		return m.gBA
	}
	return m.gAB
}

// channels returns the input and output channels of direction d.
func (m *Model) channels(d Direction) (in, out int) {
	if d == BtoA {
		return m.Arch.B, m.Arch.A
	}
	return m.Arch.A, m.Arch.B
}

// translator runs one generator: x [n, in, h, w] in [-1, 1] -> [n, out, h, w].
type translator struct {
	prog    *layers.Program
	x       *G.Node
	ms      masks
	n, h, w int
	in, out int
}

func (m *Model) buildTranslator(d Direction, n, h, w int) (*translator, error) {
	g := m.gen(d)
	if g == nil {
		return nil, fmt.Errorf("%s model has no %s generator", m.Arch.Kind, d)
	}
	if err := m.Arch.CheckSize(h, w); err != nil {
		return nil, err
	}
	in, out := m.channels(d)
	b := layers.NewBuilder()
	t := &translator{n: n, h: h, w: w, in: in, out: out}
	t.x = b.Input("x", n, in, h, w)
	y := g.forward(b, t.x, &t.ms)
	prog, err := layers.Compile(b, nil, nil, y)
	if err != nil {
		return nil, fmt.Errorf("build %s generator: %w", d, err)
	}
	t.prog = prog
	return t, nil
}

// run translates x (n·in·h·w values in [-1, 1]) with per-item dropout
// seeds (pix2pix) and returns the output values.
func (t *translator) run(x []float32, seeds []uint64) ([]float32, error) {
	copy(layers.Data(t.x), x)
	if err := t.ms.fill(seeds); err != nil {
		return nil, err
	}
	if err := t.prog.Run(); err != nil {
		return nil, err
	}
	return t.prog.Output(0), nil
}

// filled is an input node of constant value v (a GAN target).
func filled(b *layers.Builder, name string, v float32, shape ...int) *G.Node {
	n := b.Input(name, shape...)
	if n != nil {
		for i := range layers.Data(n) {
			layers.Data(n)[i] = v
		}
	}
	return n
}

// ganTarget makes the constant target of scores s.
func ganTarget(b *layers.Builder, name string, s *G.Node, v float32) *G.Node {
	if s == nil {
		return nil
	}
	return filled(b, name, v, s.Shape()...)
}

// loss terms are outputs after the total: their names, in order.
type terms struct {
	names []string
	nodes []*G.Node
}

func (t *terms) add(name string, n *G.Node) *G.Node {
	t.names = append(t.names, name)
	t.nodes = append(t.nodes, n)
	return n
}

// sum adds weighted terms into one scalar.
func sum(b *layers.Builder, xs []*G.Node, ws []float64) *G.Node {
	var total *G.Node
	for i, x := range xs {
		if ws[i] == 0 {
			continue
		}
		if ws[i] != 1 {
			x = b.Scale(x, ws[i])
		}
		if total == nil {
			total = x
		} else {
			total = b.Add(total, x)
		}
	}
	return total
}

// cycleGStep is CycleGAN's generator step on real a [n, A, h, w] and
// b [n, B, h, w]: LSGAN losses of G(a) under D_B and F(b) under D_A, the
// cycle losses λ|F(G(a)) - a| and λ|G(F(b)) - b|, and the identity losses
// λ·idt|G(b) - b| and λ·idt|F(a) - a|. Outputs: the loss, the terms, then
// the fakes G(a) and F(b).
type cycleGStep struct {
	prog         *layers.Program
	params       []*layers.Param // what prog differentiates, in order
	a, b         *G.Node
	terms        []string
	fakeB, fakeA int // output indices
	n, h, w      int
}

func (m *Model) buildCycleG(n, h, w int, lambda, identity float64) (*cycleGStep, error) {
	if err := m.Arch.CheckSize(h, w); err != nil {
		return nil, err
	}
	a := m.Arch
	b := layers.NewBuilder()
	st := &cycleGStep{n: n, h: h, w: w}
	st.a = b.Input("real_a", n, a.A, h, w)
	st.b = b.Input("real_b", n, a.B, h, w)
	var ms masks
	fakeB := m.gAB.forward(b, st.a, &ms)
	fakeA := m.gBA.forward(b, st.b, &ms)
	recA := m.gBA.forward(b, fakeB, &ms)
	recB := m.gAB.forward(b, fakeA, &ms)
	sB := m.dB.forward(b, fakeB)
	sA := m.dA.forward(b, fakeA)
	var t terms
	gAB := t.add("g_ab", b.MSE(sB, ganTarget(b, "ones_b", sB, 1)))
	gBA := t.add("g_ba", b.MSE(sA, ganTarget(b, "ones_a", sA, 1)))
	cycA := t.add("cycle_a", b.L1(recA, st.a))
	cycB := t.add("cycle_b", b.L1(recB, st.b))
	xs := []*G.Node{gAB, gBA, cycA, cycB}
	ws := []float64{1, 1, lambda, lambda}
	if identity > 0 {
		if a.A != a.B {
			return nil, fmt.Errorf("the identity loss needs domains of equal channels (A has %d, B %d); set identity: 0", a.A, a.B)
		}
		idtB := t.add("idt_b", b.L1(m.gAB.forward(b, st.b, &ms), st.b))
		idtA := t.add("idt_a", b.L1(m.gBA.forward(b, st.a, &ms), st.a))
		xs = append(xs, idtB, idtA)
		ws = append(ws, lambda*identity, lambda*identity)
	}
	loss := sum(b, xs, ws)
	outs := append(t.nodes, fakeB, fakeA)
	st.terms = t.names
	st.fakeB, st.fakeA = 1+len(t.nodes), 2+len(t.nodes)
	params := append(m.Params.TrainableIn(genAB), m.Params.TrainableIn(genBA)...)
	prog, err := layers.Compile(b, loss, params, outs...)
	if err != nil {
		return nil, fmt.Errorf("build generator step: %w", err)
	}
	st.prog, st.params = prog, params
	return st, nil
}

// cycleDStep is CycleGAN's discriminator step: for each domain, half the
// LSGAN loss (D(real) - 1)² + D(fake)², the fakes drawn from the history
// pool. Outputs: the loss, then d_a and d_b.
type cycleDStep struct {
	prog                       *layers.Program
	params                     []*layers.Param
	realA, realB, fakeA, fakeB *G.Node
	n, h, w                    int
}

func (m *Model) buildCycleD(n, h, w int) (*cycleDStep, error) {
	a := m.Arch
	b := layers.NewBuilder()
	st := &cycleDStep{n: n, h: h, w: w}
	st.realA = b.Input("real_a", n, a.A, h, w)
	st.realB = b.Input("real_b", n, a.B, h, w)
	st.fakeA = b.Input("fake_a", n, a.A, h, w)
	st.fakeB = b.Input("fake_b", n, a.B, h, w)
	lsgan := func(d *discriminator, real, fake *G.Node, name string) *G.Node {
		sr, sf := d.forward(b, real), d.forward(b, fake)
		lr := b.MSE(sr, ganTarget(b, name+"_ones", sr, 1))
		lf := b.MSE(sf, ganTarget(b, name+"_zeros", sf, 0))
		return b.Scale(b.Add(lr, lf), 0.5)
	}
	dA := lsgan(m.dA, st.realA, st.fakeA, "d_a")
	dB := lsgan(m.dB, st.realB, st.fakeB, "d_b")
	params := append(m.Params.TrainableIn(discA), m.Params.TrainableIn(discB)...)
	prog, err := layers.Compile(b, b.Add(dA, dB), params, dA, dB)
	if err != nil {
		return nil, fmt.Errorf("build discriminator step: %w", err)
	}
	st.prog, st.params = prog, params
	return st, nil
}

// bceMean is the mean binary cross-entropy of sigmoid(logits) against a
// constant target v (pix2pix's vanilla GAN loss).
func bceMean(b *layers.Builder, logits *G.Node, name string, v float32) *G.Node {
	if logits == nil {
		return nil
	}
	s := b.BCEWithLogitsSum(logits, ganTarget(b, name, logits, v))
	return b.Scale(s, 1/float64(logits.Shape().TotalSize()))
}

// pixGStep is pix2pix's generator step on (x, y): the cGAN loss of
// D(x, G(x)) against "real" plus λ|G(x) - y|. Outputs: the loss, the
// terms, then G(x).
type pixGStep struct {
	prog    *layers.Program
	params  []*layers.Param
	x, y    *G.Node
	ms      masks
	terms   []string
	fake    int
	n, h, w int
}

func (m *Model) buildPixG(n, h, w int, lambda float64) (*pixGStep, error) {
	if err := m.Arch.CheckSize(h, w); err != nil {
		return nil, err
	}
	a := m.Arch
	b := layers.NewBuilder()
	st := &pixGStep{n: n, h: h, w: w}
	st.x = b.Input("x", n, a.A, h, w)
	st.y = b.Input("y", n, a.B, h, w)
	fake := m.gAB.forward(b, st.x, &st.ms)
	s := m.dB.forward(b, b.ConcatChannels(st.x, fake))
	var t terms
	gan := t.add("g_gan", bceMean(b, s, "ones", 1))
	l1 := t.add("g_l1", b.L1(fake, st.y))
	loss := sum(b, []*G.Node{gan, l1}, []float64{1, lambda})
	st.terms = t.names
	st.fake = 1 + len(t.nodes)
	st.params = m.Params.TrainableIn(genAB)
	prog, err := layers.Compile(b, loss, st.params, append(t.nodes, fake)...)
	if err != nil {
		return nil, fmt.Errorf("build generator step: %w", err)
	}
	st.prog = prog
	return st, nil
}

// pixDStep is pix2pix's discriminator step: half the cGAN loss of
// D(x, y) against "real" plus D(x, G(x)) against "fake".
type pixDStep struct {
	prog       *layers.Program
	params     []*layers.Param
	x, y, fake *G.Node
	n, h, w    int
}

func (m *Model) buildPixD(n, h, w int) (*pixDStep, error) {
	a := m.Arch
	b := layers.NewBuilder()
	st := &pixDStep{n: n, h: h, w: w}
	st.x = b.Input("x", n, a.A, h, w)
	st.y = b.Input("y", n, a.B, h, w)
	st.fake = b.Input("fake", n, a.B, h, w)
	real := bceMean(b, m.dB.forward(b, b.ConcatChannels(st.x, st.y)), "ones", 1)
	fake := bceMean(b, m.dB.forward(b, b.ConcatChannels(st.x, st.fake)), "zeros", 0)
	loss := b.Scale(b.Add(real, fake), 0.5)
	st.params = m.Params.TrainableIn(discB)
	prog, err := layers.Compile(b, loss, st.params, real, fake)
	if err != nil {
		return nil, fmt.Errorf("build discriminator step: %w", err)
	}
	st.prog = prog
	return st, nil
}
