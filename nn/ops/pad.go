package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ReflectionPad2d pads x [N, C, H, W] by pad on every side with its own
// reflection, excluding the edge (PyTorch's nn.ReflectionPad2d(pad)):
// [N, C, H+2·pad, W+2·pad]. It needs pad < H and pad < W, which the caller
// checks (layers.Builder does, naming the layer).
func ReflectionPad2d(x *G.Node, pad int) (*G.Node, error) {
	return G.ApplyOp(newPadOp(false, pad, shapeCopy(x)), x)
}

// padOp is reflection padding of [N, C, H, W] by pad, or its adjoint, which
// adds each padded pixel's gradient back onto the pixel it reflects. Each
// is the other's derivative (both are linear), so graphs through them stay
// differentiable to any order.
type padOp struct {
	Base
	buf     *outCache
	adjoint bool
	pad     int
	small   []int // [N, C, H, W], the pad's input and the adjoint's output
}

func newPadOp(adjoint bool, pad int, small []int) padOp {
	op := padOp{buf: newCache(), adjoint: adjoint, pad: pad, small: small}
	op.Base = NewBase(1, "ReflectionPad2d(%d)%v", pad, small)
	if adjoint {
		op.Base = NewBase(1, "ReflectionPad2dAdjoint(%d)%v", pad, small)
	}
	return op
}

func (op padOp) big() []int {
	return []int{op.small[0], op.small[1], op.small[2] + 2*op.pad, op.small[3] + 2*op.pad}
}

func (op padOp) Type() hm.Type      { return hm.NewFnType(tt(4), tt(4)) }
func (op padOp) DiffWRT(int) []bool { return []bool{true} }
func (op padOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.adjoint {
		return tensor.Shape(append([]int(nil), op.small...)), nil
	}
	return tensor.Shape(op.big()), nil
}
func (op padOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// reflect maps a padded coordinate i in [0, n+2·pad) to its source in
// [0, n): the mirror image about the edge pixel, which is not repeated.
func reflect(i, pad, n int) int {
	i -= pad
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}

func (op padOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%v: expected 1 input, got %d", op, len(in))
	}
	inShape, outShape := op.small, op.big()
	if op.adjoint {
		inShape, outShape = outShape, inShape
	}
	if err := checkShape(op, "x", shapeOf(in[0]), inShape); err != nil {
		return nil, err
	}
	h, w, p := op.small[2], op.small[3], op.pad
	if p >= h || p >= w || p < 0 {
		return nil, fmt.Errorf("%v: padding %d needs an input larger than it, got %dx%d", op, p, h, w)
	}
	x, err := f32(op, in[0])
	if err != nil {
		return nil, err
	}
	d, y := op.buf.get(prealloc, outShape)
	bh, bw := h+2*p, w+2*p
	// Column sources of a padded row, shared by every row.
	cols := make([]int, bw)
	for j := range cols {
		cols[j] = reflect(j, p, w)
	}
	planes := op.small[0] * op.small[1]
	parallelImages(op.small[0], func(_, n int) {
		per := planes / op.small[0]
		for pl := n * per; pl < (n+1)*per; pl++ {
			if !op.adjoint {
				src, dst := x[pl*h*w:(pl+1)*h*w], y[pl*bh*bw:(pl+1)*bh*bw]
				for i := 0; i < bh; i++ {
					srow := src[reflect(i, p, h)*w:][:w]
					drow := dst[i*bw : (i+1)*bw]
					for j := 0; j < p; j++ {
						drow[j] = srow[cols[j]]
					}
					copy(drow[p:p+w], srow)
					for j := p + w; j < bw; j++ {
						drow[j] = srow[cols[j]]
					}
				}
				continue
			}
			src, dst := x[pl*bh*bw:(pl+1)*bh*bw], y[pl*h*w:(pl+1)*h*w]
			// The interior rows first (a copy of the centre), then the
			// padded rows and columns add onto the pixels they reflect.
			for i := 0; i < h; i++ {
				copy(dst[i*w:(i+1)*w], src[(i+p)*bw+p:][:w])
			}
			for i := 0; i < bh; i++ {
				srow := src[i*bw : (i+1)*bw]
				drow := dst[reflect(i, p, h)*w:][:w]
				if i < p || i >= p+h {
					for j, c := range cols {
						drow[c] += srow[j]
					}
					continue
				}
				for j := 0; j < p; j++ {
					drow[cols[j]] += srow[j]
				}
				for j := p + w; j < bw; j++ {
					drow[cols[j]] += srow[j]
				}
			}
		}
	})
	return d, nil
}

func (op padOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(newPadOp(!op.adjoint, op.pad, op.small), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// The pad is differentiable and writes into its own cached output.
var (
	_ G.SDOp            = padOp{}
	_ G.UsePreallocDoer = padOp{}
)
