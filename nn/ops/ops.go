package ops

import (
	"fmt"
	"hash"
	"hash/fnv"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Base is embedded by every custom gorgonia op (here and in other
// packages) and answers gorgonia's identity questions for it: String,
// Arity, WriteHash, Hashcode, and ReturnsPtr, CallsExtern and
// OverwritesInput for an op whose result is a fresh value (or the
// machine's preallocated one), never an alias of an input. Its name spells
// out the op and every parameter its result depends on: gorgonia merges
// two nodes whose ops hash alike, so the name must tell apart any two ops
// that compute differently; error messages name the op by it. An op's
// constructor sets it once with NewBase.
type Base struct {
	name  string
	arity int
}

// NewBase is the Base of an op with arity inputs, named by a format and
// its arguments, e.g. NewBase(2, "MatMul(%dx%d)", m, n).
func NewBase(arity int, format string, args ...any) Base {
	return Base{name: fmt.Sprintf(format, args...), arity: arity}
}

// String is the op's name.
func (o Base) String() string { return o.name }

// Arity is the op's number of inputs.
func (o Base) Arity() int { return o.arity }

// WriteHash writes the name, which identifies the op.
func (o Base) WriteHash(h hash.Hash) { h.Write([]byte(o.name)) }

// Hashcode is the FNV-1a hash of the name.
func (o Base) Hashcode() uint32 {
	h := fnv.New32a()
	h.Write([]byte(o.name))
	return h.Sum32()
}

// ReturnsPtr is false: results are values.
func (Base) ReturnsPtr() bool { return false }

// CallsExtern is false: ops run on the CPU in Go.
func (Base) CallsExtern() bool { return false }

// OverwritesInput is -1: no op writes into an input.
func (Base) OverwritesInput() int { return -1 }

func tt(dims int) hm.Type { return G.TensorType{Dims: dims, Of: G.Float32} }

// f32 returns the float32 data of a value, with an error that names the op
// when the value is not a float32 tensor.
func f32(op fmt.Stringer, v G.Value) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%v: want a float32 tensor, got %T", op, v)
	}
	s, ok := d.Data().([]float32)
	if !ok {
		return nil, fmt.Errorf("%v: want float32 data, got %v", op, d.Dtype())
	}
	return s, nil
}

// out returns prealloc when it has the wanted shape, else a new tensor.
// The tape machine clears its registers on every Reset, so prealloc is
// usually nil: ops keep their own output in an outCache instead.
func out(prealloc G.Value, shape []int) (*tensor.Dense, []float32) {
	if d, ok := prealloc.(*tensor.Dense); ok && d.Dtype() == tensor.Float32 && d.Shape().Eq(tensor.Shape(shape)) {
		if s, ok := d.Data().([]float32); ok {
			return d, s
		}
	}
	d := tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	return d, d.Data().([]float32)
}

func checkShape(op fmt.Stringer, what string, got tensor.Shape, want []int) error {
	if !got.Eq(tensor.Shape(want)) {
		return fmt.Errorf("%v: %s: expected shape %v, got %v", op, what, want, got)
	}
	return nil
}

func shapeOf(v G.Value) tensor.Shape { return v.Shape() }

// convKind selects which of the three bilinear maps of a convolution an op
// computes. They are closed under differentiation: the derivative of each
// with respect to either input is another of them.
type convKind int

const (
	kConv  convKind = iota // (x, w) -> y
	kConvT                 // (y, w) -> x
	kConvW                 // (x, y) -> w
)

var convNames = [...]string{"Conv2d", "ConvTranspose2d", "Conv2dWeightGrad"}

// convOp is one of the convolution maps on a fixed geometry.
type convOp struct {
	Base
	kind convKind
	g    ConvGeom
	buf  *outCache
}

func newConvOp(kind convKind, g ConvGeom) convOp {
	return convOp{
		Base: NewBase(2, "%s(n%d c%d %dx%d -> c%d %dx%d k%dx%d s%dx%d p%dx%d)", convNames[kind], g.Batch, g.In, g.H, g.W, g.Out, g.OH, g.OW, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW),
		kind: kind, g: g, buf: newCache(),
	}
}

func (op convOp) Type() hm.Type      { return hm.NewFnType(tt(4), tt(4), tt(4)) }
func (op convOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op convOp) shapes() (a, b, o []int) {
	switch op.kind {
	case kConv:
		return op.g.InShape(), op.g.WeightShape(), op.g.OutShape()
	case kConvT:
		return op.g.OutShape(), op.g.WeightShape(), op.g.InShape()
	default:
		return op.g.InShape(), op.g.OutShape(), op.g.WeightShape()
	}
}

func (op convOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	_, _, o := op.shapes()
	return tensor.Shape(o), nil
}

func (op convOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op convOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("%v: expected 2 inputs, got %d", op, len(in))
	}
	as, bs, os := op.shapes()
	if err := checkShape(op, "input 0", shapeOf(in[0]), as); err != nil {
		return nil, err
	}
	if err := checkShape(op, "input 1", shapeOf(in[1]), bs); err != nil {
		return nil, err
	}
	a, err := f32(op, in[0])
	if err != nil {
		return nil, err
	}
	b, err := f32(op, in[1])
	if err != nil {
		return nil, err
	}
	d, o := op.buf.get(prealloc, os)
	switch op.kind {
	case kConv:
		op.g.convForward(a, b, o)
	case kConvT:
		op.g.convTranspose(a, b, o)
	default:
		op.g.convWeight(a, b, o)
	}
	return d, nil
}

func (op convOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	a, b := inputs[0], inputs[1]
	mk := func(k convKind, x, y *G.Node) (*G.Node, error) {
		return G.ApplyOp(newConvOp(k, op.g), x, y)
	}
	var da, db *G.Node
	var err error
	switch op.kind {
	case kConv: // y = conv(x, w)
		if da, err = mk(kConvT, grad, b); err == nil {
			db, err = mk(kConvW, a, grad)
		}
	case kConvT: // x = convT(y, w)
		if da, err = mk(kConv, grad, b); err == nil {
			db, err = mk(kConvW, grad, a)
		}
	default: // w = convW(x, y)
		if da, err = mk(kConvT, b, grad); err == nil {
			db, err = mk(kConv, a, grad)
		}
	}
	if err != nil {
		return nil, err
	}
	return G.Nodes{da, db}, nil
}

// convBiasOp is y = conv(x, w) + b per output channel, optionally
// followed by ReLU, in one pass over the output: the bias (and the ReLU)
// are applied while each image's result is copied out of the GEMM's
// layout, instead of as whole-batch passes of their own. Its derivatives
// are the convolution maps and the channel sum, after ReLU's derivative,
// which reads the output (y > 0 exactly where the pre-activation is).
type convBiasOp struct {
	Base
	g    ConvGeom
	relu bool
	buf  *outCache
}

func newConvBiasOp(g ConvGeom, relu bool) convBiasOp {
	name := "Conv2dBias"
	if relu {
		name = "Conv2dBiasReLU"
	}
	return convBiasOp{
		Base: NewBase(3, "%s(n%d c%d %dx%d -> c%d %dx%d k%dx%d s%dx%d p%dx%d)", name, g.Batch, g.In, g.H, g.W, g.Out, g.OH, g.OW, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW),
		g:    g, relu: relu, buf: newCache(),
	}
}

func (op convBiasOp) Type() hm.Type      { return hm.NewFnType(tt(4), tt(4), tt(1), tt(4)) }
func (op convBiasOp) DiffWRT(int) []bool { return []bool{true, true, true} }
func (op convBiasOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(op.g.OutShape()), nil
}

func (op convBiasOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op convBiasOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"x", "weight", "bias"}, [][]int{op.g.InShape(), op.g.WeightShape(), {op.g.Out}})
	if err != nil {
		return nil, err
	}
	d, o := op.buf.get(prealloc, op.g.OutShape())
	op.g.convForwardBias(data[0], data[1], data[2], op.relu, o)
	return d, nil
}

func (op convBiasOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	x, w := inputs[0], inputs[1]
	g := grad
	if op.relu {
		var err error
		if g, err = G.ApplyOp(newActGradOp(ActReLU, 0, op.g.OutShape()), output, grad); err != nil {
			return nil, err
		}
	}
	dx, err := G.ApplyOp(newConvOp(kConvT, op.g), g, w)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(newConvOp(kConvW, op.g), x, g)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(newChanOp(kSum, op.g.OutShape()), g)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}

// mmOp is C = op(A)·op(B) for 2-D float32 tensors. Its derivatives are
// mmOps too.
type mmOp struct {
	Base
	tA, tB  bool
	m, n, k int
	buf     *outCache
}

func newMMOp(tA, tB bool, m, n, k int) mmOp {
	return mmOp{
		Base: NewBase(2, "MatMul(%dx%d, tA=%v, tB=%v, k=%d)", m, n, tA, tB, k),
		tA:   tA, tB: tB, m: m, n: n, k: k, buf: newCache(),
	}
}

func (op mmOp) Type() hm.Type      { return hm.NewFnType(tt(2), tt(2), tt(2)) }
func (op mmOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op mmOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{op.m, op.n}, nil
}

func (op mmOp) aShape() []int {
	if op.tA {
		return []int{op.k, op.m}
	}
	return []int{op.m, op.k}
}

func (op mmOp) bShape() []int {
	if op.tB {
		return []int{op.n, op.k}
	}
	return []int{op.k, op.n}
}

func (op mmOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op mmOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("%v: expected 2 inputs, got %d", op, len(in))
	}
	if err := checkShape(op, "A", shapeOf(in[0]), op.aShape()); err != nil {
		return nil, err
	}
	if err := checkShape(op, "B", shapeOf(in[1]), op.bShape()); err != nil {
		return nil, err
	}
	a, err := f32(op, in[0])
	if err != nil {
		return nil, err
	}
	b, err := f32(op, in[1])
	if err != nil {
		return nil, err
	}
	d, c := op.buf.get(prealloc, []int{op.m, op.n})
	lda, ldb := op.aShape()[1], op.bShape()[1]
	sgemm(op.tA, op.tB, op.m, op.n, op.k, 1, a, lda, b, ldb, 0, c, op.n)
	return d, nil
}

func (op mmOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	A, B := inputs[0], inputs[1]
	var da, db *G.Node
	var err error
	// dop(A) = G·op(B)ᵀ and dop(B) = op(A)ᵀ·G, transposed back when the
	// input entered transposed.
	if op.tA {
		da, err = G.ApplyOp(newMMOp(op.tB, true, op.k, op.m, op.n), B, grad)
	} else {
		da, err = G.ApplyOp(newMMOp(false, !op.tB, op.m, op.k, op.n), grad, B)
	}
	if err != nil {
		return nil, err
	}
	if op.tB {
		db, err = G.ApplyOp(newMMOp(true, op.tA, op.n, op.k, op.m), grad, A)
	} else {
		db, err = G.ApplyOp(newMMOp(!op.tA, false, op.k, op.n, op.m), A, grad)
	}
	if err != nil {
		return nil, err
	}
	return G.Nodes{da, db}, nil
}

// chanOp covers the per-channel maps on an [N, C, rest...] tensor: adding a
// bias vector [C], summing over everything but the channel axis, and
// broadcasting a [C] vector to the full shape. Their derivatives are each
// other.
type chanOp struct {
	Base
	kind  chanKind
	shape []int // the full [N, C, ...] shape
	buf   *outCache
}

type chanKind int

const (
	kBias  chanKind = iota // (x, b) -> x + b
	kSum                   // x -> Σ over all axes but 1
	kBcast                 // b -> broadcast to shape
)

var chanNames = [...]string{"BiasAdd", "ChannelSum", "ChannelBroadcast"}

func newChanOp(kind chanKind, shape []int) chanOp {
	arity := 1
	if kind == kBias {
		arity = 2
	}
	return chanOp{Base: NewBase(arity, "%s%v", chanNames[kind], shape), kind: kind, shape: shape, buf: newCache()}
}

func (op chanOp) Type() hm.Type {
	full, vec := tt(len(op.shape)), tt(1)
	switch op.kind {
	case kBias:
		return hm.NewFnType(full, vec, full)
	case kSum:
		return hm.NewFnType(full, vec)
	default:
		return hm.NewFnType(vec, full)
	}
}

func (op chanOp) DiffWRT(n int) []bool {
	return allDiff(n)
}

func (op chanOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.kind == kSum {
		return tensor.Shape{op.shape[1]}, nil
	}
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}

// geometry: n outer blocks of c channels of inner elements.
func (op chanOp) dims() (n, c, inner int) {
	n, c, inner = op.shape[0], op.shape[1], 1
	for _, d := range op.shape[2:] {
		inner *= d
	}
	return
}

func (op chanOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op chanOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != op.Arity() {
		return nil, fmt.Errorf("%v: expected %d inputs, got %d", op, op.Arity(), len(in))
	}
	n, c, inner := op.dims()
	switch op.kind {
	case kBias:
		if err := checkShape(op, "x", shapeOf(in[0]), op.shape); err != nil {
			return nil, err
		}
		if err := checkShape(op, "bias", shapeOf(in[1]), []int{c}); err != nil {
			return nil, err
		}
		x, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		b, err := f32(op, in[1])
		if err != nil {
			return nil, err
		}
		d, y := op.buf.get(prealloc, op.shape)
		for i := 0; i < n; i++ {
			for j := 0; j < c; j++ {
				off := (i*c + j) * inner
				bj := b[j]
				src, dst := x[off:off+inner], y[off:off+inner]
				for k := range dst {
					dst[k] = src[k] + bj
				}
			}
		}
		return d, nil
	case kSum:
		if err := checkShape(op, "x", shapeOf(in[0]), op.shape); err != nil {
			return nil, err
		}
		x, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		d, s := op.buf.get(prealloc, []int{c})
		clear(s)
		for i := 0; i < n; i++ {
			for j := 0; j < c; j++ {
				off := (i*c + j) * inner
				var acc float32
				for _, v := range x[off : off+inner] {
					acc += v
				}
				s[j] += acc
			}
		}
		return d, nil
	default:
		if err := checkShape(op, "vector", shapeOf(in[0]), []int{c}); err != nil {
			return nil, err
		}
		b, err := f32(op, in[0])
		if err != nil {
			return nil, err
		}
		d, y := op.buf.get(prealloc, op.shape)
		for i := 0; i < n; i++ {
			for j := 0; j < c; j++ {
				off := (i*c + j) * inner
				bj := b[j]
				dst := y[off : off+inner]
				for k := range dst {
					dst[k] = bj
				}
			}
		}
		return d, nil
	}
}

func (op chanOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	switch op.kind {
	case kBias:
		db, err := G.ApplyOp(newChanOp(kSum, op.shape), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{grad, db}, nil
	case kSum:
		dx, err := G.ApplyOp(newChanOp(kBcast, op.shape), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dx}, nil
	default:
		db, err := G.ApplyOp(newChanOp(kSum, op.shape), grad)
		if err != nil {
			return nil, err
		}
		return G.Nodes{db}, nil
	}
}

// allDiff is DiffWRT for an op differentiable in all of its n inputs.
func allDiff(n int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	return r
}

// checkedInputs checks that op got one input per name, of the shape at
// the same index, and returns their float32 data; errors name the op and
// the input, with the shape expected and the one given.
func checkedInputs(op G.Op, in []G.Value, names []string, shapes [][]int) ([][]float32, error) {
	if len(in) != len(names) {
		return nil, fmt.Errorf("%v: expected %d inputs, got %d", op, len(names), len(in))
	}
	data := make([][]float32, len(in))
	for i := range in {
		if err := checkShape(op, names[i], shapeOf(in[i]), shapes[i]); err != nil {
			return nil, err
		}
		s, err := f32(op, in[i])
		if err != nil {
			return nil, err
		}
		data[i] = s
	}
	return data, nil
}

// bceOp is the binary cross-entropy of logits l against targets t in [0,1],
// summed over every element: Σ softplus(l) - t·l, computed stably. Its
// derivative in l is (sigmoid(l) - t)·g (bceGradOp); targets are data, so
// it is not differentiated in t.
type bceOp struct {
	Base
	shape []int
}

func newBCEOp(shape []int) bceOp {
	return bceOp{Base: NewBase(2, "BCEWithLogitsSum%v", shape), shape: shape}
}

func (op bceOp) Type() hm.Type {
	return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape)), G.Float32)
}
func (op bceOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op bceOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op bceOp) Do(in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"logits", "targets"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	l, t := data[0], data[1]
	var acc float64
	for i, x := range l {
		acc += softplus(float64(x)) - float64(t[i])*float64(x)
	}
	return G.NewF32(float32(acc)), nil
}

func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func (op bceOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dl, err := G.ApplyOp(newBCEGradOp(op.shape), inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dl, nil}, nil
}

// bceGradOp is (sigmoid(l) - t)·g for a scalar g.
type bceGradOp struct {
	Base
	shape []int
	buf   *outCache
}

func newBCEGradOp(shape []int) bceGradOp {
	return bceGradOp{Base: NewBase(3, "BCEWithLogitsGrad%v", shape), shape: shape, buf: newCache()}
}

func (op bceGradOp) Type() hm.Type {
	return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape)), G.Float32, tt(len(op.shape)))
}
func (op bceGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op bceGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op bceGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%v: expected 3 inputs, got %d", op, len(in))
	}
	l, err := f32(op, in[0])
	if err != nil {
		return nil, err
	}
	t, err := f32(op, in[1])
	if err != nil {
		return nil, err
	}
	g, err := scalar(op, in[2])
	if err != nil {
		return nil, err
	}
	d, o := op.buf.get(prealloc, op.shape)
	for i, x := range l {
		o[i] = (sigmoid32(x) - t[i]) * g
	}
	return d, nil
}

func sigmoid32(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func scalar(op fmt.Stringer, v G.Value) (float32, error) {
	switch s := v.(type) {
	case *G.F32:
		return float32(*s), nil
	case *tensor.Dense:
		if f, ok := s.Data().(float32); ok {
			return f, nil
		}
		if f, ok := s.Data().([]float32); ok && len(f) == 1 {
			return f[0], nil
		}
	}
	return 0, fmt.Errorf("%v: want a float32 scalar, got %T", op, v)
}
