package layers

import (
	"fmt"

	"github.com/genpipe/genpipe/nn/ops"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Builder builds one expression graph. Errors are sticky, as in
// bufio.Writer: after the first failure every call returns nil and Err
// reports that failure with the name of the layer that caused it, so model
// code reads as a straight sequence of layers.
type Builder struct {
	// G is the graph being built.
	G      *G.ExprGraph
	nodes  map[*Param]*G.Node
	inputs int
	err    error
}

// NewBuilder starts a new graph.
func NewBuilder() *Builder {
	return &Builder{G: G.NewGraph(), nodes: map[*Param]*G.Node{}}
}

// Err is the first error met while building, or nil.
func (b *Builder) Err() error { return b.err }

// Fail records err (the first one wins) under the given context.
func (b *Builder) Fail(context string, err error) {
	if b.err == nil && err != nil {
		b.err = fmt.Errorf("%s: %w", context, err)
	}
}

func (b *Builder) ok(xs ...*G.Node) bool {
	if b.err != nil {
		return false
	}
	for _, x := range xs {
		if x == nil {
			b.err = fmt.Errorf("nn: nil node (an earlier layer failed without an error)")
			return false
		}
	}
	return true
}

// Param returns the graph node bound to p's storage, creating it once.
func (b *Builder) Param(p *Param) *G.Node {
	if b.err != nil {
		return nil
	}
	if n, ok := b.nodes[p]; ok {
		return n
	}
	n := G.NewTensor(b.G, G.Float32, len(p.Shape()), G.WithShape(p.Shape()...), G.WithName(p.Name), G.WithValue(p.Value))
	b.nodes[p] = n
	return n
}

// ParamNodes returns the nodes of the given parameters (creating them).
func (b *Builder) ParamNodes(ps []*Param) []*G.Node {
	out := make([]*G.Node, len(ps))
	for i, p := range ps {
		out[i] = b.Param(p)
	}
	return out
}

// Input creates a float32 input node of the given shape with its own
// storage, which callers fill before each run (see Data).
func (b *Builder) Input(name string, shape ...int) *G.Node {
	if b.err != nil {
		return nil
	}
	b.inputs++
	v := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	return G.NewTensor(b.G, G.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(v))
}

// Data returns the float32 storage bound to an input or parameter node.
func Data(n *G.Node) []float32 { return n.Value().Data().([]float32) }

// Apply runs a gorgonia constructor under the sticky error.
func (b *Builder) Apply(context string, fn func() (*G.Node, error)) *G.Node {
	if b.err != nil {
		return nil
	}
	n, err := fn()
	if err != nil {
		b.Fail(context, err)
		return nil
	}
	return n
}

// Conv2d applies a convolution with weight w [out, in, k, k] and optional
// bias [out] to x [N, in, H, W]. The bias is added in the convolution's
// own output pass (one op, not a second pass over the batch).
func (b *Builder) Conv2d(x *G.Node, w, bias *Param, stride, pad int) *G.Node {
	return b.conv2d(x, w, bias, stride, pad, false)
}

// Conv2dReLU is ReLU(Conv2d(x, w, bias, stride, pad)) with the bias and
// the ReLU fused into the convolution's output pass; bias is required.
// Besides the passes it saves, the pre-activation is never stored.
func (b *Builder) Conv2dReLU(x *G.Node, w, bias *Param, stride, pad int) *G.Node {
	if bias == nil {
		b.Fail("conv "+w.Name, fmt.Errorf("conv with fused ReLU needs a bias"))
		return nil
	}
	return b.conv2d(x, w, bias, stride, pad, true)
}

func (b *Builder) conv2d(x *G.Node, w, bias *Param, stride, pad int, relu bool) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s, ws := x.Shape(), w.Shape()
	ctx := "conv " + w.Name
	if len(s) != 4 || len(ws) != 4 || s[1] != ws[1] {
		b.Fail(ctx, fmt.Errorf("input %v does not match weight %v (want [N, %d, H, W])", s, ws, ws[1]))
		return nil
	}
	g, err := ops.NewConvGeom(s[0], s[1], s[2], s[3], ws[0], ws[2], ws[3], stride, stride, pad, pad)
	if err != nil {
		b.Fail(ctx, err)
		return nil
	}
	if bias == nil {
		return b.Apply(ctx, func() (*G.Node, error) { return ops.Conv2d(g, x, b.Param(w)) })
	}
	if bs := bias.Shape(); len(bs) != 1 || bs[0] != ws[0] {
		b.Fail(ctx, fmt.Errorf("bias: expected shape [%d], got %v", ws[0], bs))
		return nil
	}
	return b.Apply(ctx, func() (*G.Node, error) { return ops.Conv2dBias(g, x, b.Param(w), b.Param(bias), relu) })
}

// ConvTranspose2d applies a transposed convolution with weight
// w [in, out, k, k] (PyTorch's layout) and optional bias [out] to
// x [N, in, H, W]. The output size is (H-1)·stride - 2·pad + k, plus
// outPad (PyTorch's output_padding) to pick among the sizes a strided
// convolution maps to the same input size.
func (b *Builder) ConvTranspose2d(x *G.Node, w, bias *Param, stride, pad, outPad int) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s, ws := x.Shape(), w.Shape()
	ctx := "conv_transpose " + w.Name
	if len(s) != 4 || len(ws) != 4 || s[1] != ws[0] {
		b.Fail(ctx, fmt.Errorf("input %v does not match weight %v (want [N, %d, H, W])", s, ws, ws[0]))
		return nil
	}
	oh := (s[2]-1)*stride - 2*pad + ws[2] + outPad
	ow := (s[3]-1)*stride - 2*pad + ws[3] + outPad
	// The convolution this transposes maps [ws[1], oh, ow] to [ws[0], H, W].
	g, err := ops.NewConvGeom(s[0], ws[1], oh, ow, ws[0], ws[2], ws[3], stride, stride, pad, pad)
	if err == nil && (g.OH != s[2] || g.OW != s[3]) {
		err = fmt.Errorf("output padding %d gives %dx%d, which does not convolve back to %dx%d", outPad, oh, ow, s[2], s[3])
	}
	if err != nil {
		b.Fail(ctx, err)
		return nil
	}
	y := b.Apply(ctx, func() (*G.Node, error) { return ops.ConvTranspose2d(g, x, b.Param(w)) })
	return b.bias(ctx, y, bias)
}

// Linear computes x·wᵀ + bias for x [N, in], w [out, in] (PyTorch's layout).
func (b *Builder) Linear(x *G.Node, w, bias *Param) *G.Node {
	if !b.ok(x) {
		return nil
	}
	s, ws := x.Shape(), w.Shape()
	ctx := "linear " + w.Name
	if len(s) != 2 || len(ws) != 2 || s[1] != ws[1] {
		b.Fail(ctx, fmt.Errorf("input %v does not match weight %v (want [N, %d])", s, ws, ws[1]))
		return nil
	}
	y := b.Apply(ctx, func() (*G.Node, error) {
		return ops.MatMul(x, b.Param(w), false, true, s[0], ws[0], ws[1])
	})
	return b.bias(ctx, y, bias)
}

// MatMul computes op(a)·op(c) for 2-D nodes.
func (b *Builder) MatMul(a, c *G.Node, tA, tB bool) *G.Node {
	if !b.ok(a, c) {
		return nil
	}
	as, cs := a.Shape(), c.Shape()
	m, k := as[0], as[1]
	if tA {
		m, k = k, m
	}
	k2, n := cs[0], cs[1]
	if tB {
		k2, n = n, k2
	}
	if len(as) != 2 || len(cs) != 2 || k != k2 {
		b.Fail("matmul", fmt.Errorf("shapes %v and %v do not multiply (transposed: %v, %v)", as, cs, tA, tB))
		return nil
	}
	return b.Apply("matmul", func() (*G.Node, error) {
		return ops.MatMul(a, c, tA, tB, m, n, k)
	})
}

func (b *Builder) bias(ctx string, y *G.Node, bias *Param) *G.Node {
	if bias == nil || !b.ok(y) {
		return y
	}
	return b.AddChannel(y, b.Param(bias), ctx)
}

// AddChannel adds a [C] vector along axis 1 of x [N, C, ...].
func (b *Builder) AddChannel(x, v *G.Node, ctx string) *G.Node {
	if !b.ok(x, v) {
		return nil
	}
	s := x.Shape()
	if len(s) < 2 || v.Shape().TotalSize() != s[1] {
		b.Fail(ctx, fmt.Errorf("bias %v does not match channels of %v", v.Shape(), s))
		return nil
	}
	return b.Apply(ctx, func() (*G.Node, error) {
		return ops.AddChannel(x, v)
	})
}

// BCEWithLogitsSum is Σ softplus(l) − t·l over every element: the binary
// cross-entropy of sigmoid(l) against targets t, summed (a scalar node).
func (b *Builder) BCEWithLogitsSum(logits, targets *G.Node) *G.Node {
	if !b.ok(logits, targets) {
		return nil
	}
	if !logits.Shape().Eq(targets.Shape()) {
		b.Fail("bce", fmt.Errorf("logits %v and targets %v differ in shape", logits.Shape(), targets.Shape()))
		return nil
	}
	return b.Apply("bce", func() (*G.Node, error) {
		return ops.BCEWithLogitsSum(logits, targets)
	})
}

// LeakyReLU is x for x > 0, else alpha·x. The activations use the fused
// ops of nn/ops (gorgonia's allocate masks and run 5-15x slower);
// ReLU and LeakyReLU stay twice differentiable, Sigmoid and Tanh once.
func (b *Builder) LeakyReLU(x *G.Node, alpha float64) *G.Node {
	return b.Act(x, ops.ActLeakyReLU, alpha)
}

// ReLU is max(x, 0).
func (b *Builder) ReLU(x *G.Node) *G.Node { return b.Act(x, ops.ActReLU, 0) }

// Sigmoid is 1/(1+e^-x).
func (b *Builder) Sigmoid(x *G.Node) *G.Node { return b.Act(x, ops.ActSigmoid, 0) }

// Tanh is the hyperbolic tangent.
func (b *Builder) Tanh(x *G.Node) *G.Node { return b.Act(x, ops.ActTanh, 0) }

// Reshape changes the shape of x (same element count).
func (b *Builder) Reshape(x *G.Node, shape ...int) *G.Node {
	if !b.ok(x) {
		return nil
	}
	if x.Shape().TotalSize() != tensor.Shape(shape).TotalSize() {
		b.Fail("reshape", fmt.Errorf("cannot reshape %v (%d elements) to %v", x.Shape(), x.Shape().TotalSize(), shape))
		return nil
	}
	return b.Apply("reshape", func() (*G.Node, error) { return G.Reshape(x, tensor.Shape(shape)) })
}
