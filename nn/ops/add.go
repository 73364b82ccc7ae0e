package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Add is a + b for two tensors of one shape (a residual connection). On
// [8, 128, 7, 7], forward and backward, gorgonia's G.Add allocates its
// output (200 KB) on every run and costs ~0.15 ms more (0.5 vs 0.35 ms
// with a ReLU and a loss around it); this one reuses its output, and its
// derivative is the incoming gradient itself, for both inputs, so it adds
// no op to the backward pass.
func Add(a, b *G.Node) (*G.Node, error) {
	return G.ApplyOp(newAddOp(shapeCopy(a)), a, b)
}

type addOp struct {
	Base
	buf   *outCache
	shape []int
}

var (
	_ G.SDOp            = addOp{}
	_ G.UsePreallocDoer = addOp{}
)

func newAddOp(shape []int) addOp {
	return addOp{Base: NewBase(2, "Add%v", shape), buf: newCache(), shape: shape}
}

func (op addOp) Type() hm.Type {
	t := tt(len(op.shape))
	return hm.NewFnType(t, t, t)
}
func (op addOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op addOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op addOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op addOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"a", "b"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	a, b := data[0], data[1]
	d, y := op.buf.get(prealloc, op.shape)
	parallelRange(len(a), func(lo, hi int) {
		aa, bb, dst := a[lo:hi], b[lo:hi], y[lo:hi]
		bb, dst = bb[:len(aa)], dst[:len(aa)]
		for i, v := range aa {
			dst[i] = v + bb[i]
		}
	})
	return d, nil
}

func (op addOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}
