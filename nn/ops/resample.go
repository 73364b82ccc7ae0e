package ops

import (
	"fmt"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// upOp is nearest-neighbour upsampling of [N, C, H, W] by an integer
// factor (each pixel becomes an f x f block), or its adjoint, the f x f
// sum-pool back to [N, C, H, W]. Each is the other's derivative, so graphs
// through them stay differentiable to any order.
type upOp struct {
	Base
	buf   *outCache
	pool  bool
	f     int
	small []int // [N, C, H, W], the upsample's input and the pool's output
}

func (op upOp) big() []int {
	return []int{op.small[0], op.small[1], op.small[2] * op.f, op.small[3] * op.f}
}

func newUpOp(pool bool, f int, small []int) upOp {
	op := upOp{buf: newCache(), pool: pool, f: f, small: small}
	op.Base = NewBase(1, "UpsampleNearest(%d)%v", f, small)
	if pool {
		op.Base = NewBase(1, "SumPool(%d)%v", f, op.big())
	}
	return op
}

func (op upOp) Type() hm.Type      { return hm.NewFnType(tt(4), tt(4)) }
func (op upOp) DiffWRT(int) []bool { return []bool{true} }
func (op upOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.pool {
		return tensor.Shape(append([]int(nil), op.small...)), nil
	}
	return tensor.Shape(op.big()), nil
}
func (op upOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op upOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%v: expected 1 input, got %d", op, len(in))
	}
	inShape, outShape := op.small, op.big()
	if op.pool {
		inShape, outShape = outShape, inShape
	}
	if err := checkShape(op, "x", shapeOf(in[0]), inShape); err != nil {
		return nil, err
	}
	x, err := f32(op, in[0])
	if err != nil {
		return nil, err
	}
	d, y := op.buf.get(prealloc, outShape)
	f, h, w := op.f, op.small[2], op.small[3]
	planes := op.small[0] * op.small[1]
	bw := w * f
	rows := planes * h / op.small[0] // small rows per sample
	parallelImages(op.small[0], func(_, n int) {
		for r := n * rows; r < (n+1)*rows; r++ {
			if !op.pool {
				src := x[r*w : (r+1)*w]
				dst := y[r*f*bw : (r+1)*f*bw]
				row := dst[:bw]
				for i, v := range src {
					for k := 0; k < f; k++ {
						row[i*f+k] = v
					}
				}
				for k := 1; k < f; k++ {
					copy(dst[k*bw:(k+1)*bw], row)
				}
				continue
			}
			src := x[r*f*bw : (r+1)*f*bw]
			dst := y[r*w : (r+1)*w]
			for i := range dst {
				var acc float32
				for k := 0; k < f; k++ {
					for _, v := range src[k*bw+i*f : k*bw+i*f+f] {
						acc += v
					}
				}
				dst[i] = acc
			}
		}
	})
	return d, nil
}

func (op upOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(newUpOp(!op.pool, op.f, op.small), grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// ncOp covers the per-sample channel maps on x [N, C, rest...]: adding
// v [N, C] (a U-Net's time-embedding injection), summing over the inner
// axes to [N, C], and broadcasting [N, C] back. Their derivatives are each
// other.
type ncOp struct {
	Base
	buf   *outCache
	kind  chanKind // kBias (add), kSum, kBcast
	shape []int
}

var ncNames = [...]string{"AddSampleChannel", "SampleChannelSum", "SampleChannelBroadcast"}

func newNCOp(kind chanKind, shape []int) ncOp {
	arity := 1
	if kind == kBias {
		arity = 2
	}
	return ncOp{Base: NewBase(arity, "%s%v", ncNames[kind], shape), buf: newCache(), kind: kind, shape: shape}
}

func (op ncOp) Type() hm.Type {
	full, nc := tt(len(op.shape)), tt(2)
	switch op.kind {
	case kBias:
		return hm.NewFnType(full, nc, full)
	case kSum:
		return hm.NewFnType(full, nc)
	default:
		return hm.NewFnType(nc, full)
	}
}

func (op ncOp) DiffWRT(n int) []bool {
	return allDiff(n)
}

func (op ncOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.kind == kSum {
		return tensor.Shape{op.shape[0], op.shape[1]}, nil
	}
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}

func (op ncOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op ncOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: expected %d inputs, got %d", op, op.Arity(), len(in))
	}
	g := geomOf(op.shape)
	nc := []int{g.n, g.c}
	switch op.kind {
	case kBias:
		if err := checkShape(op, "x", shapeOf(in[0]), op.shape); err != nil {
			return nil, err
		}
		if err := checkShape(op, "v", shapeOf(in[1]), nc); err != nil {
			return nil, err
		}
		x, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		v, err := f32(op, in[1])
		if err != nil {
			return nil, err
		}
		d, y := op.buf.get(prealloc, op.shape)
		parallelRange(g.n*g.c*g.inner, func(lo, hi int) {
			for p := lo / g.inner; p*g.inner < hi; p++ {
				a, b := max(p*g.inner, lo), min((p+1)*g.inner, hi)
				affine(y[a:b], x[a:b], 1, v[p])
			}
		})
		return d, nil
	case kSum:
		if err := checkShape(op, "x", shapeOf(in[0]), op.shape); err != nil {
			return nil, err
		}
		x, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		d, s := op.buf.get(prealloc, nc)
		for p := range s {
			s[p] = sum4(x[p*g.inner : (p+1)*g.inner])
		}
		return d, nil
	default:
		if err := checkShape(op, "v", shapeOf(in[0]), nc); err != nil {
			return nil, err
		}
		v, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		d, y := op.buf.get(prealloc, op.shape)
		for p, vp := range v {
			dst := y[p*g.inner : (p+1)*g.inner]
			for i := range dst {
				dst[i] = vp
			}
		}
		return d, nil
	}
}

func (op ncOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	switch op.kind {
	case kBias:
		dv, err := G.ApplyOp(newNCOp(kSum, op.shape), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{grad, dv}, nil
	case kSum:
		dx, err := G.ApplyOp(newNCOp(kBcast, op.shape), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx}, nil
	default:
		dv, err := G.ApplyOp(newNCOp(kSum, op.shape), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dv}, nil
	}
}

// catKind selects one of the channel-concatenation maps.
type catKind int

const (
	catJoin  catKind = iota // (x_1, ..., x_k) -> [N, Σc_i, rest...]
	catSlice                // [N, C, rest...] -> channels [lo, hi)
	catPad                  // channels [lo, hi) -> [N, C, rest...], zeros elsewhere
)

// catOp concatenates along the channel axis, or takes (slice) or places
// (pad) a channel range: the derivative of a join is slices, of a slice a
// pad and of a pad a slice, all linear, so any order of derivative works.
// Each copies whole per-sample blocks, one memmove each.
type catOp struct {
	Base
	buf    *outCache
	kind   catKind
	n      int
	chans  []int // join: the inputs' channel counts
	total  int   // slice, pad: channels of the full tensor
	lo, hi int   // slice, pad: the channel range
	rest   []int // the axes after the channel axis
}

func (op catOp) inner() int {
	s := 1
	for _, d := range op.rest {
		s *= d
	}
	return s
}

func (op catOp) shapeWith(c int) []int { return append([]int{op.n, c}, op.rest...) }

// newCatJoin concatenates inputs of the given channel counts.
func newCatJoin(n int, chans, rest []int) catOp {
	return catOp{Base: NewBase(len(chans), "ConcatChannels(n%d %v %v)", n, chans, rest), buf: newCache(), kind: catJoin, n: n, chans: chans, rest: rest}
}

// newCatRange takes (catSlice) or places (catPad) channels [lo, hi) of total.
func newCatRange(kind catKind, n, total, lo, hi int, rest []int) catOp {
	name := "SliceChannels"
	if kind == catPad {
		name = "PadChannels"
	}
	return catOp{
		Base: NewBase(1, "%s(n%d [%d:%d] of %d %v)", name, n, lo, hi, total, rest),
		buf:  newCache(), kind: kind, n: n, total: total, lo: lo, hi: hi, rest: rest,
	}
}

func (op catOp) Type() hm.Type {
	t := tt(2 + len(op.rest))
	ts := make([]hm.Type, op.Arity()+1)
	for i := range ts {
		ts[i] = t
	}
	return hm.NewFnType(ts...)
}

func (op catOp) DiffWRT(n int) []bool {
	return allDiff(n)
}

func (op catOp) outShape() []int {
	switch op.kind {
	case catJoin:
		c := 0
		for _, ci := range op.chans {
			c += ci
		}
		return op.shapeWith(c)
	case catSlice:
		return op.shapeWith(op.hi - op.lo)
	default:
		return op.shapeWith(op.total)
	}
}

func (op catOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.outShape()), nil
}

func (op catOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op catOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: expected %d inputs, got %d", op, op.Arity(), len(in))
	}
	inner := op.inner()
	os := op.outShape()
	switch op.kind {
	case catJoin:
		srcs := make([][]float32, len(in))
		for i := range in {
			if err := checkShape(op, fmt.Sprintf("input %d", i), shapeOf(in[i]), op.shapeWith(op.chans[i])); err != nil {
				return nil, err
			}
			s, err := f32(op, in[i])
			if err != nil {
				return nil, err
			}
			srcs[i] = s
		}
		d, y := op.buf.get(prealloc, os)
		per := os[1] * inner
		parallelImages(op.n, func(_, n int) {
			off := n * per
			for i, s := range srcs {
				sz := op.chans[i] * inner
				copy(y[off:off+sz], s[n*sz:(n+1)*sz])
				off += sz
			}
		})
		return d, nil
	case catSlice:
		if err := checkShape(op, "x", shapeOf(in[0]), op.shapeWith(op.total)); err != nil {
			return nil, err
		}
		x, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		d, y := op.buf.get(prealloc, os)
		sz, per := (op.hi-op.lo)*inner, op.total*inner
		parallelImages(op.n, func(_, n int) {
			copy(y[n*sz:(n+1)*sz], x[n*per+op.lo*inner:])
		})
		return d, nil
	default:
		if err := checkShape(op, "x", shapeOf(in[0]), op.shapeWith(op.hi-op.lo)); err != nil {
			return nil, err
		}
		x, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		d, y := op.buf.get(prealloc, os)
		sz, per := (op.hi-op.lo)*inner, op.total*inner
		parallelImages(op.n, func(_, n int) {
			blk := y[n*per : (n+1)*per]
			clear(blk[:op.lo*inner])
			copy(blk[op.lo*inner:], x[n*sz:(n+1)*sz])
			clear(blk[op.hi*inner:])
		})
		return d, nil
	}
}

func (op catOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	switch op.kind {
	case catJoin:
		total := 0
		for _, c := range op.chans {
			total += c
		}
		ds := make(G.Nodes, len(inputs))
		lo := 0
		for i, c := range op.chans {
			var err error
			ds[i], err = G.ApplyOp(newCatRange(catSlice, op.n, total, lo, lo+c, op.rest), grad)
			if err != nil {
				return nil, err
			}
			lo += c
		}
		return ds, nil
	default:
		k := catPad
		if op.kind == catPad {
			k = catSlice
		}
		dx, err := G.ApplyOp(newCatRange(k, op.n, op.total, op.lo, op.hi, op.rest), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx}, nil
	}
}
