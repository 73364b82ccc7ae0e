package nn

import (
	"fmt"
	"runtime"
	"sync"
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

// direct reports whether the im2col matrix of an image is the image itself
// (1x1 kernel, stride 1, no padding), so no copy is needed.
func (g ConvGeom) direct() bool {
	return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0
}

// colPool recycles per-worker im2col buffers; sizes vary by layer, so a
// buffer too small is dropped and a larger one made.
var colPool sync.Pool

func getCol(n int) *[]float32 {
	if p, ok := colPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n)
	return &b
}

func putCol(p *[]float32) { colPool.Put(p) }

// im2col writes the [colRows, OH*OW] matrix of image x (In x H x W).
func (g *ConvGeom) im2col(x, col []float32) {
	p := g.plane
	for c := 0; c < g.In; c++ {
		img := x[c*g.H*g.W : (c+1)*g.H*g.W]
		for ky := 0; ky < g.KH; ky++ {
			for kx := 0; kx < g.KW; kx++ {
				row := col[((c*g.KH+ky)*g.KW+kx)*p:][:p]
				i := 0
				for oy := 0; oy < g.OH; oy++ {
					iy := oy*g.SH - g.PH + ky
					dst := row[i : i+g.OW]
					i += g.OW
					if iy < 0 || iy >= g.H {
						clear(dst)
						continue
					}
					src := img[iy*g.W : (iy+1)*g.W]
					ix := -g.PW + kx
					if g.SW == 1 {
						// Contiguous run: zero the padded ends, copy the middle.
						lo, hi := 0, g.OW
						if ix < 0 {
							lo = -ix
						}
						if ix+g.OW > g.W {
							hi = g.W - ix
						}
						if hi <= lo {
							clear(dst)
							continue
						}
						clear(dst[:lo])
						copy(dst[lo:hi], src[ix+lo:ix+hi])
						clear(dst[hi:])
						continue
					}
					for ox := range dst {
						if ix >= 0 && ix < g.W {
							dst[ox] = src[ix]
						} else {
							dst[ox] = 0
						}
						ix += g.SW
					}
				}
			}
		}
	}
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

// convForward computes y = conv(x, w): per image, y_i [Out, OH*OW] =
// w [Out, colRows] · im2col(x_i).
func (g *ConvGeom) convForward(x, w, y []float32) {
	parallelImages(g.Batch, func(_, i int) {
		xi := x[i*g.inSize : (i+1)*g.inSize]
		yi := y[i*g.outSz : (i+1)*g.outSz]
		if g.direct() {
			sgemmSerial(false, false, g.Out, g.plane, g.colRows, 1, w, g.colRows, xi, g.plane, 0, yi, g.plane)
			return
		}
		col := getCol(g.colRows * g.plane)
		g.im2col(xi, *col)
		sgemmSerial(false, false, g.Out, g.plane, g.colRows, 1, w, g.colRows, *col, g.plane, 0, yi, g.plane)
		putCol(col)
	})
}

// convTranspose computes x = convᵀ(y, w), the adjoint of convForward in x:
// per image, col = wᵀ · y_i, then col2im. x is overwritten.
func (g *ConvGeom) convTranspose(y, w, x []float32) {
	parallelImages(g.Batch, func(_, i int) {
		xi := x[i*g.inSize : (i+1)*g.inSize]
		yi := y[i*g.outSz : (i+1)*g.outSz]
		if g.direct() {
			sgemmSerial(true, false, g.colRows, g.plane, g.Out, 1, w, g.colRows, yi, g.plane, 0, xi, g.plane)
			return
		}
		col := getCol(g.colRows * g.plane)
		sgemmSerial(true, false, g.colRows, g.plane, g.Out, 1, w, g.colRows, yi, g.plane, 0, *col, g.plane)
		clear(xi)
		g.col2im(*col, xi)
		putCol(col)
	})
}

// convWeight computes dw = Σ_i y_i · im2col(x_i)ᵀ, the adjoint of
// convForward in w. Each worker accumulates its own partial sum.
func (g *ConvGeom) convWeight(x, y, dw []float32) {
	nw := workers(g.Batch)
	wsz := g.Out * g.colRows
	partial := make([][]float32, nw)
	partial[0] = dw
	clear(dw)
	bufs := make([]*[]float32, nw)
	for w := 1; w < nw; w++ {
		bufs[w] = getCol(wsz)
		partial[w] = *bufs[w]
		clear(partial[w])
	}
	parallelImages(g.Batch, func(w, i int) {
		xi := x[i*g.inSize : (i+1)*g.inSize]
		yi := y[i*g.outSz : (i+1)*g.outSz]
		if g.direct() {
			sgemmSerial(false, true, g.Out, g.colRows, g.plane, 1, yi, g.plane, xi, g.plane, 1, partial[w], g.colRows)
			return
		}
		col := getCol(g.colRows * g.plane)
		g.im2col(xi, *col)
		sgemmSerial(false, true, g.Out, g.colRows, g.plane, 1, yi, g.plane, *col, g.plane, 1, partial[w], g.colRows)
		putCol(col)
	})
	for w := 1; w < nw; w++ {
		p := partial[w]
		for j := range dw {
			dw[j] += p[j]
		}
		putCol(bufs[w])
	}
}
