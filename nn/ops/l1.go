package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// L1 is mean|pred - target| over every element (PyTorch's F.l1_loss), a
// scalar differentiated in both inputs (the target of a cycle or identity
// loss may itself be computed).
func L1(pred, target *G.Node) (*G.Node, error) {
	return G.ApplyOp(newL1Op(shapeCopy(pred)), pred, target)
}

// l1Op is mean|p - t|.
type l1Op struct {
	Base
	shape []int
}

func newL1Op(shape []int) l1Op { return l1Op{Base: NewBase(2, "L1%v", shape), shape: shape} }

func (op l1Op) Type() hm.Type {
	return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape)), G.Float32)
}
func (op l1Op) DiffWRT(int) []bool { return []bool{true, true} }
func (op l1Op) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op l1Op) Do(in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"prediction", "target"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	p, t := data[0], data[1]
	t = t[:len(p)]
	// float32 partial sums per chunk, float64 across chunks: exact enough
	// for millions of elements without a float64 add per element.
	var acc float64
	for c := 0; c < len(p); c += actChunk {
		e := min(c+actChunk, len(p))
		var s0, s1 float32
		pp, q := p[c:e], t[c:e]
		i := 0
		for ; i+2 <= len(pp); i += 2 {
			s0 += float32(math.Abs(float64(pp[i] - q[i])))
			s1 += float32(math.Abs(float64(pp[i+1] - q[i+1])))
		}
		for ; i < len(pp); i++ {
			s0 += float32(math.Abs(float64(pp[i] - q[i])))
		}
		acc += float64(s0 + s1)
	}
	return G.NewF32(float32(acc / float64(len(p)))), nil
}

func (op l1Op) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	p, t := inputs[0], inputs[1]
	// d/dp = sign(p - t)·g/n; d/dt = sign(t - p)·g/n, the same op with
	// the inputs swapped.
	dp, err := G.ApplyOp(newL1GradOp(op.shape), p, t, grad)
	if err != nil {
		return nil, err
	}
	dt, err := G.ApplyOp(newL1GradOp(op.shape), t, p, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dp, dt}, nil
}

// l1GradOp is sign(a - b)·g/n for a scalar g, with sign(0) = 0 as in
// PyTorch.
type l1GradOp struct {
	Base
	buf   *outCache
	shape []int
}

func newL1GradOp(shape []int) l1GradOp {
	return l1GradOp{Base: NewBase(3, "L1Grad%v", shape), buf: newCache(), shape: shape}
}

func (op l1GradOp) Type() hm.Type {
	return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape)), G.Float32, tt(len(op.shape)))
}
func (op l1GradOp) DiffWRT(int) []bool { return []bool{false, false, false} }
func (op l1GradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op l1GradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op l1GradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%v: expected 3 inputs, got %d", op, len(in))
	}
	data, err := checkedInputs(op, in[:2], []string{"a", "b"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	g, err := scalar(op, in[2])
	if err != nil {
		return nil, err
	}
	a, b := data[0], data[1]
	d, o := op.buf.get(prealloc, op.shape)
	k := [3]float32{-g / float32(len(a)), 0, g / float32(len(a))}
	parallelRange(len(a), func(lo, hi int) {
		aa, bb, dst := a[lo:hi], b[lo:hi], o[lo:hi]
		bb, dst = bb[:len(aa)], dst[:len(aa)]
		for i, v := range aa {
			// 0, 1 or 2 for below, equal, above: no branch on a random sign.
			var gt, ge int
			if v > bb[i] {
				gt = 1
			}
			if v >= bb[i] {
				ge = 1
			}
			dst[i] = k[gt+ge]
		}
	})
	return d, nil
}

func (op l1GradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
}

var (
	_ G.SDOp            = l1Op{}
	_ G.SDOp            = l1GradOp{}
	_ G.UsePreallocDoer = l1GradOp{}
)
