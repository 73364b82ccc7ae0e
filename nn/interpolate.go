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

// InterpolationPath returns, for each of the n d-value latents in z, the
// frames-point path from it to the next one (the last goes back to the
// first): n*frames latents, item by item, each path starting on its own
// latent and ending on the next one's.
func InterpolationPath(z []float32, n, d, frames int, slerp bool) []float32 {
	path := make([]float32, n*frames*d)
	for i := 0; i < n; i++ {
		from, to := z[i*d:(i+1)*d], z[((i+1)%n)*d:((i+1)%n+1)*d]
		for f := 0; f < frames; f++ {
			t := 0.0
			if frames > 1 {
				t = float64(f) / float64(frames-1)
			}
			Interpolate(path[(i*frames+f)*d:(i*frames+f+1)*d], from, to, t, slerp)
		}
	}
	return path
}
