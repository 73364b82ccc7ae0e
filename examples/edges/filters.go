package edges

import "math"

// toGray converts one C x H x W uint8 item to luma in [0, 1] (ITU-R BT.601
// weights, as most image libraries use for grayscale).
func toGray(src []uint8, c, h, w int) []float32 {
	n := h * w
	g := make([]float32, n)
	if c == 1 {
		for i, v := range src[:n] {
			g[i] = float32(v) / 255
		}
		return g
	}
	r, gr, b := src[:n], src[n:2*n], src[2*n:3*n]
	for i := range g {
		g[i] = (0.299*float32(r[i]) + 0.587*float32(gr[i]) + 0.114*float32(b[i])) / 255
	}
	return g
}

// gaussKernel returns a normalised 1-D Gaussian of radius ceil(3 sigma);
// sigma <= 0 gives the identity kernel.
func gaussKernel(sigma float64) []float32 {
	if sigma <= 0 {
		return []float32{1}
	}
	r := int(math.Ceil(3 * sigma))
	k := make([]float32, 2*r+1)
	var sum float64
	for i := -r; i <= r; i++ {
		v := math.Exp(-float64(i*i) / (2 * sigma * sigma))
		k[i+r] = float32(v)
		sum += v
	}
	for i := range k {
		k[i] = float32(float64(k[i]) / sum)
	}
	return k
}

// blur convolves an H x W plane with a separable Gaussian, replicating the
// border pixels (so a flat image stays flat up to its edges).
func blur(src []float32, h, w int, sigma float64) []float32 {
	k := gaussKernel(sigma)
	if len(k) == 1 {
		return append([]float32(nil), src...)
	}
	r := len(k) / 2
	tmp := make([]float32, h*w)
	pad := make([]float32, w+2*r) // one row with its border replicated
	for y := range h {
		row := src[y*w : (y+1)*w]
		for i := range pad {
			pad[i] = row[min(max(i-r, 0), w-1)]
		}
		out := tmp[y*w : (y+1)*w]
		for x := range w {
			var s float32
			for j, kv := range k {
				s += kv * pad[x+j]
			}
			out[x] = s
		}
	}
	dst := make([]float32, h*w)
	for y := range h {
		out := dst[y*w : (y+1)*w]
		for j, kv := range k {
			yy := min(max(y+j-r, 0), h-1)
			in := tmp[yy*w : (yy+1)*w]
			for x := range w {
				out[x] += kv * in[x]
			}
		}
	}
	return dst
}

// stepScale is the factor that makes the smoothed Sobel magnitude of a clean
// step of contrast 1 peak at 1, whatever sigma: thresholds then mean "edge
// contrast" and need no retuning when sigma changes.
func stepScale(sigma float64) float32 {
	k := gaussKernel(sigma)
	n := 2*len(k) + 8
	step := make([]float32, n)
	for i := n / 2; i < n; i++ {
		step[i] = 1
	}
	b := blur(step, 1, n, sigma)
	var peak float32
	for x := 1; x < n-1; x++ {
		peak = max(peak, (b[x+1]-b[x-1])/2)
	}
	return 1 / peak
}

// gradient smooths gray with sigma and returns the Sobel gradient magnitude,
// normalised by [stepScale], with its x and y components.
func gradient(gray []float32, h, w int, sigma float64) (mag, gx, gy []float32) {
	s := blur(gray, h, w, sigma)
	scale := stepScale(sigma) / 8
	mag = make([]float32, h*w)
	gx = make([]float32, h*w)
	gy = make([]float32, h*w)
	// p is s with a one-pixel replicated border, so the 3x3 loop needs no
	// bounds clamping.
	pw := w + 2
	p := make([]float32, (h+2)*pw)
	for y := range h + 2 {
		row := s[min(max(y-1, 0), h-1)*w:]
		for x := range pw {
			p[y*pw+x] = row[min(max(x-1, 0), w-1)]
		}
	}
	for y := range h {
		up, mid, down := p[y*pw:(y+1)*pw], p[(y+1)*pw:(y+2)*pw], p[(y+2)*pw:(y+3)*pw]
		for x := range w {
			tl, t, tr := up[x], up[x+1], up[x+2]
			l, r := mid[x], mid[x+2]
			bl, b, br := down[x], down[x+1], down[x+2]
			dx := ((tr + 2*r + br) - (tl + 2*l + bl)) * scale
			dy := ((bl + 2*b + br) - (tl + 2*t + tr)) * scale
			i := y*w + x
			gx[i], gy[i] = dx, dy
			mag[i] = float32(math.Sqrt(float64(dx*dx + dy*dy)))
		}
	}
	return mag, gx, gy
}

// tan(22.5°) and tan(67.5°): the borders between the four gradient
// directions non-maximum suppression distinguishes.
const (
	tan22 = 0.41421356
	tan67 = 2.41421356
)

// canny returns 1 on edge pixels and 0 elsewhere.
func canny(gray []float32, h, w int, sigma, low, high float64) []float32 {
	mag, gx, gy := gradient(gray, h, w, sigma)
	at := func(x, y int) float32 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return 0
		}
		return mag[y*w+x]
	}
	// Non-maximum suppression: keep a pixel only where it is the ridge of
	// its gradient profile. The strict/non-strict pair (> on the lower side,
	// >= on the upper) keeps exactly one of two equal neighbours, so a clean
	// step, whose two boundary pixels measure the same, gives a 1-pixel line;
	// the tolerance makes "equal" survive float rounding, which would
	// otherwise make a straight line jump between the two pixels.
	thin := make([]float32, h*w)
	for y := range h {
		for x := range w {
			i := y*w + x
			m := mag[i]
			if m == 0 || float64(m) < low {
				continue
			}
			ax, ay := abs32(gx[i]), abs32(gy[i])
			var n1, n2 float32
			switch {
			case ay <= ax*tan22: // gradient along x
				n1, n2 = at(x-1, y), at(x+1, y)
			case ay >= ax*tan67: // gradient along y
				n1, n2 = at(x, y-1), at(x, y+1)
			case (gx[i] > 0) == (gy[i] > 0): // along the main diagonal
				n1, n2 = at(x-1, y-1), at(x+1, y+1)
			default: // along the anti-diagonal
				n1, n2 = at(x-1, y+1), at(x+1, y-1)
			}
			tol := m * 1e-4
			if m > n1+tol && m >= n2-tol {
				thin[i] = m
			}
		}
	}
	// Hysteresis: grow lines from strong pixels through 8-connected weak ones.
	out := make([]float32, h*w)
	var stack []int
	for i, m := range thin {
		if m > 0 && float64(m) >= high && out[i] == 0 {
			out[i] = 1
			stack = append(stack, i)
			for len(stack) > 0 {
				j := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				jx, jy := j%w, j/w
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						x, y := jx+dx, jy+dy
						if x < 0 || y < 0 || x >= w || y >= h {
							continue
						}
						k := y*w + x
						if out[k] == 0 && thin[k] > 0 { // thin holds only pixels >= low
							out[k] = 1
							stack = append(stack, k)
						}
					}
				}
			}
		}
	}
	return out
}

// ramp maps magnitudes to line strength: 0 below low, 1 from high, linear
// between (a hard threshold when low == high).
func ramp(mag []float32, low, high float64) []float32 {
	out := make([]float32, len(mag))
	lo, hi := float32(low), float32(high)
	for i, m := range mag {
		switch {
		case m <= 0 || m < lo:
		case m >= hi:
			out[i] = 1
		default:
			out[i] = (m - lo) / (hi - lo)
		}
	}
	return out
}

// sketch is the pencil-sketch effect: the gray image colour-dodged with its
// blurred negative. Flat areas go white (the negative's blur equals the
// negative there, so the dodge divides a value by itself), while near edges
// the blur spills and leaves graded, pencil-like strokes. It returns line
// strength (1 - brightness).
func sketch(gray []float32, h, w int, sigma float64) []float32 {
	neg := make([]float32, len(gray))
	for i, g := range gray {
		neg[i] = 1 - g
	}
	b := blur(neg, h, w, sigma)
	out := make([]float32, len(gray))
	for i, g := range gray {
		d := 1 - b[i]
		v := float32(1)
		if d > 1e-6 {
			v = min(g/d, 1)
		}
		out[i] = 1 - v
	}
	return out
}

// dilate widens lines: each pixel takes the strongest line value within a
// disc of radius r.
func dilate(line []float32, h, w, r int) []float32 {
	type off struct{ dx, dy int }
	var disc []off
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			if dx*dx+dy*dy <= r*r+r { // +r rounds the disc's flat sides
				disc = append(disc, off{dx, dy})
			}
		}
	}
	out := make([]float32, len(line))
	for y := range h {
		for x := range w {
			var m float32
			for _, o := range disc {
				xx, yy := x+o.dx, y+o.dy
				if xx < 0 || yy < 0 || xx >= w || yy >= h {
					continue
				}
				m = max(m, line[yy*w+xx])
				if m >= 1 {
					break
				}
			}
			out[y*w+x] = m
		}
	}
	return out
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
