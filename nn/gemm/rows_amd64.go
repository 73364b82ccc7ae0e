//go:build amd64 && !purego

package gemm

var hasRows32 = hasAVX512

// copyRows32 copies n rows of 32 floats, row k from src[base+offs[k]:],
// to dst[32k:]. The caller has checked the bounds.
//
//go:noescape
func copyRows32(dst, src *float32, offs *int, n, base int)

// copyStrided32 copies n rows of 32 floats, row k from src[k*stride:],
// to dst[32k:]. The caller has checked the bounds.
//
//go:noescape
func copyStrided32(dst, src *float32, n, stride int)

// copy2D is Copy2D's loop with AVX-512 masked moves for the row tails;
// gap > 0 zeroes that many values after each row but the last. The caller
// has checked the bounds.
//
//go:noescape
func copy2D(dst *float32, ldd int, src *float32, lds, rows, cols, gap int)
