package gemm

// genericKernel is the portable micro-kernel, always available.
var genericKernel = &kernel{name: "generic", mr: 6, nr: 16, kc: 256, fn: kernelGeneric}

// kernelGeneric has the same contract as the assembly kernels for a 6x16
// tile: C[0:6, 0:16] (rows ldc apart) = alpha*A*B + beta*C from packed
// panels, with beta == 0 never reading C.
func kernelGeneric(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	const mr, nr = 6, 16
	var acc [mr][nr]float32
	a = a[:kc*mr]
	b = b[:kc*nr]
	for p := 0; p < kc; p++ {
		ap := (*[mr]float32)(a[p*mr:])
		bp := (*[nr]float32)(b[p*nr:])
		for r := 0; r < mr; r++ {
			ar := ap[r]
			row := &acc[r]
			for j := 0; j < nr; j++ {
				row[j] += ar * bp[j]
			}
		}
	}
	for r := 0; r < mr; r++ {
		row := (*[nr]float32)(c[r*ldc:])
		if beta == 0 {
			for j := 0; j < nr; j++ {
				row[j] = alpha * acc[r][j]
			}
		} else {
			for j := 0; j < nr; j++ {
				row[j] = alpha*acc[r][j] + beta*row[j]
			}
		}
	}
}
