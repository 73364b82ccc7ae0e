package nn

import "math"

// Interpolate writes the point at t in [0,1] on the path from a to b into
// dst: spherical (slerp, White 2016: keeps the norm typical of Gaussian
// samples) or linear.
func Interpolate(dst, a, b []float32, t float64, slerp bool) {
	if slerp {
		var ab, aa, bb float64
		for i := range a {
			ab += float64(a[i]) * float64(b[i])
			aa += float64(a[i]) * float64(a[i])
			bb += float64(b[i]) * float64(b[i])
		}
		if aa > 0 && bb > 0 {
			cos := ab / math.Sqrt(aa*bb)
			omega := math.Acos(math.Max(-1, math.Min(1, cos)))
			if s := math.Sin(omega); s > 1e-6 {
				wa, wb := math.Sin((1-t)*omega)/s, math.Sin(t*omega)/s
				for i := range dst {
					dst[i] = float32(wa*float64(a[i]) + wb*float64(b[i]))
				}
				return
			}
		}
	}
	for i := range dst {
		dst[i] = float32((1-t)*float64(a[i]) + t*float64(b[i]))
	}
}
