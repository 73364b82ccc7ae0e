//go:build !amd64 || purego

package gemm

const hasRows32 = false

func copyRows32(dst, src *float32, offs *int, n, base int) {
	panic("gemm: copyRows32 without assembly")
}

func copyStrided32(dst, src *float32, n, stride int) { panic("gemm: copyStrided32 without assembly") }

func copy2D(dst *float32, ldd int, src *float32, lds, rows, cols, gap int) {
	panic("gemm: copy2D without assembly")
}
