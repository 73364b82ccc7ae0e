package ops

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/genpipe/genpipe/nn/gemm"
)

// ConvGeom is the geometry of a 2-D convolution from an input of In channels
// (H x W) to an output of Out channels (OH x OW). A transposed convolution
// runs the same geometry backwards, so one ConvGeom describes both.
type ConvGeom struct {
	In, Out        int // channels of the convolution's input and output
	H, W           int // input height and width
	KH, KW         int // kernel size
	SH, SW         int // stride
	PH, PW         int // zero padding on each side
	OH, OW         int // output height and width
	Batch          int
	inSize, outSz  int // per-image element counts
	colRows, plane int // im2col rows (In*KH*KW) and output pixels (OH*OW)
}

// NewConvGeom fills in the output size for a convolution of a batch of
// n images of c x h x w with out channels, a k x k kernel, stride s and
// padding p. outH/outW, when positive, fix the output size (a transposed
// convolution's input) and must be consistent with the others.
func NewConvGeom(n, c, h, w, out, kh, kw, sh, sw, ph, pw int) (ConvGeom, error) {
	g := ConvGeom{Batch: n, In: c, H: h, W: w, Out: out, KH: kh, KW: kw, SH: sh, SW: sw, PH: ph, PW: pw}
	if n <= 0 || c <= 0 || h <= 0 || w <= 0 || out <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 || pw < 0 {
		return g, fmt.Errorf("conv geometry: sizes must be positive (got batch %d, in %d, %dx%d, out %d, kernel %dx%d, stride %dx%d, pad %dx%d)", n, c, h, w, out, kh, kw, sh, sw, ph, pw)
	}
	g.OH = (h+2*ph-kh)/sh + 1
	g.OW = (w+2*pw-kw)/sw + 1
	if h+2*ph < kh || w+2*pw < kw || g.OH <= 0 || g.OW <= 0 {
		return g, fmt.Errorf("conv geometry: kernel %dx%d larger than padded input %dx%d", kh, kw, h+2*ph, w+2*pw)
	}
	g.fill()
	return g, nil
}

func (g *ConvGeom) fill() {
	g.inSize = g.In * g.H * g.W
	g.outSz = g.Out * g.OH * g.OW
	g.colRows = g.In * g.KH * g.KW
	g.plane = g.OH * g.OW
}

// InShape and OutShape are the NCHW shapes on each side; WeightShape is
// [Out, In, KH, KW].
func (g ConvGeom) InShape() []int     { return []int{g.Batch, g.In, g.H, g.W} }
func (g ConvGeom) OutShape() []int    { return []int{g.Batch, g.Out, g.OH, g.OW} }
func (g ConvGeom) WeightShape() []int { return []int{g.Out, g.In, g.KH, g.KW} }

// FLOPs is the multiply-add count of one forward pass times two.
func (g ConvGeom) FLOPs() int64 {
	return 2 * int64(g.Batch) * int64(g.Out) * int64(g.colRows) * int64(g.plane)
}

// col2im adds the [colRows, OH*OW] matrix col back into image x, the
// adjoint of im2col.
func (g *ConvGeom) col2im(col, x []float32) {
	p := g.plane
	for c := 0; c < g.In; c++ {
		img := x[c*g.H*g.W : (c+1)*g.H*g.W]
		for ky := 0; ky < g.KH; ky++ {
			for kx := 0; kx < g.KW; kx++ {
				row := col[((c*g.KH+ky)*g.KW+kx)*p:][:p]
				i := 0
				for oy := 0; oy < g.OH; oy++ {
					iy := oy*g.SH - g.PH + ky
					srcRow := row[i : i+g.OW]
					i += g.OW
					if iy < 0 || iy >= g.H {
						continue
					}
					dst := img[iy*g.W : (iy+1)*g.W]
					ix := -g.PW + kx
					if g.SW == 1 {
						lo, hi := 0, g.OW
						if ix < 0 {
							lo = -ix
						}
						if ix+g.OW > g.W {
							hi = g.W - ix
						}
						if hi > lo {
							d := dst[ix+lo : ix+hi]
							s := srcRow[lo:hi]
							for j := range d {
								d[j] += s[j]
							}
						}
						continue
					}
					for ox := range srcRow {
						if ix >= 0 && ix < g.W {
							dst[ix] += srcRow[ox]
						}
						ix += g.SW
					}
				}
			}
		}
	}
}

// workers is how many goroutines the batch-parallel kernels use.
func workers(n int) int {
	w := runtime.GOMAXPROCS(0)
	if w > n {
		w = n
	}
	if w < 1 {
		w = 1
	}
	return w
}

// parallelImages runs fn(worker, image) for every image of the batch,
// images split in contiguous ranges over the workers. Each call of
// fn is single-threaded SGEMM work, so the parallelism is across images.
func parallelImages(n int, fn func(w, i int)) {
	nw := workers(n)
	if nw == 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw)
	for w := 0; w < nw; w++ {
		lo, hi := w*n/nw, (w+1)*n/nw
		go func(w, lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				fn(w, i)
			}
		}(w, lo, hi)
	}
	wg.Wait()
}

// convScratch is one convolution call's working space and arguments,
// pooled so steady state does not allocate: the packed weights, the im2col
// row offsets and per-worker buffers. It is the job the workers run.
type convScratch struct {
	wa   gemm.PackedA
	flip []float32
	off  []int // phaseOffsets
	base []int // nhwcBases
	runs []int
	ws   []convWorker

	kind convJob
	g    ConvGeom  // the geometry the job runs (the flipped one for convT)
	a, b []float32 // the job's input and output (or second input) tensors
	n    int       // phase-layout output columns
	bias []float32 // jobForward: added per output channel when not nil
	relu bool      // jobForward with bias: max(·, 0) after the bias
}

type convJob int

const (
	jobForward convJob = iota
	jobTransposeCol
	jobWeight
)

// convWorker is one worker's operands and buffers; the gemm.Panels
// pointers handed to gemm point into it, so it stays put during a call.
type convWorker struct {
	col  phasePanels
	colT nhwcPanels
	dy   gemm.DenseB
	ya   gemm.DenseA
	ph   []float32 // an image's phase layout (channel-last for jobWeight)
	buf  []float32 // an output in phase layout, or an im2col matrix
	part []float32 // partial weight gradient
}

var scratchPool = sync.Pool{New: func() any { return new(convScratch) }}

func getScratch(nw int) *convScratch {
	s := scratchPool.Get().(*convScratch)
	if len(s.ws) < nw {
		s.ws = make([]convWorker, nw)
	}
	return s
}

// putScratch drops the references to the caller's tensors before pooling.
func putScratch(s *convScratch) {
	for i := range s.ws {
		s.ws[i].dy.Data = nil
	}
	s.a, s.b, s.bias, s.relu = nil, nil, nil, false
	scratchPool.Put(s)
}

func growBuf(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// setupPhase sizes the phase-layout buffers of nw workers for s.g and
// fills the im2col row offsets.
func (s *convScratch) setupPhase(nw, outBuf int) {
	g := &s.g
	if cap(s.off) < g.colRows {
		s.off = make([]int, g.colRows)
	}
	s.off = s.off[:g.colRows]
	g.phaseOffsets(s.off)
	_, _, s.n = g.phaseDims()
	for i := 0; i < nw; i++ {
		ws := &s.ws[i]
		ws.ph = growBuf(ws.ph, g.phaseSize())
		ws.buf = growBuf(ws.buf, outBuf)
		ws.col = phasePanels{ph: ws.ph, off: s.off}
	}
}

// setupNHWC sizes the channel-last buffers of nw workers for s.g and fills
// the im2col column bases.
func (s *convScratch) setupNHWC(nw, outBuf int) {
	g := &s.g
	if cap(s.base) < g.colRows {
		s.base, s.runs = make([]int, g.colRows), make([]int, g.colRows)
	}
	s.base, s.runs = s.base[:g.colRows], s.runs[:g.colRows]
	g.nhwcBases(s.base, s.runs)
	_, _, s.n = g.phaseDims()
	for i := 0; i < nw; i++ {
		ws := &s.ws[i]
		ws.ph = growBuf(ws.ph, g.nhwcSize())
		ws.buf = growBuf(ws.buf, outBuf)
		ws.colT = nhwcPanels{xt: ws.ph, in: g.In, base: s.base, run: s.runs}
	}
}

// run does worker wk's share, images [lo, hi), of the job.
func (s *convScratch) run(wk, lo, hi int) {
	g, ws, n := &s.g, &s.ws[wk], s.n
	switch s.kind {
	case jobForward: // a = x, b = y
		if g.pointwise() {
			for i := lo; i < hi; i++ {
				yi := s.b[i*g.outSz : (i+1)*g.outSz]
				ws.dy = gemm.DenseB{Data: s.a[i*g.inSize : (i+1)*g.inSize], Ld: g.plane}
				gemm.SgemmPackedA(&s.wa, g.plane, 1, &ws.dy, 0, yi, g.plane)
				if s.bias != nil {
					addBias(yi, g.plane, s.bias, s.relu)
				}
			}
			return
		}
		for i := lo; i < hi; i++ {
			g.toPhase(s.a[i*g.inSize:(i+1)*g.inSize], ws.ph)
			gemm.SgemmPackedA(&s.wa, n, 1, &ws.col, 0, ws.buf, g.phaseLd())
			if s.bias != nil {
				g.fromPhaseOutBias(ws.buf, s.b[i*g.outSz:(i+1)*g.outSz], s.bias, s.relu)
				continue
			}
			g.fromPhaseOut(ws.buf, s.b[i*g.outSz:(i+1)*g.outSz])
		}
	case jobTransposeCol: // a = y, b = x
		for i := lo; i < hi; i++ {
			xi := s.b[i*g.inSize : (i+1)*g.inSize]
			ws.dy = gemm.DenseB{Data: s.a[i*g.outSz : (i+1)*g.outSz], Ld: g.plane}
			gemm.SgemmPackedA(&s.wa, g.plane, 1, &ws.dy, 0, ws.buf, g.plane)
			clear(xi)
			g.col2im(ws.buf, xi)
		}
	case jobWeight: // a = x, b = y
		wsz := g.Out * g.colRows
		ws.part = growBuf(ws.part, wsz)
		ws.ya = gemm.DenseA{Data: ws.buf, Ld: g.phaseLd()}
		for i := lo; i < hi; i++ {
			g.toPhaseNHWC(s.a[i*g.inSize:(i+1)*g.inSize], ws.ph)
			if g.pointwise() {
				// The phase layout of y_i is y_i.
				ws.ya = gemm.DenseA{Data: s.b[i*g.outSz : (i+1)*g.outSz], Ld: g.plane}
			} else {
				g.toPhaseOut(s.b[i*g.outSz:(i+1)*g.outSz], ws.buf)
			}
			var beta float32 = 1
			if i == lo {
				beta = 0
			}
			gemm.SgemmPanels(g.Out, g.colRows, n, 1, &ws.ya, &ws.colT, beta, ws.part, g.colRows)
		}
	}
}

// runJob splits the batch into nw contiguous runs of images, one per
// worker, the caller taking the first.
func runJob(s *convScratch, nw int) {
	n := s.g.Batch
	if nw == 1 {
		s.run(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		go func(w int) {
			defer wg.Done()
			s.run(w, w*n/nw, (w+1)*n/nw)
		}(w)
	}
	s.run(0, 0, n/nw)
	wg.Wait()
}

// convForward computes y = conv(x, w): per image, y_i [Out, OH*OW] =
// w [Out, colRows] · im2col(x_i), with w packed once for the batch and
// im2col(x_i) packed straight from the image's phase layout.
func (g *ConvGeom) convForward(x, w, y []float32) {
	nw := workers(g.Batch)
	s := getScratch(nw)
	s.wa.Pack(false, g.Out, g.colRows, w, g.colRows)
	s.forward(nw, *g, x, y)
	putScratch(s)
}

// convForwardBias computes y = conv(x, w) + bias[o] per output channel,
// and max(y, 0) with relu, while each image's output is still in cache
// (a separate bias pass and ReLU pass over the whole batch cost more than
// the copy they ride on).
func (g *ConvGeom) convForwardBias(x, w, bias []float32, relu bool, y []float32) {
	nw := workers(g.Batch)
	s := getScratch(nw)
	s.wa.Pack(false, g.Out, g.colRows, w, g.colRows)
	s.bias, s.relu = bias, relu
	s.forward(nw, *g, x, y)
	putScratch(s)
}

// forward runs the forward convolution of geometry g with the weights
// already in s.wa.
func (s *convScratch) forward(nw int, g ConvGeom, x, y []float32) {
	s.kind, s.g, s.a, s.b = jobForward, g, x, y
	s.setupPhase(nw, g.Out*g.phaseLd())
	runJob(s, nw)
}

// flipped is the geometry of convTranspose as a forward convolution when
// the stride is 1: with the kernel rotated by 180° and its in and out
// channels swapped, convᵀ(y, w) = conv(y, w') with padding K-1-P. ok is
// false when that does not apply (stride > 1, or padding >= kernel).
func (g *ConvGeom) flipped() (f ConvGeom, ok bool) {
	if g.SH != 1 || g.SW != 1 || g.PH >= g.KH || g.PW >= g.KW {
		return f, false
	}
	f = ConvGeom{In: g.Out, Out: g.In, H: g.OH, W: g.OW, KH: g.KH, KW: g.KW, SH: 1, SW: 1,
		PH: g.KH - 1 - g.PH, PW: g.KW - 1 - g.PW, OH: g.H, OW: g.W, Batch: g.Batch}
	f.fill()
	return f, true
}

// convTranspose computes x = convᵀ(y, w), the adjoint of convForward in x.
// With stride 1 it is a forward convolution of y with the rotated kernel;
// otherwise, per image, col = wᵀ · y_i, then col2im. x is overwritten.
func (g *ConvGeom) convTranspose(y, w, x []float32) {
	nw := workers(g.Batch)
	s := getScratch(nw)
	defer putScratch(s)
	if f, ok := g.flipped(); ok {
		kk := g.KH * g.KW
		s.flip = growBuf(s.flip, g.Out*g.colRows)
		for o := 0; o < g.Out; o++ {
			for c := 0; c < g.In; c++ {
				src := w[(o*g.In+c)*kk:][:kk]
				dst := s.flip[(c*g.Out+o)*kk:][:kk]
				for t, v := range src {
					dst[kk-1-t] = v
				}
			}
		}
		s.wa.Pack(false, g.In, g.Out*kk, s.flip, g.Out*kk)
		s.forward(nw, f, y, x)
		return
	}
	s.wa.Pack(true, g.colRows, g.Out, w, g.colRows)
	for i := 0; i < nw; i++ {
		s.ws[i].buf = growBuf(s.ws[i].buf, g.colRows*g.plane)
	}
	s.kind, s.g, s.a, s.b = jobTransposeCol, *g, y, x
	runJob(s, nw)
}

// convWeight computes dw = Σ_i y_i · im2col(x_i)ᵀ, the adjoint of
// convForward in w, with y_i in the phase layout and x_i in its
// channel-last form. Each worker sums its run of images into its own
// partial gradient.
func (g *ConvGeom) convWeight(x, y, dw []float32) {
	nw := workers(g.Batch)
	s := getScratch(nw)
	defer putScratch(s)
	s.kind, s.g, s.a, s.b = jobWeight, *g, x, y
	s.setupNHWC(nw, g.Out*g.phaseLd())
	runJob(s, nw)
	// The partial sums have their columns in (tap, c) order.
	kk := g.KH * g.KW
	for o := 0; o < g.Out; o++ {
		row := dw[o*g.colRows : (o+1)*g.colRows]
		for wk := 0; wk < nw; wk++ {
			p := s.ws[wk].part[o*g.colRows : (o+1)*g.colRows]
			for tap := 0; tap < kk; tap++ {
				for c, v := range p[tap*g.In : (tap+1)*g.In] {
					if wk == 0 {
						row[c*kk+tap] = v
					} else {
						row[c*kk+tap] += v
					}
				}
			}
		}
	}
}
