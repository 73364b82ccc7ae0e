package ops

import (
	"fmt"
	"math"
	"sync"

	"github.com/chewxy/hm"
	"github.com/genpipe/genpipe/nn/gemm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// SelfAttention is single-head dot-product self-attention over the
// positions of a feature map, the attention block of a DDPM U-Net:
// qkv [N, 3C, H, W] holds the queries, keys and values (channels 0..C-1,
// C..2C-1, 2C..3C-1, as one 1x1 convolution with 3C outputs gives them, and
// as PyTorch's qkv.chunk(3, dim=1) splits them); with L = H·W positions
// and Q, K, V the [C, L] matrices of one item, the output [N, C, H, W] is
// V·softmax(QᵀK/√C)ᵀ, row i of the softmax being position i's weights over
// the positions j. Its gradient is one fused op that recomputes the
// softmax (L² per item is small next to the activations it would keep).
func SelfAttention(qkv *G.Node) (*G.Node, error) {
	s := qkv.Shape()
	if len(s) != 4 || s[1]%3 != 0 || s[1] == 0 {
		return nil, fmt.Errorf("self-attention: qkv: expected shape [N, 3C, H, W], got %v", s)
	}
	return G.ApplyOp(newAttnOp(s[0], s[1]/3, s[2], s[3]), qkv)
}

// attnGeom is the shape of one attention: batch, channels, height, width.
type attnGeom struct{ n, c, h, w int }

func (g attnGeom) l() int          { return g.h * g.w }
func (g attnGeom) inShape() []int  { return []int{g.n, 3 * g.c, g.h, g.w} }
func (g attnGeom) outShape() []int { return []int{g.n, g.c, g.h, g.w} }
func (g attnGeom) scale() float32  { return float32(1 / math.Sqrt(float64(g.c))) }

// attnScratch is one item's working space: the L×L attention matrix and
// its gradient.
type attnScratch struct{ p, dp []float32 }

var attnPool = sync.Pool{New: func() any { return new(attnScratch) }}

// probs sets p (L×L) to softmax(scale·QᵀK) of one item's q and k ([C, L]).
func (g attnGeom) probs(p, q, k []float32) {
	l := g.l()
	gemm.SgemmSerial(true, false, l, l, g.c, g.scale(), q, l, k, l, 0, p, l)
	for i := 0; i < l; i++ {
		row := p[i*l : (i+1)*l]
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		var s float32
		for j, v := range row {
			e := expf(v - m)
			row[j] = e
			s += e
		}
		inv := 1 / s
		for j := range row {
			row[j] *= inv
		}
	}
}

// eachItem runs fn(i) for every item of the batch on the machine's
// workers.
func eachItem(n int, fn func(i int)) {
	nw := workers(n)
	if nw <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw)
	for w := 0; w < nw; w++ {
		go func(lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				fn(i)
			}
		}(w*n/nw, (w+1)*n/nw)
	}
	wg.Wait()
}

// attnOp is the forward pass.
type attnOp struct {
	Base
	buf *outCache
	g   attnGeom
}

func newAttnOp(n, c, h, w int) attnOp {
	return attnOp{Base: NewBase(1, "SelfAttention(%d,%d,%d,%d)", n, c, h, w), buf: newCache(), g: attnGeom{n, c, h, w}}
}

func (op attnOp) Type() hm.Type                                  { return hm.NewFnType(tt(4), tt(4)) }
func (op attnOp) DiffWRT(int) []bool                             { return []bool{true} }
func (op attnOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.g.outShape(), nil }
func (op attnOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }

func (op attnOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"qkv"}, [][]int{op.g.inShape()})
	if err != nil {
		return nil, err
	}
	g := op.g
	x := data[0]
	d, o := op.buf.get(prealloc, g.outShape())
	l, c := g.l(), g.c
	eachItem(g.n, func(i int) {
		s := attnPool.Get().(*attnScratch)
		s.p = growBuf(s.p, l*l)
		base := i * 3 * c * l
		q, k, v := x[base:base+c*l], x[base+c*l:base+2*c*l], x[base+2*c*l:base+3*c*l]
		g.probs(s.p, q, k)
		// O = V·Pᵀ: [C, L]·[L, L]ᵀ.
		gemm.SgemmSerial(false, true, c, l, l, 1, v, l, s.p, l, 0, o[i*c*l:(i+1)*c*l], l)
		attnPool.Put(s)
	})
	return d, nil
}

func (op attnOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	dx, err := G.ApplyOp(attnGradOp{Base: NewBase(2, "SelfAttentionGrad(%d,%d,%d,%d)", op.g.n, op.g.c, op.g.h, op.g.w),
		buf: newCache(), g: op.g}, inputs[0], grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{dx}, nil
}

// attnGradOp is the gradient with respect to qkv given the output's
// gradient dO: with P recomputed, dV = dO·P, dP = dOᵀ·V,
// dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = scale·K·dSᵀ, dK = scale·Q·dS.
type attnGradOp struct {
	Base
	buf *outCache
	g   attnGeom
}

func (op attnGradOp) Type() hm.Type { return hm.NewFnType(tt(4), tt(4), tt(4)) }
func (op attnGradOp) DiffWRT(int) []bool {
	return []bool{false, false}
}
func (op attnGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return op.g.inShape(), nil }
func (op attnGradOp) Do(in ...G.Value) (G.Value, error)              { return op.UsePreallocDo(nil, in...) }

func (op attnGradOp) UsePreallocDo(prealloc G.Value, in ...G.Value) (G.Value, error) {
	data, err := checkedInputs(op, in, []string{"qkv", "output gradient"}, [][]int{op.g.inShape(), op.g.outShape()})
	if err != nil {
		return nil, err
	}
	g := op.g
	x, dout := data[0], data[1]
	d, dx := op.buf.get(prealloc, g.inShape())
	l, c, sc := g.l(), g.c, g.scale()
	eachItem(g.n, func(i int) {
		s := attnPool.Get().(*attnScratch)
		s.p, s.dp = growBuf(s.p, l*l), growBuf(s.dp, l*l)
		p, dp := s.p, s.dp
		base := i * 3 * c * l
		q, k, v := x[base:base+c*l], x[base+c*l:base+2*c*l], x[base+2*c*l:base+3*c*l]
		dq, dk, dv := dx[base:base+c*l], dx[base+c*l:base+2*c*l], dx[base+2*c*l:base+3*c*l]
		do := dout[i*c*l : (i+1)*c*l]
		g.probs(p, q, k)
		gemm.SgemmSerial(false, false, c, l, l, 1, do, l, p, l, 0, dv, l)
		gemm.SgemmSerial(true, false, l, l, c, 1, do, l, v, l, 0, dp, l)
		for r := 0; r < l; r++ {
			pr, dr := p[r*l:(r+1)*l], dp[r*l:(r+1)*l]
			var dot float32
			for j, pv := range pr {
				dot += pv * dr[j]
			}
			for j, pv := range pr {
				dr[j] = pv * (dr[j] - dot)
			}
		}
		// dp now holds dS.
		gemm.SgemmSerial(false, true, c, l, l, sc, k, l, dp, l, 0, dq, l)
		gemm.SgemmSerial(false, false, c, l, l, sc, q, l, dp, l, 0, dk, l)
		attnPool.Put(s)
	})
	return d, nil
}

func (op attnGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("%v: second derivatives are not implemented", op)
}

var (
	_ G.SDOp            = attnOp{}
	_ G.UsePreallocDoer = attnOp{}
	_ G.UsePreallocDoer = attnGradOp{}
)
