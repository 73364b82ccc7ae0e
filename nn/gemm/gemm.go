// Package gemm is a single-precision general matrix multiply for the nn
// layers: C = alpha*op(A)*op(B) + beta*C on row-major matrices, with the
// same argument conventions as cblas_sgemm(CblasRowMajor, ...).
//
// It follows the GotoBLAS/BLIS structure: op(B) is packed in kc x nc blocks
// and op(A) in mc x kc blocks (transposes are resolved while packing), and a
// register-blocked micro-kernel multiplies packed micro-panels. On amd64 the
// micro-kernel is Go assembly, 12x32 with AVX-512F or 6x16 with AVX2+FMA,
// chosen at run time; elsewhere, with the purego build tag, or after
// ForceGeneric(true) it is a portable Go 6x16 kernel.
// Large products are split over up to MaxThreads goroutines.
package gemm

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// kernel is one micro-kernel and the tile it computes: fn(kc, a, b, c,
// ldc, alpha, beta) sets the mr x nr tile at c (rows ldc apart) to
// alpha*Apanel*Bpanel + beta*C, never reading C when beta == 0, from a packed
// kc x mr A micro-panel and kc x nr B micro-panel. kc is its k block.
type kernel struct {
	name   string
	mr, nr int
	kc     int
	fn     microKernel
	alt    *kernel // same kernel with fewer rows (same nr and kc), or nil
}

// forRows picks, between k and its shorter variant, the one that computes
// m rows with the fewest loads: each k step of an mr x nr tile loads
// mr*nr/16 broadcast A values (one per FMA) and nr/16 B vectors, and a
// partial last tile costs as much as a full one. For 32 or 64 rows the
// 8-row tile does less work than 12-row tiles padded to 36 or 72.
func (k *kernel) forRows(m int) *kernel {
	if k.alt == nil || m <= 0 {
		return k
	}
	cost := func(k *kernel) int { return (m + k.mr - 1) / k.mr * (k.mr + 1) * k.nr / 16 }
	if cost(k.alt) < cost(k) {
		return k.alt
	}
	return k
}

type microKernel func(kc int, a, b, c []float32, ldc int, alpha, beta float32)

// Cache-block limits shared by all kernels. The packed kc x nr B
// micro-panel (16 or 32 KiB) stays in the 48 KiB L1d while the kernel
// sweeps an mc x kc A block (up to 240 KiB) kept in the 2 MiB L2; the
// kc x nc B block (up to 2 MiB) is reused from L2/L3 for every A block.
const (
	kcMax   = 384
	mcMax   = 240     // multiple of every kernel's mr
	ncMax   = 2048    // multiple of every kernel's nr
	tileMax = 12 * 32 // largest mr*nr
)

// parallelMinWork is the m*n*k below which Sgemm stays on the calling
// goroutine: under it, the hand-off to workers costs more than it saves.
const parallelMinWork = 96 * 96 * 96

var (
	available  = append(archKernels(), genericKernel)
	current    atomic.Pointer[kernel]
	maxThreads atomic.Int64
)

func init() {
	current.Store(available[0])
	// GENPIPE_GEMM_KERNEL lets a whole test or benchmark run use another
	// kernel without code changes.
	if v := os.Getenv("GENPIPE_GEMM_KERNEL"); v != "" {
		if err := SetKernel(v); err != nil {
			panic(err)
		}
	}
}

// Kernels lists the micro-kernels this machine can run, fastest first:
// some of "avx512", "avx2fma", then always "generic".
func Kernels() []string {
	names := make([]string, len(available))
	for i, k := range available {
		names[i] = k.name
	}
	return names
}

// Kernel names the micro-kernel Sgemm uses now.
func Kernel() string { return current.Load().name }

// SetKernel makes Sgemm use the named micro-kernel (one of Kernels()), or
// the fastest one for name "". The environment variable
// GENPIPE_GEMM_KERNEL sets it at start.
func SetKernel(name string) error {
	if name == "" {
		current.Store(available[0])
		return nil
	}
	for _, k := range available {
		if k.name == name {
			current.Store(k)
			return nil
		}
	}
	return fmt.Errorf("gemm: kernel %q not available on this machine (have %v)", name, Kernels())
}

// ForceGeneric selects the portable Go micro-kernel (on is true) or the
// fastest one (on is false); it is SetKernel("generic") or SetKernel("").
func ForceGeneric(on bool) {
	if on {
		current.Store(genericKernel)
	} else {
		current.Store(available[0])
	}
}

// SetMaxThreads sets how many goroutines one Sgemm call may use and returns
// the previous setting. n <= 0 means runtime.GOMAXPROCS(0) at call time,
// which is the default.
func SetMaxThreads(n int) int {
	if n < 0 {
		n = 0
	}
	return int(maxThreads.Swap(int64(n)))
}

// MaxThreads reports how many goroutines one Sgemm call may use.
func MaxThreads() int {
	if n := int(maxThreads.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C where op(X) is X, or X^T
// when its trans flag is set; op(A) is m x k, op(B) is k x n and C is m x n,
// all row-major with leading dimensions lda, ldb, ldc. With beta == 0, C is
// only written, so NaNs in it are ignored. It panics, naming the expected
// and actual values, when a dimension, leading dimension or slice length is
// inconsistent. Products large enough to pay for it run on up to
// MaxThreads goroutines; small ones run on the caller with no allocation.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(MaxThreads(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmSerial is Sgemm on the calling goroutine only, for callers that
// already run one product per core.
func SgemmSerial(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(1, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

func sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	check(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	p := problem{
		transA: transA, transB: transB,
		k: k, alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
		kern: current.Load().forRows(m),
	}
	if threads > 1 && m*n*k >= parallelMinWork {
		runParallel(&p, threads, m, n)
		return
	}
	p.run(0, m, 0, n)
}

// check panics on inconsistent arguments, in the spirit of gonum's checks
// but naming what was expected and what was passed.
func check(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 {
		panic(fmt.Sprintf("gemm: m = %d, want >= 0", m))
	}
	if n < 0 {
		panic(fmt.Sprintf("gemm: n = %d, want >= 0", n))
	}
	if k < 0 {
		panic(fmt.Sprintf("gemm: k = %d, want >= 0", k))
	}
	ar, ac := m, k // A as stored
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("a", "lda", transA, ar, ac, a, lda)
	checkMatrix("b", "ldb", transB, br, bc, b, ldb)
	checkMatrix("c", "ldc", false, m, n, c, ldc)
}

func checkMatrix(name, ldName string, trans bool, rows, cols int, x []float32, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: %s = %d, want >= %d (%s is stored %dx%d, trans=%t)", ldName, ld, max(1, cols), name, rows, cols, trans))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(x) < need {
		panic(fmt.Sprintf("gemm: len(%s) = %d, want >= %d (%s is stored %dx%d with %s = %d, trans=%t)", name, len(x), need, name, rows, cols, ldName, ld, trans))
	}
}

// scaleC handles the products that contribute nothing: C = beta*C.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// problem is one Sgemm call, shared read-only by the goroutines working
// on disjoint blocks of C.
type problem struct {
	transA, transB bool
	k              int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int
	kern           *kernel
	wg             sync.WaitGroup

	// Optional operand sources replacing a or b: an operand that packs
	// itself (pa, pb), or op(A) already packed (pre).
	pa, pb Panels
	pre    *PackedA
}

// buffers are one goroutine's packing space, sized for the largest blocks
// so any call can reuse them.
type buffers struct {
	a    [mcMax * kcMax]float32
	b    [ncMax * kcMax]float32
	tile [tileMax]float32
}

var bufPool = sync.Pool{New: func() any { return new(buffers) }}

// blockK splits k into near-equal blocks of at most kcMax, so a k just
// over a multiple of the limit does not leave a thin, slow last block.
func blockK(k, limit int) int {
	nb := (k + limit - 1) / limit
	return (k + nb - 1) / nb
}

// run computes rows [i0, i1) and columns [j0, j1) of C.
func (p *problem) run(i0, i1, j0, j1 int) {
	buf := bufPool.Get().(*buffers)
	defer bufPool.Put(buf)
	kern := p.kern
	kc0 := blockK(p.k, kern.kc)
	for jc := j0; jc < j1; jc += ncMax {
		nc := min(ncMax, j1-jc)
		for pc := 0; pc < p.k; pc += kc0 {
			kc := min(kc0, p.k-pc)
			// Later k blocks add onto what the first one stored.
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			if p.pb != nil {
				p.pb.PackPanels(buf.b[:], kern.nr, jc, nc, pc, kc)
			} else {
				packB(buf.b[:], p.b, p.ldb, p.transB, kern.nr, pc, kc, jc, nc)
			}
			for ic := i0; ic < i1; ic += mcMax {
				mc := min(mcMax, i1-ic)
				var a []float32
				switch {
				case p.pre != nil:
					a = p.pre.block(pc, kc, ic)
				case p.pa != nil:
					a = buf.a[:]
					p.pa.PackPanels(a, kern.mr, ic, mc, pc, kc)
				default:
					a = buf.a[:]
					packA(a, p.a, p.lda, p.transA, kern.mr, ic, mc, pc, kc)
				}
				p.macro(buf, a, ic, mc, jc, nc, kc, beta)
			}
		}
	}
}

// macro multiplies the packed mc x kc A block a by the packed kc x nc B block
// into C[ic:ic+mc, jc:jc+nc]. The B micro-panel is the outer loop so it
// stays in L1 while the A micro-panels stream from L2.
func (p *problem) macro(buf *buffers, a []float32, ic, mc, jc, nc, kc int, beta float32) {
	c, ldc, alpha := p.c, p.ldc, p.alpha
	mr, nr, fn := p.kern.mr, p.kern.nr, p.kern.fn
	for jr := 0; jr < nc; jr += nr {
		cols := min(nr, nc-jr)
		bp := buf.b[jr*kc : (jr+nr)*kc]
		for ir := 0; ir < mc; ir += mr {
			rows := min(mr, mc-ir)
			ap := a[ir*kc : (ir+mr)*kc]
			off := (ic+ir)*ldc + jc + jr
			if rows == mr && cols == nr {
				fn(kc, ap, bp, c[off:], ldc, alpha, beta)
				continue
			}
			// Edge tile: compute the full padded tile into scratch, then
			// merge only the valid part into C.
			t := buf.tile[:mr*nr]
			fn(kc, ap, bp, t, nr, 1, 0)
			for r := 0; r < rows; r++ {
				crow := c[off+r*ldc : off+r*ldc+cols]
				trow := t[r*nr : r*nr+cols]
				if beta == 0 {
					for j, v := range trow {
						crow[j] = alpha * v
					}
				} else {
					for j, v := range trow {
						crow[j] = alpha*v + beta*crow[j]
					}
				}
			}
		}
	}
}
