//go:build !amd64 || purego

package ops

// sigmoids writes dst[i] = sigmoid(src[i]).
func sigmoids(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = sigmoidf(v)
	}
}
