package gemm

import "fmt"

// Panels is an operand that writes its own packed micro-panels, so a caller
// whose matrix is implicit (an im2col matrix, say) can feed the
// micro-kernel without ever storing the matrix.
//
// PackPanels writes rows [i0, i0+rows) of op(A) (for an A operand) or
// columns [i0, i0+rows) of op(B) (for a B operand), over the k indices
// [p0, p0+kc), into dst as ceil(rows/w) micro-panels of kc*w values each:
// panel q holds rows i0+q*w ... i0+q*w+w-1, and within a panel the w values
// of one k index are adjacent (element (i, p) of panel q is at
// dst[q*w*kc + (p-p0)*w + (i-i0-q*w)]). Entries of the last panel past rows
// may hold anything: they only reach the part of an edge tile that is
// discarded. dst may hold stale data from an earlier call.
type Panels interface {
	PackPanels(dst []float32, w, i0, rows, p0, kc int)
}

// DenseB is an untransposed row-major k x n matrix (element (p, j) at
// Data[p*Ld+j]) as a B operand of SgemmPackedA.
type DenseB struct {
	Data []float32
	Ld   int
}

// PackPanels implements Panels.
func (d *DenseB) PackPanels(dst []float32, w, j0, cols, p0, kc int) {
	packB(dst, d.Data, d.Ld, false, w, p0, kc, j0, cols)
}

// DenseA is an untransposed row-major m x k matrix (element (i, p) at
// Data[i*Ld+p]) as an A operand of SgemmPanels.
type DenseA struct {
	Data []float32
	Ld   int
}

// PackPanels implements Panels.
func (d *DenseA) PackPanels(dst []float32, w, i0, rows, p0, kc int) {
	packA(dst, d.Data, d.Ld, false, w, i0, rows, p0, kc)
}

// PackedA is op(A) packed once for the micro-kernel in use when Pack ran,
// so a product repeated with the same A (a convolution's weights applied
// to every image of a batch) skips packing A each time. The zero value is
// empty; Pack reuses its storage when it is large enough.
type PackedA struct {
	kern      *kernel
	m, k, kc0 int
	mPad      int
	data      []float32
}

// Pack stores op(A), m x k, for later SgemmPackedA calls; a, lda and trans
// follow Sgemm's conventions. It panics on inconsistent arguments.
func (pa *PackedA) Pack(trans bool, m, k int, a []float32, lda int) {
	if m < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: PackedA.Pack m = %d, k = %d, want >= 0", m, k))
	}
	ar, ac := m, k
	if trans {
		ar, ac = k, m
	}
	checkMatrix("a", "lda", trans, ar, ac, a, lda)
	kern := current.Load().forRows(m)
	pa.kern, pa.m, pa.k = kern, m, k
	pa.mPad = (m + kern.mr - 1) / kern.mr * kern.mr
	if k == 0 || m == 0 {
		pa.kc0 = 0
		return
	}
	pa.kc0 = blockK(k, kern.kc)
	if need := pa.mPad * k; cap(pa.data) < need {
		pa.data = make([]float32, need)
	} else {
		pa.data = pa.data[:need]
	}
	for pc := 0; pc < k; pc += pa.kc0 {
		kc := min(pa.kc0, k-pc)
		packA(pa.data[pc*pa.mPad:], a, lda, trans, kern.mr, 0, m, pc, kc)
	}
}

// Rows is m, the number of rows of the packed op(A).
func (pa *PackedA) Rows() int { return pa.m }

// Cols is k, the number of columns of the packed op(A).
func (pa *PackedA) Cols() int { return pa.k }

// block is the packed A block of k indices [pc, pc+kc) from row ic on;
// Pack stored each k block as all of its mr-row panels in row order.
func (pa *PackedA) block(pc, kc, ic int) []float32 {
	return pa.data[pc*pa.mPad+ic*kc : pc*pa.mPad+pa.mPad*kc]
}

// SgemmPackedA computes C = alpha*op(A)*op(B) + beta*C on the calling
// goroutine, with op(A) (m x k) from a and op(B) (k x n) packed by b. C is
// m x n row-major with leading dimension ldc; beta == 0 only writes C. It
// uses the micro-kernel a was packed for.
func SgemmPackedA(a *PackedA, n int, alpha float32, b Panels, beta float32, c []float32, ldc int) {
	if a.kern == nil {
		panic("gemm: SgemmPackedA with a PackedA that was never packed")
	}
	m, k := a.m, a.k
	if n < 0 {
		panic(fmt.Sprintf("gemm: n = %d, want >= 0", n))
	}
	checkMatrix("c", "ldc", false, m, n, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	p := problem{k: k, alpha: alpha, beta: beta, c: c, ldc: ldc, kern: a.kern, pb: b, pre: a}
	p.run(0, m, 0, n)
}

// SgemmPanels computes C = alpha*op(A)*op(B) + beta*C on the calling
// goroutine, with op(A) (m x k) and op(B) (k x n) packed by a and b. C is
// m x n row-major with leading dimension ldc; beta == 0 only writes C.
func SgemmPanels(m, n, k int, alpha float32, a, b Panels, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: m, n, k = %d, %d, %d, want >= 0", m, n, k))
	}
	checkMatrix("c", "ldc", false, m, n, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	p := problem{k: k, alpha: alpha, beta: beta, c: c, ldc: ldc, kern: current.Load().forRows(m), pa: a, pb: b}
	p.run(0, m, 0, n)
}
