//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// x/sys/cpu already folds in whether the OS saves the ymm/zmm registers.
var (
	hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	hasAVX512  = cpu.X86.HasAVX512F
)

// archKernels lists the assembly kernels this CPU runs, fastest first.
func archKernels() []*kernel {
	var ks []*kernel
	if hasAVX512 {
		ks = append(ks, &kernel{name: "avx512", mr: 12, nr: 32, kc: 384, fn: kernelAVX512,
			alt: &kernel{name: "avx512", mr: 8, nr: 32, kc: 384, fn: kernelAVX512x8}})
	}
	if hasAVX2FMA {
		ks = append(ks, &kernel{name: "avx2fma", mr: 6, nr: 16, kc: 256, fn: kernelAVX2})
	}
	return ks
}

// kernel6x16 computes the 6x16 tile C = alpha*Apanel*Bpanel + beta*C from
// packed panels a (kc x 6, k-major) and b (kc x 16, k-major) with AVX2 and
// FMA. C rows are ldc elements apart. beta == 0 (either sign) never reads
// C. kc must be > 0.
//
//go:noescape
func kernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernel12x32 is kernel6x16 for a 12x32 tile with AVX-512.
//
//go:noescape
func kernel12x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// kernel8x32 is kernel12x32 for an 8x32 tile.
//
//go:noescape
func kernel8x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

func kernelAVX512x8(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*8-1]
	_ = b[kc*32-1]
	_ = c[7*ldc+31]
	kernel8x32(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

func kernelAVX2(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	// The checks keep the assembly's reads and writes inside the slices.
	_ = a[kc*6-1]
	_ = b[kc*16-1]
	_ = c[5*ldc+15]
	kernel6x16(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}

func kernelAVX512(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_ = a[kc*12-1]
	_ = b[kc*32-1]
	_ = c[11*ldc+31]
	kernel12x32(kc, &a[0], &b[0], &c[0], ldc, alpha, beta)
}
