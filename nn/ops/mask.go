package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// MulMask is x·mask element-wise, differentiated in x only: dropout with a
// mask the caller fills per run (0 or 1/(1-p), as PyTorch scales), so that
// a graph compiled once draws new noise on every run without gorgonia's
// clock-seeded Dropout.
func MulMask(x, mask *G.Node) (*G.Node, error) {
	return G.ApplyOp(newMaskOp(shapeCopy(x)), x, mask)
}

// maskOp is y = x·m. Its derivative in x is the same map applied to the
// incoming gradient, so it is differentiable to any order; m is data.
type maskOp struct {
	Base
	buf   *outCache
	shape []int
}

func newMaskOp(shape []int) maskOp {
	return maskOp{Base: NewBase(2, "MulMask%v", shape), buf: newCache(), shape: shape}
}

func (op maskOp) Type() hm.Type {
	t := tt(len(op.shape))
	return hm.NewFnType(t, t, t)
}
func (op maskOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op maskOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op maskOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op maskOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"x", "mask"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	x, m := data[0], data[1]
	d, y := op.buf.get(prealloc, op.shape)
	parallelRange(len(x), func(lo, hi int) {
		src, mm, dst := x[lo:hi], m[lo:hi], y[lo:hi]
		mm, dst = mm[:len(src)], dst[:len(src)]
		for i, v := range src {
			dst[i] = v * mm[i]
		}
	})
	return d, nil
}

func (op maskOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(newMaskOp(op.shape), grad, inputs[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, nil}, nil
}

var (
	_ G.SDOp            = maskOp{}
	_ G.UsePreallocDoer = maskOp{}
)
