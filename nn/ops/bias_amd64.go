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
