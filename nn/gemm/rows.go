package gemm

import "fmt"

// PackRows copies len(offs) runs of w values into consecutive rows of dst:
// row k is src[base+offs[k] : base+offs[k]+w]. It is the inner loop of a
// Panels operand whose k rows start at arbitrary offsets (an im2col matrix
// read from an image); for w = 32 on AVX-512 it is two vector moves a row.
func PackRows(dst, src []float32, w, base int, offs []int) {
	n := len(offs)
	if n == 0 || w <= 0 {
		return
	}
	if len(dst) < n*w {
		panic(fmt.Sprintf("gemm: PackRows len(dst) = %d, want >= %d", len(dst), n*w))
	}
	lo, hi := offs[0], offs[0]
	for _, o := range offs {
		lo, hi = min(lo, o), max(hi, o)
	}
	if base+lo < 0 || base+hi+w > len(src) {
		panic(fmt.Sprintf("gemm: PackRows reads src[%d:%d], len(src) = %d", base+lo, base+hi+w, len(src)))
	}
	if w == 32 && hasRows32 {
		copyRows32(&dst[0], &src[0], &offs[0], n, base)
		return
	}
	for k, o := range offs {
		copy(dst[k*w:(k+1)*w], src[base+o:])
	}
}

// PackStrided copies n runs of w values into consecutive rows of dst: row
// k is src[base+k*stride : base+k*stride+w].
func PackStrided(dst, src []float32, w, base, stride, n int) {
	if n <= 0 || w <= 0 {
		return
	}
	if len(dst) < n*w {
		panic(fmt.Sprintf("gemm: PackStrided len(dst) = %d, want >= %d", len(dst), n*w))
	}
	first, last := base, base+(n-1)*stride
	if min(first, last) < 0 || max(first, last)+w > len(src) {
		panic(fmt.Sprintf("gemm: PackStrided reads src[%d:%d], len(src) = %d", min(first, last), max(first, last)+w, len(src)))
	}
	if w == 32 && hasRows32 {
		copyStrided32(&dst[0], &src[base], n, stride)
		return
	}
	for k := 0; k < n; k++ {
		copy(dst[k*w:(k+1)*w], src[base+k*stride:])
	}
}

// Copy2D copies a rows x cols block: dst[r*ldd+j] = src[r*lds+j]. With
// zeroGap it also zeroes dst[r*ldd+cols : (r+1)*ldd] after each row but
// the last, so a padded layout is written in one pass. It is for the many
// short rows (7 to 32 values) of image-sized tensors, where a copy call
// per row costs more than the copy.
func Copy2D(dst []float32, ldd int, src []float32, lds int, rows, cols int, zeroGap bool) {
	if rows <= 0 || cols <= 0 {
		return
	}
	if ldd < cols || lds < cols {
		panic(fmt.Sprintf("gemm: Copy2D ldd = %d, lds = %d, want >= cols = %d", ldd, lds, cols))
	}
	if need := (rows-1)*ldd + cols; len(dst) < need {
		panic(fmt.Sprintf("gemm: Copy2D len(dst) = %d, want >= %d", len(dst), need))
	}
	if need := (rows-1)*lds + cols; len(src) < need {
		panic(fmt.Sprintf("gemm: Copy2D len(src) = %d, want >= %d", len(src), need))
	}
	gap := 0
	if zeroGap {
		gap = ldd - cols
	}
	if hasRows32 {
		copy2D(&dst[0], ldd, &src[0], lds, rows, cols, gap)
		return
	}
	for r := 0; r < rows; r++ {
		copy(dst[r*ldd:r*ldd+cols], src[r*lds:])
		if gap > 0 && r < rows-1 {
			clear(dst[r*ldd+cols : (r+1)*ldd])
		}
	}
}
