package stages

import (
	"image"
	"math"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// The edges op: an edge map made by the host (e.g. the input of a
// translate model trained on edge maps). sobel is the gradient magnitude,
// canny thin lines; both give a 1-channel 8-bit image, white edges on
// black. The filters follow examples/edges (the third-party plugin), so the
// host's and the plugin's edge maps agree.

func init() {
	registerOp(opDef{
		Param: sdk.Param{Name: "edges", Type: sdk.Object, Doc: "edge map: one gray channel, white edges on black", Fields: []sdk.Param{
			{Name: "method", Type: sdk.String, Doc: "sobel: gradient magnitude after Gaussian smoothing, normalised so a clean black-to-white step measures 255; canny: thin lines (smoothing, Sobel gradient, non-maximum suppression, hysteresis between low and high)", Default: "canny", Enum: []string{"sobel", "canny"}},
			{Name: "sigma", Type: sdk.Float, Doc: "standard deviation in pixels of the Gaussian smoothing; larger ignores finer texture (0: none)", Default: 1.5, Min: sdk.Bound(0), Max: sdk.Bound(20)},
			{Name: "low", Type: sdk.Float, Doc: "canny: weak edge threshold, as a fraction of step contrast (a step between gray levels a and b measures |a-b|/255); weak edges are kept where they connect to strong ones", Default: 0.08, Min: sdk.Bound(0), Max: sdk.Bound(1)},
			{Name: "high", Type: sdk.Float, Doc: "canny: strong edge threshold in the same units, at least low; lines start at it", Default: 0.2, Min: sdk.Bound(0), Max: sdk.Bound(1)},
		}},
		Build: func(a *OpArgs) (applyFunc, func(shape) shape) {
			method := orDefault(a.String("method"), "canny")
			sigma, low, high := 1.5, 0.08, 0.2
			if _, ok := a.Values["sigma"]; ok {
				sigma = a.Float("sigma")
			}
			if _, ok := a.Values["low"]; ok {
				low = a.Float("low")
			}
			if _, ok := a.Values["high"]; ok {
				high = a.Float("high")
			}
			switch {
			case method != "sobel" && method != "canny":
				a.Bad("method", "unknown method %q, expected sobel or canny", method)
			case method == "canny" && high < low:
				a.Bad("high", "high (%v) is below low (%v)", high, low)
			}
			return func(img image.Image, _, _ uint64) image.Image { return edges(img, method, sigma, low, high) },
				func(s shape) shape { s.c = 1; return s }
		},
	})
}

// edges returns the edge map of img.
func edges(img image.Image, method string, sigma, low, high float64) *image.Gray {
	g := item.ToGray(img)
	w, h := g.Rect.Dx(), g.Rect.Dy()
	gray := make([]float32, w*h)
	for y := range h {
		row := g.Pix[y*g.Stride : y*g.Stride+w]
		for x, v := range row {
			gray[y*w+x] = float32(v) / 255
		}
	}
	var line []float32
	if method == "sobel" {
		line, _, _ = gradient(gray, h, w, sigma)
	} else {
		line = canny(gray, h, w, sigma, low, high)
	}
	out := image.NewGray(image.Rect(0, 0, w, h))
	for i, v := range line {
		out.Pix[i] = uint8(math.Round(float64(min(max(v, 0), 1)) * 255))
	}
	return out
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

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// EdgeMap is the edges op on one image, for code that must make the same
// data outside a pipeline (the translate family's quality test measures
// edges2mnist on exactly the edge maps a pipeline's edges op makes).
func EdgeMap(img image.Image, method string, sigma, low, high float64) *image.Gray {
	return edges(img, method, sigma, low, high)
}
