package ops

import (
	"math"

	"github.com/genpipe/genpipe/nn/gemm"
)

// Implicit GEMM for the convolutions. Each image is first rearranged into
// its "phase" layout: zero-padded, and for stride s split into s x s
// sub-images (phase (ry, rx) holds the padded pixels (i*s+ry, j*s+rx)), each
// wq values wide. Output pixel (oy, ox) is then given the column index
// oy*wq + ox, and the im2col row of kernel tap (c, ky, kx) becomes a
// contiguous run of the phase image of (c, ky%s, kx%s) starting at a fixed
// offset: no bounds tests, no padding logic, and gemm's panels are filled by
// straight copies. The price is wq-OW unused columns per output row (two
// for a 3x3 stride-1 convolution), which the kernels compute and drop.

// phaseSlack is the zero tail after a phase image, so the panel packer can
// copy whole micro-panel widths (up to 32 columns) past the last column.
const phaseSlack = 64

// phaseDims returns the size of one phase sub-image and the number of
// columns n = (OH-1)*wq + OW of the phase-layout output.
func (g *ConvGeom) phaseDims() (hq, wq, n int) {
	hq = (g.H + 2*g.PH + g.SH - 1) / g.SH
	wq = (g.W + 2*g.PW + g.SW - 1) / g.SW
	return hq, wq, (g.OH-1)*wq + g.OW
}

// phaseSize is the length of an image's phase layout, slack included.
func (g *ConvGeom) phaseSize() int {
	hq, wq, _ := g.phaseDims()
	return g.In*g.SH*g.SW*hq*wq + phaseSlack
}

// phaseOffsets sets off[p] to where the im2col row p = (c, ky, kx) starts in
// the phase layout.
func (g *ConvGeom) phaseOffsets(off []int) {
	hq, wq, _ := g.phaseDims()
	p := 0
	for c := 0; c < g.In; c++ {
		for ky := 0; ky < g.KH; ky++ {
			for kx := 0; kx < g.KW; kx++ {
				off[p] = ((c*g.SH+ky%g.SH)*g.SW+kx%g.SW)*hq*wq + (ky/g.SH)*wq + kx/g.SW
				p++
			}
		}
	}
}

// toPhase writes the phase layout of image x (In x H x W) into ph, which
// is phaseSize() long.
func (g *ConvGeom) toPhase(x, ph []float32) {
	hq, wq, _ := g.phaseDims()
	hw, q := g.H*g.W, hq*wq
	if g.SH == 1 && g.SW == 1 {
		// One sub-image per channel: the image framed by PH rows and PW
		// columns of zeros; the zeros between rows go with the copy.
		for c := 0; c < g.In; c++ {
			sub := ph[c*q : (c+1)*q]
			first := g.PH*wq + g.PW
			clear(sub[:first])
			gemm.Copy2D(sub[first:], wq, x[c*hw:(c+1)*hw], g.W, g.H, g.W, true)
			clear(sub[first+(g.H-1)*wq+g.W:])
		}
		clear(ph[g.In*q:])
		return
	}
	for c := 0; c < g.In; c++ {
		img := x[c*hw : (c+1)*hw]
		for ry := 0; ry < g.SH; ry++ {
			for rx := 0; rx < g.SW; rx++ {
				sub := ph[((c*g.SH+ry)*g.SW+rx)*q:][:q]
				ix0 := rx - g.PW // input column of phase column 0
				for i := 0; i < hq; i++ {
					row := sub[i*wq : (i+1)*wq]
					iy := i*g.SH + ry - g.PH
					if iy < 0 || iy >= g.H {
						clear(row)
						continue
					}
					src := img[iy*g.W : (iy+1)*g.W]
					if g.SW == 1 {
						lo, hi := max(0, -ix0), min(wq, g.W-ix0)
						if hi <= lo {
							clear(row)
							continue
						}
						clear(row[:lo])
						copy(row[lo:hi], src[ix0+lo:ix0+hi])
						clear(row[hi:])
						continue
					}
					ix := ix0
					for j := range row {
						if ix >= 0 && ix < g.W {
							row[j] = src[ix]
						} else {
							row[j] = 0
						}
						ix += g.SW
					}
				}
			}
		}
	}
	clear(ph[g.In*g.SH*g.SW*q:])
}

// phasePanels is the im2col matrix of one image (rows (c, ky, kx), columns
// the phase-layout output pixels) as a B operand: y_i = w · im2col(x_i).
type phasePanels struct {
	ph  []float32 // the image's phase layout
	off []int     // phaseOffsets
}

// PackPanels implements gemm.Panels.
func (pp *phasePanels) PackPanels(dst []float32, w, j0, cols, p0, kc int) {
	off := pp.off[p0 : p0+kc]
	for q := 0; q*w < cols; q++ {
		gemm.PackRows(dst[q*w*kc:(q+1)*w*kc], pp.ph, w, j0+q*w, off)
	}
}

// phaseLd is the row stride of a phase-layout output: OH rows of wq
// columns per channel, so the rows of all channels are evenly spaced.
func (g *ConvGeom) phaseLd() int {
	_, wq, _ := g.phaseDims()
	return g.OH * wq
}

// toPhaseOut writes y (Out x OH x OW) into yp (Out rows phaseLd apart) in
// the phase-layout column order, zero in the unused columns.
func (g *ConvGeom) toPhaseOut(y, yp []float32) {
	_, wq, _ := g.phaseDims()
	gemm.Copy2D(yp, wq, y, g.OW, g.Out*g.OH, g.OW, true)
}

// fromPhaseOut copies the used columns of yp (Out rows phaseLd apart) into
// y.
func (g *ConvGeom) fromPhaseOut(yp, y []float32) {
	_, wq, _ := g.phaseDims()
	gemm.Copy2D(y, g.OW, yp, wq, g.Out*g.OH, g.OW, false)
}

// fromPhaseOutBias is fromPhaseOut after adding the bias (and ReLU) to
// yp in place (see addBias).
func (g *ConvGeom) fromPhaseOutBias(yp, y, bias []float32, relu bool) {
	addBias(yp, g.phaseLd(), bias, relu)
	g.fromPhaseOut(yp, y)
}

// addBias adds bias[o] to the block y[o*ld : (o+1)*ld] of each output
// channel o, then, with relu, clears negative values to +0 (the ReLU op's
// derivative treats ±0 alike). It runs over each channel's whole block,
// a phase layout's unused columns included: one long branch-free loop is
// faster than one per 7- or 14-wide row.
func addBias(y []float32, ld int, bias []float32, relu bool) {
	for o, b := range bias {
		row := y[o*ld : (o+1)*ld]
		row = row[addBiasVec(row, b, relu):]
		if relu {
			for j, v := range row {
				u := math.Float32bits(v + b)
				row[j] = math.Float32frombits(u &^ uint32(int32(u)>>31))
			}
			continue
		}
		for j := range row {
			row[j] += b
		}
	}
}

// pointwise reports whether g is a 1x1 convolution with stride 1 and no
// padding: its phase layouts are the images themselves, so the GEMM reads
// and writes them in place instead of through copies.
func (g *ConvGeom) pointwise() bool {
	return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0
}

// The weight gradient reads its images channel-last ("NHWC" phase layout:
// position-major, the In channels of one position adjacent). Its im2col
// columns are then ordered (tap, c) rather than (c, tap), and for one
// output pixel the channels of a tap, and of taps side by side, are one
// contiguous run: gemm's B panels are filled by straight copies instead of
// the transposes an (c, tap) order needs. Only the image is transposed,
// once, not its KH*KW-times larger im2col matrix.

// toPhaseNHWC writes the channel-last phase layout of image x into xt:
// element (position, c) at xt[position*In + c], positions numbered as in
// toPhase's sub-images.
func (g *ConvGeom) toPhaseNHWC(x, xt []float32) {
	hq, wq, _ := g.phaseDims()
	hw, in := g.H*g.W, g.In
	// One phase row at a time (wq*In values, a few KiB) so the strided
	// writes stay in L1; channel-major order would miss on every write.
	for ry := 0; ry < g.SH; ry++ {
		for rx := 0; rx < g.SW; rx++ {
			for i := 0; i < hq; i++ {
				row := xt[((ry*g.SW+rx)*hq+i)*wq*in:][:wq*in]
				iy := i*g.SH + ry - g.PH
				if iy < 0 || iy >= g.H {
					clear(row)
					continue
				}
				// Columns [lo, hi) of the phase row fall inside the image.
				ix0 := rx - g.PW
				lo := 0
				if ix0 < 0 {
					lo = min((-ix0+g.SW-1)/g.SW, wq)
				}
				hi := lo
				if g.W-1-ix0 >= 0 {
					hi = max(lo, min(wq, (g.W-1-ix0)/g.SW+1))
				}
				clear(row[:lo*in])
				clear(row[hi*in:])
				c := 0
				if g.SW == 1 && hi > lo {
					// Four channels at a time: one four-value store per
					// position.
					n := hi - lo
					for ; c+4 <= in; c += 4 {
						s0 := x[c*hw+iy*g.W+ix0+lo:][:n]
						s1 := x[(c+1)*hw+iy*g.W+ix0+lo:][:n]
						s2 := x[(c+2)*hw+iy*g.W+ix0+lo:][:n]
						s3 := x[(c+3)*hw+iy*g.W+ix0+lo:][:n]
						d := row[lo*in+c:][:(n-1)*in+4]
						for j := range s0 {
							*(*[4]float32)(d[j*in:]) = [4]float32{s0[j], s1[j], s2[j], s3[j]}
						}
					}
				}
				for ; c < in; c++ {
					src := x[c*hw+iy*g.W:][:g.W]
					d := row[c:]
					ix := ix0 + lo*g.SW
					for j := lo; j < hi; j++ {
						d[j*in] = src[ix]
						ix += g.SW
					}
				}
			}
		}
	}
}

// nhwcSize is the length of an image's channel-last phase layout.
func (g *ConvGeom) nhwcSize() int {
	hq, wq, _ := g.phaseDims()
	return g.SH * g.SW * hq * wq * g.In
}

// nhwcBases sets base[col] for the im2col columns in (tap, c) order to
// where column col starts in the channel-last layout (its value for phase
// pixel j is at base[col] + j*In), and run[col] to how many columns from
// col on are consecutive in memory.
func (g *ConvGeom) nhwcBases(base, run []int) {
	hq, wq, _ := g.phaseDims()
	col := 0
	for ky := 0; ky < g.KH; ky++ {
		for kx := 0; kx < g.KW; kx++ {
			off := (((ky%g.SH)*g.SW+kx%g.SW)*hq+ky/g.SH)*wq + kx/g.SW
			for c := 0; c < g.In; c++ {
				base[col] = off*g.In + c
				col++
			}
		}
	}
	for col := len(base) - 1; col >= 0; col-- {
		run[col] = 1
		if col+1 < len(base) && base[col+1] == base[col]+1 {
			run[col] = run[col+1] + 1
		}
	}
}

// nhwcPanels is the transposed im2col matrix of one image, rows the
// phase-layout output pixels and columns (tap, c), as the B operand of the
// weight gradient dw += y_i · im2col(x_i)ᵀ.
type nhwcPanels struct {
	xt        []float32
	in        int
	base, run []int
}

// PackPanels implements gemm.Panels.
func (np *nhwcPanels) PackPanels(dst []float32, w, j0, cols, p0, kc int) {
	in := np.in
	for q := 0; q*w < cols; q++ {
		c0 := j0 + q*w
		n := min(w, cols-q*w)
		d := dst[q*w*kc : (q+1)*w*kc]
		if n == w && np.run[c0] >= w {
			gemm.PackStrided(d, np.xt, w, np.base[c0]+p0*in, in, kc)
			continue
		}
		for t := 0; t < n; t++ {
			src := np.xt[np.base[c0+t]+p0*in:]
			for k := 0; k < kc; k++ {
				d[k*w+t] = src[k*in]
			}
		}
	}
}
