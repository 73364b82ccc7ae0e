//go:build !amd64 || purego

package gemm

// archKernels is empty: there is no assembly micro-kernel for this
// architecture (or the purego tag asked for none).
func archKernels() []*kernel { return nil }
