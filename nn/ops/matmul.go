package ops

import "github.com/genpipe/genpipe/nn/gemm"

// sgemm and sgemmSerial compute C = alpha·op(A)·op(B) + beta·C on row-major
// matrices. sgemmSerial runs on the calling goroutine: the batch-parallel
// kernels call it from their own workers, which already use every core.
var (
	sgemm       = gemm.Sgemm
	sgemmSerial = gemm.SgemmSerial
)
