//go:build amd64 && !purego

package ops

// addBiasAVX2 adds b to y[i] for i < n (n a multiple of 8), then with
// relu clears negative values to +0, eight lanes at a time.
//
//go:noescape
func addBiasAVX2(y *float32, n int, b float32, relu bool)

// addBiasVec does addBias's work for one block with AVX2 when the CPU has
// it, and returns how many leading values it did (a multiple of 8; the
// caller does the rest). In the scalar loop the bias and ReLU cost as much
// as the convolution's whole output copy.
func addBiasVec(row []float32, b float32, relu bool) int {
	n := len(row) &^ 7
	if !hasAVX2FMA || n == 0 {
		return 0
	}
	addBiasAVX2(&row[0], n, b, relu)
	return n
}

// reluGradAVX2 writes dst[i] = grad[i] where y[i] > 0, else 0, for i < n
// (n a multiple of 8).
//
//go:noescape
func reluGradAVX2(dst, y, grad *float32, n int)

// reluGradVec does ReLU's derivative for the leading multiple of 8 values
// with AVX2 when the CPU has it and returns how many it did. It is the
// whole of a ReLU backward pass over a coupling network's activations,
// ~5% of a mnist-glow training step in the scalar loop.
func reluGradVec(dst, y, g []float32) int {
	n := len(y) &^ 7
	if !hasAVX2FMA || n == 0 {
		return 0
	}
	_, _ = dst[n-1], g[n-1]
	reluGradAVX2(&dst[0], &y[0], &g[0], n)
	return n
}
