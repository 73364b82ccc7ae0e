package ops

import (
	"fmt"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// NormEps is PyTorch's default eps for GroupNorm and BatchNorm2d.
const NormEps = 1e-5

// normStats holds the mean and 1/sqrt(var+eps) a normalisation's forward
// run used, per normalised set, for its backward ops, plus scratch for
// per-(sample, channel) partial sums. One is created per graph node, so
// forward and backward of that node share it; the tape machine runs the
// forward before the backward within a run.
type normStats struct {
	mean, rstd []float32
	scratch    []float32 // forward partial sums
	// dyA and dyB are Σdy and Σdy·x per (sample, channel), shared by the
	// three backward ops of a run: whichever runs first computes them for
	// the run (gen) and the gradient tensor (dy) at hand.
	dyA, dyB []float32
	gen      uint64 // forward runs so far
	sumsGen  uint64
	sumsDy   *float32
}

// dySums fills dyA and dyB unless they already hold this run's sums of dy.
func (st *normStats) dySums(g normGeom, x, dy []float32) {
	if st.gen != 0 && st.sumsGen == st.gen && st.sumsDy == &dy[0] {
		return
	}
	st.dyA = grow(st.dyA, g.n*g.c)
	st.dyB = grow(st.dyB, g.n*g.c)
	parallelImages(g.n, func(_, n int) {
		for c := 0; c < g.c; c++ {
			off := (n*g.c + c) * g.inner
			st.dyA[n*g.c+c], st.dyB[n*g.c+c] = sumDot4(dy[off:off+g.inner], x[off:off+g.inner])
		}
	})
	st.sumsGen, st.sumsDy = st.gen, &dy[0]
}

// sumDot4 is (Σa, Σa·b) in one pass.
func sumDot4(a, b []float32) (float32, float32) {
	b = b[:len(a)]
	var s0, s1, d0, d1 float32
	i := 0
	for ; i+2 <= len(a); i += 2 {
		s0 += a[i]
		s1 += a[i+1]
		d0 += a[i] * b[i]
		d1 += a[i+1] * b[i+1]
	}
	for ; i < len(a); i++ {
		s0 += a[i]
		d0 += a[i] * b[i]
	}
	return s0 + s1, d0 + d1
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// sum4 keeps four independent accumulators so the adds pipeline.
func sum4(x []float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i]
		s1 += x[i+1]
		s2 += x[i+2]
		s3 += x[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// sqdev4 is Σ (x - m)².
func sqdev4(x []float32, m float32) float32 {
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := x[i]-m, x[i+1]-m, x[i+2]-m, x[i+3]-m
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		a := x[i] - m
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}

// affine writes dst = a·src + b.
func affine(dst, src []float32, a, b float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = a*src[i] + b
	}
}

// affine2 writes dst = a·dy + k1·x + k0.
func affine2(dst, dy, x []float32, a, k1, k0 float32) {
	dy, x = dy[:len(dst)], x[:len(dst)]
	for i := range dst {
		dst[i] = a*dy[i] + k1*x[i] + k0
	}
}

// normGeom is the layout of an [N, C, inner] tensor.
type normGeom struct{ n, c, inner int }

func geomOf(shape []int) normGeom {
	g := normGeom{n: shape[0], c: shape[1], inner: 1}
	for _, d := range shape[2:] {
		g.inner *= d
	}
	return g
}

// gnKind selects one of the GroupNorm maps.
type gnKind int

const (
	gnForward gnKind = iota // (x, weight, bias) -> y
	gnDX                    // (x, weight, dy) -> dx
	gnDW                    // (x, dy) -> dweight
	gnDB                    // (x, dy) -> dbias
)

var gnNames = [...]string{"GroupNorm", "GroupNormGradX", "GroupNormGradW", "GroupNormGradB"}

// gnOp is GroupNorm with PyTorch's semantics: x [N, C, ...] is normalised
// per sample over each group of C/groups channels (biased variance, eps
// 1e-5), then scaled and shifted per channel. The two backward maps share
// the forward's statistics and are not differentiable again.
type gnOp struct {
	Base
	buf    *outCache
	kind   gnKind
	shape  []int
	groups int
	st     *normStats
}

func newGNOp(kind gnKind, shape []int, groups int, st *normStats) gnOp {
	return gnOp{Base: NewBase(kind.arity(), "%s(groups %d)%v", gnNames[kind], groups, shape), buf: newCache(), kind: kind, shape: shape, groups: groups, st: st}
}

// arity is the number of inputs of a GroupNorm or BatchNorm map.
func (k gnKind) arity() int {
	if k >= gnDW {
		return 2
	}
	return 3
}

func (op gnOp) Type() hm.Type {
	full, vec := tt(len(op.shape)), tt(1)
	switch op.kind {
	case gnForward:
		return hm.NewFnType(full, vec, vec, full)
	case gnDX:
		return hm.NewFnType(full, vec, full, full)
	default:
		return hm.NewFnType(full, full, vec)
	}
}

func (op gnOp) DiffWRT(n int) []bool {
	if op.kind == gnForward {
		return allDiff(n)
	}
	return make([]bool, n)
}

func (op gnOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if op.kind >= gnDW {
		return tensor.Shape{op.shape[1]}, nil
	}
	return tensor.Shape(append([]int(nil), op.shape...)), nil
}

func (op gnOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

// normInputs checks the inputs of a GroupNorm or BatchNorm op of the given
// kind on x of shape [N, C, ...] and returns their data: x, weight, bias
// (forward); x, weight, dy (input gradient); x, dy (parameter gradients).
func normInputs(op G.Op, kind gnKind, shape []int, c int, in []G.Value) ([][]float32, error) {
	vec := []int{c}
	var names []string
	var shapes [][]int
	switch kind {
	case gnForward:
		names, shapes = []string{"x", "weight", "bias"}, [][]int{shape, vec, vec}
	case gnDX:
		names, shapes = []string{"x", "weight", "dy"}, [][]int{shape, vec, shape}
	default:
		names, shapes = []string{"x", "dy"}, [][]int{shape, shape}
	}
	return checkedInputs(op, in, names, shapes)
}

func (op gnOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	g := geomOf(op.shape)
	data, err := normInputs(op, op.kind, op.shape, g.c, in)
	if err != nil {
		return nil, err
	}
	x := data[0]
	st := op.st
	cg := g.c / op.groups
	gsize := cg * g.inner
	if op.kind == gnForward || len(st.mean) != g.n*op.groups {
		op.stats(x, g)
	}
	if op.kind == gnForward {
		st.gen++
	}
	switch op.kind {
	case gnForward:
		w, b := data[1], data[2]
		d, y := op.buf.get(prealloc, op.shape)
		parallelImages(g.n, func(_, n int) {
			for gi := 0; gi < op.groups; gi++ {
				m, r := st.mean[n*op.groups+gi], st.rstd[n*op.groups+gi]
				for c := gi * cg; c < (gi+1)*cg; c++ {
					off := (n*g.c + c) * g.inner
					a := r * w[c]
					affine(y[off:off+g.inner], x[off:off+g.inner], a, b[c]-m*a)
				}
			}
		})
		return d, nil
	case gnDX:
		w, dy := data[1], data[2]
		d, dx := op.buf.get(prealloc, op.shape)
		M := float32(gsize)
		st.dySums(g, x, dy)
		parallelImages(g.n, func(_, n int) {
			for gi := 0; gi < op.groups; gi++ {
				m, r := st.mean[n*op.groups+gi], st.rstd[n*op.groups+gi]
				// s1 = Σ w·dy and s2 = Σ w·dy·xhat over the group.
				var s1, s2 float32
				for c := gi * cg; c < (gi+1)*cg; c++ {
					a, bx := st.dyA[n*g.c+c], st.dyB[n*g.c+c]
					s1 += w[c] * a
					s2 += w[c] * (bx - m*a)
				}
				s2 *= r
				k1 := -r * r * s2 / M
				k0 := -r*s1/M - m*k1
				for c := gi * cg; c < (gi+1)*cg; c++ {
					off := (n*g.c + c) * g.inner
					affine2(dx[off:off+g.inner], dy[off:off+g.inner], x[off:off+g.inner], r*w[c], k1, k0)
				}
			}
		})
		return d, nil
	default:
		dy := data[1]
		d, dv := op.buf.get(prealloc, []int{g.c})
		st.dySums(g, x, dy)
		clear(dv)
		for n := 0; n < g.n; n++ {
			for c := range dv {
				a := st.dyA[n*g.c+c]
				if op.kind == gnDB {
					dv[c] += a
					continue
				}
				gi := c / cg
				dv[c] += st.rstd[n*op.groups+gi] * (st.dyB[n*g.c+c] - st.mean[n*op.groups+gi]*a)
			}
		}
		return d, nil
	}
}

// stats fills the per-(sample, group) mean and rstd, two passes over x (the
// two-pass variance does not lose precision when the mean is large).
func (op gnOp) stats(x []float32, g normGeom) {
	st := op.st
	st.mean = grow(st.mean, g.n*op.groups)
	st.rstd = grow(st.rstd, g.n*op.groups)
	gsize := g.c / op.groups * g.inner
	parallelImages(g.n, func(_, n int) {
		for gi := 0; gi < op.groups; gi++ {
			off := (n*op.groups + gi) * gsize
			seg := x[off : off+gsize]
			m := sum4(seg) / float32(gsize)
			v := sqdev4(seg, m) / float32(gsize)
			st.mean[n*op.groups+gi] = m
			st.rstd[n*op.groups+gi] = float32(1 / math.Sqrt(float64(v)+NormEps))
		}
	})
}

func (op gnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if op.kind != gnForward {
		return nil, fmt.Errorf("%v: second derivatives of group normalisation are not implemented", op)
	}
	x, w := inputs[0], inputs[1]
	dx, err := G.ApplyOp(newGNOp(gnDX, op.shape, op.groups, op.st), x, w, grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(newGNOp(gnDW, op.shape, op.groups, op.st), x, grad)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(newGNOp(gnDB, op.shape, op.groups, op.st), x, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}

// RunningStats is the state a BatchNorm2d op keeps outside the graph:
// the layer's running_mean and running_var ([C]) and its
// num_batches_tracked counter (one value, or nil), which a training run
// updates in place and an eval run reads, so that they live in the layer's
// parameters rather than in the op (unlike gorgonia's BatchNorm).
type RunningStats struct {
	// Name is the layer's, for the op's name and messages.
	Name string
	// Mean and Var are running_mean and running_var; NumBatches is
	// num_batches_tracked (one value, or nil not to count).
	Mean, Var, NumBatches []float32
	// Momentum is the update rate (PyTorch: 0.1); Eps is added to the
	// variance (PyTorch: 1e-5).
	Momentum, Eps float32
}

// bnOp is BatchNorm2d. In training mode it normalises with the batch's
// statistics over (N, H, W) per channel and, as a side effect of every
// forward run, updates the running buffers in the layer's Params
// (momentum-weighted, unbiased variance) and counts the batch. In eval mode
// it normalises with the running statistics. The backward kinds share the
// forward's statistics and are not differentiable again.
type bnOp struct {
	Base
	buf      *outCache
	kind     gnKind // gnForward, gnDX, gnDW, gnDB
	shape    []int
	training bool
	bn       *RunningStats
	st       *normStats
}

func newBNOp(kind gnKind, shape []int, training bool, bn *RunningStats, st *normStats) bnOp {
	mode := "eval"
	if training {
		mode = "train"
	}
	return bnOp{
		Base: NewBase(kind.arity(), "BatchNorm2d%s(%s %s)%v", gnNames[kind][len("GroupNorm"):], bn.Name, mode, shape),
		buf:  newCache(), kind: kind, shape: shape, training: training, bn: bn, st: st,
	}
}

func (op bnOp) Type() hm.Type        { return gnOp{kind: op.kind, shape: op.shape}.Type() }
func (op bnOp) DiffWRT(n int) []bool { return gnOp{kind: op.kind}.DiffWRT(n) }
func (op bnOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return gnOp{kind: op.kind, shape: op.shape}.InferShape()
}
func (op bnOp) Do(in ...G.Value) (G.Value, error) { return op.UsePreallocDo(nil, in...) }

func (op bnOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	g := geomOf(op.shape)
	data, err := normInputs(op, op.kind, op.shape, g.c, in)
	if err != nil {
		return nil, err
	}
	x, st := data[0], op.st
	if op.kind == gnForward || len(st.mean) != g.c {
		if err := op.stats(x, g, op.kind == gnForward); err != nil {
			return nil, err
		}
	}
	if op.kind == gnForward {
		st.gen++
	}
	M := float32(g.n * g.inner)
	switch op.kind {
	case gnForward:
		w, b := data[1], data[2]
		d, y := op.buf.get(prealloc, op.shape)
		parallelImages(g.n, func(_, n int) {
			for c := 0; c < g.c; c++ {
				off := (n*g.c + c) * g.inner
				a := st.rstd[c] * w[c]
				affine(y[off:off+g.inner], x[off:off+g.inner], a, b[c]-st.mean[c]*a)
			}
		})
		return d, nil
	case gnDX:
		w, dy := data[1], data[2]
		d, dx := op.buf.get(prealloc, op.shape)
		if !op.training {
			// The statistics are constants: dx = dy·w·rstd.
			parallelImages(g.n, func(_, n int) {
				for c := 0; c < g.c; c++ {
					off := (n*g.c + c) * g.inner
					affine(dx[off:off+g.inner], dy[off:off+g.inner], w[c]*st.rstd[c], 0)
				}
			})
			return d, nil
		}
		st.dySums(g, x, dy)
		st.scratch = grow(st.scratch, 2*g.c)
		k1, k0 := st.scratch[:g.c], st.scratch[g.c:]
		for c := 0; c < g.c; c++ {
			var a, bx float32
			for n := 0; n < g.n; n++ {
				a += st.dyA[n*g.c+c]
				bx += st.dyB[n*g.c+c]
			}
			m, r := st.mean[c], st.rstd[c]
			s1 := w[c] * a
			s2 := w[c] * r * (bx - m*a)
			k1[c] = -r * r * s2 / M
			k0[c] = -r*s1/M - m*k1[c]
		}
		parallelImages(g.n, func(_, n int) {
			for c := 0; c < g.c; c++ {
				off := (n*g.c + c) * g.inner
				affine2(dx[off:off+g.inner], dy[off:off+g.inner], x[off:off+g.inner], st.rstd[c]*w[c], k1[c], k0[c])
			}
		})
		return d, nil
	default:
		dy := data[1]
		d, dv := op.buf.get(prealloc, []int{g.c})
		st.dySums(g, x, dy)
		for c := range dv {
			var a, bx float32
			for n := 0; n < g.n; n++ {
				a += st.dyA[n*g.c+c]
				bx += st.dyB[n*g.c+c]
			}
			if op.kind == gnDB {
				dv[c] = a
			} else {
				dv[c] = st.rstd[c] * (bx - st.mean[c]*a)
			}
		}
		return d, nil
	}
}

// stats fills the per-channel mean and rstd: the batch's in training mode
// (updating the running buffers when update is set), the running ones in
// eval mode.
func (op bnOp) stats(x []float32, g normGeom, update bool) error {
	st, bn := op.st, op.bn
	st.mean = grow(st.mean, g.c)
	st.rstd = grow(st.rstd, g.c)
	rm, rv := bn.Mean, bn.Var
	if len(rm) != g.c || len(rv) != g.c {
		return fmt.Errorf("%v: running statistics have %d and %d channels, input %d", op, len(rm), len(rv), g.c)
	}
	if !op.training {
		for c := range st.mean {
			st.mean[c] = rm[c]
			st.rstd[c] = float32(1 / math.Sqrt(float64(rv[c])+float64(bn.Eps)))
		}
		return nil
	}
	M := g.n * g.inner
	if M < 2 {
		return fmt.Errorf("%v: batch statistics need more than one value per channel, got %d", op, M)
	}
	// Per (sample, channel) sums, then per channel: the two-pass variance
	// over a channel spread across the batch.
	st.scratch = grow(st.scratch, g.n*g.c)
	parallelImages(g.n, func(_, n int) {
		for c := 0; c < g.c; c++ {
			off := (n*g.c + c) * g.inner
			st.scratch[n*g.c+c] = sum4(x[off : off+g.inner])
		}
	})
	for c := 0; c < g.c; c++ {
		var s float64
		for n := 0; n < g.n; n++ {
			s += float64(st.scratch[n*g.c+c])
		}
		st.mean[c] = float32(s / float64(M))
	}
	parallelImages(g.n, func(_, n int) {
		for c := 0; c < g.c; c++ {
			off := (n*g.c + c) * g.inner
			st.scratch[n*g.c+c] = sqdev4(x[off:off+g.inner], st.mean[c])
		}
	})
	mom := bn.Momentum
	for c := 0; c < g.c; c++ {
		var s float64
		for n := 0; n < g.n; n++ {
			s += float64(st.scratch[n*g.c+c])
		}
		v := s / float64(M)
		st.rstd[c] = float32(1 / math.Sqrt(v+float64(bn.Eps)))
		if update {
			rm[c] = (1-mom)*rm[c] + mom*st.mean[c]
			rv[c] = (1-mom)*rv[c] + mom*float32(s/float64(M-1))
		}
	}
	if update && bn.NumBatches != nil {
		bn.NumBatches[0]++
	}
	return nil
}

func (op bnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if op.kind != gnForward {
		return nil, fmt.Errorf("%v: second derivatives of batch normalisation are not implemented", op)
	}
	x, w := inputs[0], inputs[1]
	mk := func(k gnKind) bnOp { return newBNOp(k, op.shape, op.training, op.bn, op.st) }
	dx, err := G.ApplyOp(mk(gnDX), x, w, grad)
	if err != nil {
		return nil, err
	}
	dw, err := G.ApplyOp(mk(gnDW), x, grad)
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(mk(gnDB), x, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx, dw, db}, nil
}
