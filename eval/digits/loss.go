package digits

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/ops"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SoftmaxCrossEntropy is the mean over the N rows of logits [N, K] of the
// cross-entropy −Σ_k t_k·log softmax(l)_k against targets [N, K] (one-hot
// labels or any distribution), a scalar node differentiated in the logits
// only: PyTorch's F.cross_entropy with probability targets. It is one
// fused op, like nn's losses, computed in float64 per row with the maximum
// logit factored out, so confident logits (±1000 in the tests) neither
// overflow nor lose the loss.
func SoftmaxCrossEntropy(b *layers.Builder, logits, targets *G.Node) *G.Node {
	if b.Err() != nil {
		return nil
	}
	if logits == nil || targets == nil {
		b.Fail("softmax_cross_entropy", fmt.Errorf("nil input node"))
		return nil
	}
	s := logits.Shape()
	if len(s) != 2 || s[0] < 1 || s[1] < 1 || !s.Eq(targets.Shape()) {
		b.Fail("softmax_cross_entropy", fmt.Errorf("logits %v and targets %v: want equal [N, K] shapes", s, targets.Shape()))
		return nil
	}
	return b.Apply("softmax_cross_entropy", func() (*G.Node, error) {
		return G.ApplyOp(newXentOp(s[0], s[1]), logits, targets)
	})
}

// xentOp is SoftmaxCrossEntropy's forward op. Its derivative in the logits
// is (softmax(l)·Σt − t)·g/N (xentGradOp).
type xentOp struct {
	ops.Base
	n, k int
}

func newXentOp(n, k int) xentOp {
	return xentOp{Base: ops.NewBase(2, "SoftmaxCrossEntropyMean[%d %d]", n, k), n: n, k: k}
}

func (op xentOp) Type() hm.Type      { return hm.NewFnType(mat2, mat2, G.Float32) }
func (op xentOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op xentOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

var mat2 = G.TensorType{Dims: 2, Of: G.Float32}

func (op xentOp) Do(in ...G.Value) (G.Value, error) {
	l, t, err := op.inputs(in)
	if err != nil {
		return nil, err
	}
	var acc float64
	for i := 0; i < op.n; i++ {
		row, tr := l[i*op.k:(i+1)*op.k], t[i*op.k:(i+1)*op.k]
		lse := logSumExp(row)
		for j, tj := range tr {
			if tj != 0 {
				acc += float64(tj) * (lse - float64(row[j]))
			}
		}
	}
	return G.NewF32(float32(acc / float64(op.n))), nil
}

// inputs checks and unpacks the logits and targets.
func (op xentOp) inputs(in []G.Value) (l, t []float32, err error) {
	if len(in) < 2 {
		return nil, nil, fmt.Errorf("%v: expected logits and targets, got %d inputs", op, len(in))
	}
	for i, what := range []string{"logits", "targets"} {
		if !in[i].Shape().Eq(tensor.Shape{op.n, op.k}) {
			return nil, nil, fmt.Errorf("%v: %s: expected shape [%d %d], got %v", op, what, op.n, op.k, in[i].Shape())
		}
	}
	if l, err = f32(op, in[0]); err == nil {
		t, err = f32(op, in[1])
	}
	return l, t, err
}

func f32(op fmt.Stringer, v G.Value) ([]float32, error) {
	if d, ok := v.(*tensor.Dense); ok {
		if s, ok := d.Data().([]float32); ok {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%v: want a float32 tensor, got %T", op, v)
}

// logSumExp is log Σ exp(x) with the maximum factored out.
func logSumExp(x []float32) float64 {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}

func (op xentOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	grad1 := xentGradOp{Base: ops.NewBase(3, "SoftmaxCrossEntropyMeanGrad[%d %d]", op.n, op.k), xentOp: op, buf: new(outBuf)}
	dl, err := G.ApplyOp(grad1, inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dl, nil}, nil
}

// xentGradOp is (softmax(l)·Σt − t)·g/N for a scalar g. It keeps its
// output tensor (the tape machine clears preallocated registers on every
// reset), so steady-state training does not allocate here. Its own Base
// names it; the embedded forward op lends it the sizes and input checks.
type xentGradOp struct {
	ops.Base
	xentOp
	buf *outBuf
}

// outBuf holds an op's output across runs (ops are passed by value).
type outBuf struct{ d *tensor.Dense }

func (op xentGradOp) Type() hm.Type      { return hm.NewFnType(mat2, mat2, G.Float32, mat2) }
func (op xentGradOp) DiffWRT(int) []bool { return []bool{false, false, false} }
func (op xentGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.n, op.k}, nil
}

func (op xentGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
}

func (op xentGradOp) Do(in ...G.Value) (G.Value, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%v: expected 3 inputs, got %d", op, len(in))
	}
	l, t, err := op.inputs(in)
	if err != nil {
		return nil, err
	}
	var g float32
	switch s := in[2].(type) {
	case *G.F32:
		g = float32(*s)
	case *tensor.Dense:
		d, ok := s.Data().([]float32)
		if v, isScalar := s.Data().(float32); isScalar {
			d, ok = []float32{v}, true
		}
		if !ok || len(d) != 1 {
			return nil, fmt.Errorf("%v: want a float32 scalar gradient, got %v", op, s.Shape())
		}
		g = d[0]
	default:
		return nil, fmt.Errorf("%v: want a float32 scalar gradient, got %T", op, in[2])
	}
	if op.buf.d == nil {
		op.buf.d = tensor.New(tensor.WithShape(op.n, op.k), tensor.Of(tensor.Float32))
	}
	d := op.buf.d
	o := d.Data().([]float32)
	scale := float64(g) / float64(op.n)
	for i := 0; i < op.n; i++ {
		row, tr, or := l[i*op.k:(i+1)*op.k], t[i*op.k:(i+1)*op.k], o[i*op.k:(i+1)*op.k]
		lse := logSumExp(row)
		var tsum float64
		for _, tj := range tr {
			tsum += float64(tj)
		}
		for j, v := range row {
			or[j] = float32((math.Exp(float64(v)-lse)*tsum - float64(tr[j])) * scale)
		}
	}
	return d, nil
}
