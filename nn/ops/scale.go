package ops

import (
	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ScaleChannel is x·s[c] for x [N, C, ...] and s [C]: a per-channel
// scale differentiated in both (a flow's actnorm, y = (x + b)·exp(logs)).
func ScaleChannel(x, s *G.Node) (*G.Node, error) {
	return G.ApplyOp(newScaleOp(shapeCopy(x)), x, s)
}

type scaleOp struct {
	Base
	buf   *outCache
	shape []int
}

func newScaleOp(shape []int) scaleOp {
	return scaleOp{Base: NewBase(2, "ScaleChannel%v", shape), buf: newCache(), shape: shape}
}

func (op scaleOp) Type() hm.Type {
	full := tt(len(op.shape))
	return hm.NewFnType(full, tt(1), full)
}
func (op scaleOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op scaleOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op scaleOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op scaleOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"x", "scale"}, [][]int{op.shape, {op.shape[1]}})
	if err != nil {
		return nil, err
	}
	x, s := data[0], data[1]
	d, y := op.buf.get(prealloc, op.shape)
	c := op.shape[1]
	inner := len(x) / (op.shape[0] * c)
	for i := 0; i < len(x); i += inner {
		k := s[(i/inner)%c]
		src, dst := x[i:i+inner], y[i:i+inner]
		for j, v := range src {
			dst[j] = v * k
		}
	}
	return d, nil
}

// SymDiff: d/dx = g·s[c] (this op again), d/ds[c] = Σ g·x over all but
// the channel axis.
func (op scaleOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, s := inputs[0], inputs[1]
	dx, err := G.ApplyOp(newScaleOp(op.shape), grad, s)
	if err != nil {
		return nil, err
	}
	gx, err := G.HadamardProd(grad, x)
	if err != nil {
		return nil, err
	}
	ds, err := G.ApplyOp(newChanOp(kSum, op.shape), gx)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, ds}, nil
}

var (
	_ G.SDOp            = scaleOp{}
	_ G.UsePreallocDoer = scaleOp{}
)
