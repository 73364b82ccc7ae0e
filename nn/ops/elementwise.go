package ops

import (
	"fmt"
	"math"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// parallelRange runs fn over [0, n) split in one contiguous range per
// core. Element-wise kernels are memory-bound, so small tensors stay on the
// calling goroutine where a goroutine hand-off would cost more than it saves.
func parallelRange(n int, fn func(lo, hi int)) {
	nw := workers(n / (1 << 14))
	if nw <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw)
	for w := 0; w < nw; w++ {
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(w*n/nw, (w+1)*n/nw)
	}
	wg.Wait()
}

// expf is e^x in float32 (Cephes' expf: range reduction by ln 2 and a
// degree-6 polynomial, within 2 ulp). It is several times faster than
// float64 math.Exp, which dominated SiLU and sigmoid.
func expf(x float32) float32 {
	if x > 88.3 {
		x = 88.3
	} else if x < -87.3 {
		x = -87.3
	}
	t := x*1.44269504088896341 + 0.5
	n := int32(t)
	if float32(n) > t { // floor for negative t
		n--
	}
	fn := float32(n)
	x -= fn * 0.693359375
	x -= fn * -2.12194440e-4
	z := x * x
	y := ((((1.9875691500e-4*x+1.3981999507e-3)*x+8.3334519073e-3)*x+4.1665795894e-2)*x+1.6666665459e-1)*x + 5.0000001201e-1
	y = y*z + x + 1
	return y * math.Float32frombits(uint32(n+127)<<23)
}

func sigmoidf(x float32) float32 { return 1 / (1 + expf(-x)) }

// actChunk is how many elements the two-pass activations handle at a time
// (16 KB, so the second pass reads from L1).
const actChunk = 4096

// nonPositive is 1 when v <= 0 and 0 otherwise, without a branch: the
// signs of activations are random, and a mispredicted branch per element
// made ReLU cost as much as a sigmoid.
func nonPositive(v float32) uint32 {
	b := math.Float32bits(v)
	var z uint32
	if b == 0 {
		z = 1
	}
	return b>>31 | z
}

// tanhs writes dst[i] = tanh(src[i]) = 2·sigmoid(2x) - 1 with the vector
// sigmoid; near 0, where that form loses relative precision, the series
// x - x³/3 + 2x⁵/15 is used.
func tanhs(dst, src []float32) {
	dst = dst[:len(src)]
	for c := 0; c < len(src); c += actChunk {
		e := min(c+actChunk, len(src))
		d, x := dst[c:e], src[c:e]
		for i, v := range x {
			d[i] = 2 * v
		}
		sigmoids(d, d)
		for i, v := range x {
			if v > -0.03 && v < 0.03 {
				v2 := v * v
				d[i] = v * (1 - v2*(1.0/3-v2*(2.0/15)))
			} else {
				d[i] = 2*d[i] - 1
			}
		}
	}
}

// ActKind selects an element-wise activation (see Act).
type ActKind int

// The activations. Each is one fused pass forward and one backward, where
// gorgonia's built-ins take several passes and allocate per run.
const (
	ActReLU      ActKind = iota // max(x, 0)
	ActLeakyReLU                // x if x > 0 else alpha·x
	ActSigmoid                  // 1/(1+e^-x)
	ActTanh                     // tanh x
	ActSiLU                     // x·sigmoid(x) (swish)
)

var actNames = [...]string{"ReLU", "LeakyReLU", "Sigmoid", "Tanh", "SiLU"}

// String is the activation's name, as in op names ("LeakyReLU").
func (k ActKind) String() string {
	if k >= 0 && int(k) < len(actNames) {
		return actNames[k]
	}
	return fmt.Sprintf("ActKind(%d)", int(k))
}

// Valid reports whether k is one of the activations above.
func (k ActKind) Valid() bool { return k >= 0 && int(k) < len(actNames) }

// gradFromOutput reports whether the derivative is cheapest from the
// output (sigmoid, tanh) rather than the input.
func (k ActKind) gradFromOutput() bool { return k == ActSigmoid || k == ActTanh }

// piecewiseLinear reports whether f' is constant almost everywhere, so the
// derivative op has a zero derivative in its first input.
func (k ActKind) piecewiseLinear() bool { return k == ActReLU || k == ActLeakyReLU }

// actOp is y = f(x) for one ActKind, on any shape.
type actOp struct {
	Base
	buf   *outCache
	kind  ActKind
	alpha float32
	shape []int
}

func newActOp(kind ActKind, alpha float32, shape []int) actOp {
	id := NewBase(1, "%v%v", kind, shape)
	if kind == ActLeakyReLU {
		id = NewBase(1, "%v(%g)%v", kind, alpha, shape)
	}
	return actOp{Base: id, buf: newCache(), kind: kind, alpha: alpha, shape: shape}
}

func (op actOp) Type() hm.Type      { return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape))) }
func (op actOp) DiffWRT(int) []bool { return []bool{true} }
func (op actOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op actOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op actOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("%v: expected 1 input, got %d", op, len(in))
	}
	if err := checkShape(op, "x", shapeOf(in[0]), op.shape); err != nil {
		return nil, err
	}
	x, err := f32(op, in[0])
	if err != nil {
		return nil, err
	}
	d, y := op.buf.get(prealloc, op.shape)
	kind, alpha := op.kind, op.alpha
	parallelRange(len(x), func(lo, hi int) {
		src, dst := x[lo:hi], y[lo:hi]
		dst = dst[:len(src)]
		switch kind {
		case ActReLU, ActLeakyReLU:
			k := [2]float32{1, alpha}
			for i, v := range src {
				dst[i] = v * k[nonPositive(v)]
			}
		case ActSigmoid:
			sigmoids(dst, src)
		case ActTanh:
			tanhs(dst, src)
		case ActSiLU:
			// In L1-sized chunks: the sigmoid pass, then x·s while hot.
			for c := 0; c < len(src); c += actChunk {
				e := min(c+actChunk, len(src))
				d, x := dst[c:e], src[c:e]
				sigmoids(d, x)
				for i, v := range x {
					d[i] *= v
				}
			}
		}
	})
	return d, nil
}

func (op actOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	src := inputs[0]
	if op.kind.gradFromOutput() {
		src = output
	}
	dx, err := G.ApplyOp(newActGradOp(op.kind, op.alpha, op.shape), src, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// actGradOp is dx = f'(·)·dy, where · is the activation's input, or its
// output for sigmoid and tanh. It is linear in dy (its derivative there is
// itself), so gradient penalties through ReLU and LeakyReLU work; for the
// smooth activations a second derivative in the first input is refused
// with an error rather than silently dropped.
type actGradOp struct {
	Base
	buf   *outCache
	kind  ActKind
	alpha float32
	shape []int
}

func newActGradOp(kind ActKind, alpha float32, shape []int) actGradOp {
	return actGradOp{Base: NewBase(2, "%vGrad(%g)%v", kind, alpha, shape), buf: newCache(), kind: kind, alpha: alpha, shape: shape}
}

func (op actGradOp) Type() hm.Type {
	t := tt(len(op.shape))
	return hm.NewFnType(t, t, t)
}
func (op actGradOp) DiffWRT(int) []bool { return []bool{!op.kind.piecewiseLinear(), true} }
func (op actGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op actGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op actGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"x", "dy"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	x, dy := data[0], data[1]
	d, dx := op.buf.get(prealloc, op.shape)
	kind, alpha := op.kind, op.alpha
	parallelRange(len(x), func(lo, hi int) {
		src, g, dst := x[lo:hi], dy[lo:hi], dx[lo:hi]
		g, dst = g[:len(src)], dst[:len(src)]
		switch kind {
		case ActReLU, ActLeakyReLU:
			if kind == ActReLU {
				// f' is 0 or 1: a mask, eight values at a time. (g·0 is
				// +0 there, where the loop gives ±0.)
				n := reluGradVec(dst, src, g)
				src, g, dst = src[n:], g[n:], dst[n:]
			}
			k := [2]float32{1, alpha}
			for i, v := range src {
				dst[i] = g[i] * k[nonPositive(v)]
			}
		case ActSigmoid: // src is y
			for i, y := range src {
				dst[i] = g[i] * y * (1 - y)
			}
		case ActTanh: // src is y
			for i, y := range src {
				dst[i] = g[i] * (1 - y*y)
			}
		case ActSiLU:
			for c := 0; c < len(src); c += actChunk {
				e := min(c+actChunk, len(src))
				d, x, gg := dst[c:e], src[c:e], g[c:e]
				sigmoids(d, x)
				for i, v := range x {
					s := d[i]
					d[i] = gg[i] * s * (1 + v*(1-s))
				}
			}
		}
	})
	return d, nil
}

func (op actGradOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if !op.kind.piecewiseLinear() {
		return nil, fmt.Errorf("%v: second derivatives of %v are not implemented", op, op.kind)
	}
	op.buf = newCache()
	ddy, err := G.ApplyOp(op, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{nil, ddy}, nil
}

// mseOp is the mean squared error mean((p - t)²) over every element, a
// scalar. Targets are data: it is differentiated in p only.
type mseOp struct {
	Base
	shape []int
}

func newMSEOp(shape []int) mseOp { return mseOp{Base: NewBase(2, "MSE%v", shape), shape: shape} }

func (op mseOp) Type() hm.Type {
	return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape)), G.Float32)
}
func (op mseOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op mseOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}

func (op mseOp) Do(in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"prediction", "target"}, [][]int{op.shape, op.shape})
	if err != nil {
		return nil, err
	}
	p, t := data[0], data[1]
	var acc float64
	for i, v := range p {
		e := float64(v - t[i])
		acc += e * e
	}
	return G.NewF32(float32(acc / float64(len(p)))), nil
}

func (op mseOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dp, err := G.ApplyOp(newMSEGradOp(op.shape), inputs[0], inputs[1], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dp, nil}, nil
}

// mseGradOp is 2(p - t)·g/n for a scalar g.
type mseGradOp struct {
	Base
	buf   *outCache
	shape []int
}

func newMSEGradOp(shape []int) mseGradOp {
	return mseGradOp{Base: NewBase(3, "MSEGrad%v", shape), buf: newCache(), shape: shape}
}

func (op mseGradOp) Type() hm.Type {
	return hm.NewFnType(tt(len(op.shape)), tt(len(op.shape)), G.Float32, tt(len(op.shape)))
}
func (op mseGradOp) DiffWRT(int) []bool { return []bool{false, false, false} }
func (op mseGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}
func (op mseGradOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }
func (op mseGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	if len(in) != 3 {
		return nil, fmt.Errorf("%v: expected 3 inputs, got %d", op, len(in))
	}
	p, err := f32(op, in[0])
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
	if len(p) != len(t) {
		return nil, fmt.Errorf("%v: prediction has %d values, target %d", op, len(p), len(t))
	}
	d, o := op.buf.get(prealloc, op.shape)
	k := 2 * g / float32(len(p))
	for i, v := range p {
		o[i] = k * (v - t[i])
	}
	return d, nil
}

func (op mseGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
}

// outCache is an op node's own output tensor, kept across runs. The tape
// machine clears its registers on every Reset, so an op that relied on the
// prealloc argument alone would allocate its output afresh on every run
// (and the GC would hold up to twice the live set). A node's previous
// output is dead by the time the node runs again, so reusing it is safe.
// Ops built in SymDiff get their own cache; a nil cache falls back to out.
//
// A compiled program's memory plan (PlanMemory) gives the cache a slot in
// the program's arena, used while that program runs. A cache reached from
// two nodes or two programs is shared: it then keeps nothing and each run
// gets a fresh tensor, so no two of them ever write one buffer.
type outCache struct {
	d      *tensor.Dense
	slot   *slot
	owner  *G.Node
	shared bool
}

func newCache() *outCache { return new(outCache) }

// get returns the planned slot when its program is running, else the
// cached tensor when it has the wanted shape, else out(prealloc, shape),
// which it then keeps.
func (c *outCache) get(prealloc G.Value, shape []int) (*tensor.Dense, []float32) {
	if c == nil {
		return out(prealloc, shape)
	}
	planMu.Lock()
	s, shared := c.slot, c.shared
	planMu.Unlock()
	if shared {
		return out(nil, shape)
	}
	if s != nil {
		if d, ok := s.take(shape); ok {
			return d, d.Data().([]float32)
		}
	}
	if c.d == nil || !c.d.Shape().Eq(tensor.Shape(shape)) {
		c.d = tensor.New(tensor.WithShape(shape...), tensor.Of(tensor.Float32))
	}
	return c.d, c.d.Data().([]float32)
}
