package nn

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemm and sgemmSerial compute C = alpha·op(A)·op(B) + beta·C on row-major
// matrices. sgemmSerial runs on the calling goroutine: the batch-parallel
// kernels call it from their own workers.
var (
	sgemm       = gonumSgemm
	sgemmSerial = gonumSgemm
)

func gonumSgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	gonum.Implementation{}.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
