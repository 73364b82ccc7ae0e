package classic

import "math"

// All filters work on one C x H x W item (planar channels) and replicate the
// border pixels, so a flat image stays flat up to its edges.

func clampi(v, lo, hi int) int { return min(max(v, lo), hi) }

func toByte(v float32) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

// median is a (2r+1)^2 median filter per channel. It slides a 256-bin
// histogram along each row and tracks the median incrementally (Huang's
// method), so the cost per pixel grows with r, not r^2.
func median(src, dst []uint8, c, h, w, r int) {
	side := 2*r + 1
	half := side * side / 2 // values strictly below the median, at most
	for ch := range c {
		in := src[ch*h*w : (ch+1)*h*w]
		out := dst[ch*h*w : (ch+1)*h*w]
		var hist [256]int
		for y := range h {
			hist = [256]int{}
			for dy := -r; dy <= r; dy++ {
				row := in[clampi(y+dy, 0, h-1)*w:]
				for dx := -r; dx <= r; dx++ {
					hist[row[clampi(dx, 0, w-1)]]++
				}
			}
			med, lt := 0, 0
			for lt+hist[med] <= half {
				lt += hist[med]
				med++
			}
			out[y*w] = uint8(med)
			for x := 1; x < w; x++ {
				xo, xi := clampi(x-r-1, 0, w-1), clampi(x+r, 0, w-1)
				for dy := -r; dy <= r; dy++ {
					row := in[clampi(y+dy, 0, h-1)*w:]
					vo, vi := int(row[xo]), int(row[xi])
					hist[vo]--
					if vo < med {
						lt--
					}
					hist[vi]++
					if vi < med {
						lt++
					}
				}
				for lt > half {
					med--
					lt -= hist[med]
				}
				for lt+hist[med] <= half {
					lt += hist[med]
					med++
				}
				out[y*w+x] = uint8(med)
			}
		}
	}
}

// gaussKernel returns a normalised 1-D Gaussian of radius ceil(3 sigma).
func gaussKernel(sigma float64) []float32 {
	r := max(int(math.Ceil(3*sigma)), 1)
	k := make([]float32, 2*r+1)
	var sum float64
	for i := -r; i <= r; i++ {
		sum += math.Exp(-float64(i*i) / (2 * sigma * sigma))
	}
	for i := -r; i <= r; i++ {
		k[i+r] = float32(math.Exp(-float64(i*i)/(2*sigma*sigma)) / sum)
	}
	return k
}

// gaussian blurs each channel with a separable Gaussian.
func gaussian(src, dst []uint8, c, h, w int, sigma float64) {
	k := gaussKernel(sigma)
	r := len(k) / 2
	tmp := make([]float32, h*w)
	acc := make([]float32, w)
	for ch := range c {
		in := src[ch*h*w : (ch+1)*h*w]
		out := dst[ch*h*w : (ch+1)*h*w]
		for y := range h {
			row := in[y*w : (y+1)*w]
			t := tmp[y*w : (y+1)*w]
			for x := range w {
				var s float32
				for j, kv := range k {
					s += kv * float32(row[clampi(x+j-r, 0, w-1)])
				}
				t[x] = s
			}
		}
		for y := range h {
			clear(acc)
			for j, kv := range k {
				t := tmp[clampi(y+j-r, 0, h-1)*w:]
				for x := range w {
					acc[x] += kv * t[x]
				}
			}
			for x := range w {
				out[y*w+x] = toByte(acc[x])
			}
		}
	}
}

// bilateral is an edge-preserving smoothing filter: each pixel becomes the
// average of its neighbours weighted by both distance and colour similarity.
type bilateral struct {
	r       int
	spatial []float32 // (2r+1)^2 weights
	// colour weight by squared colour distance summed over up to 3 channels
	colour []float32
}

func newBilateral(sigmaSpace, sigmaColor float64) *bilateral {
	r := max(int(math.Ceil(2*sigmaSpace)), 1)
	b := &bilateral{r: r, colour: make([]float32, 3*255*255+1)}
	for i := range b.colour {
		b.colour[i] = float32(math.Exp(-float64(i) / (2 * sigmaColor * sigmaColor)))
	}
	for dy := -r; dy <= r; dy++ {
		for dx := -r; dx <= r; dx++ {
			d2 := float64(dx*dx + dy*dy)
			wt := float32(0)
			if d2 <= float64(r*r) { // a round window, no corner artefacts
				wt = float32(math.Exp(-d2 / (2 * sigmaSpace * sigmaSpace)))
			}
			b.spatial = append(b.spatial, wt)
		}
	}
	return b
}

func (b *bilateral) apply(src, dst []uint8, c, h, w int) {
	lut := b.colour
	n := h * w
	r := b.r
	side := 2*r + 1
	var acc [3]float32
	for y := range h {
		for x := range w {
			p := y*w + x
			var sum float32
			acc = [3]float32{}
			for dy := -r; dy <= r; dy++ {
				yy := clampi(y+dy, 0, h-1)
				for dx := -r; dx <= r; dx++ {
					ws := b.spatial[(dy+r)*side+dx+r]
					if ws == 0 {
						continue
					}
					q := yy*w + clampi(x+dx, 0, w-1)
					d2 := 0
					for ch := range c {
						d := int(src[ch*n+p]) - int(src[ch*n+q])
						d2 += d * d
					}
					wt := ws * lut[d2]
					sum += wt
					for ch := range c {
						acc[ch] += wt * float32(src[ch*n+q])
					}
				}
			}
			for ch := range c {
				dst[ch*n+p] = toByte(acc[ch] / sum)
			}
		}
	}
}

// nlmeans is non-local means: each pixel becomes the average of the pixels
// in its search window, weighted by how alike the patches around them are
// (exp(-d2/h^2), d2 the mean squared difference over patch and channels).
// It runs offset by offset: for one offset the patch distances of all
// pixels come from one box filter of the squared-difference image, which
// makes the cost (2s+1)^2 * H * W instead of that times the patch area.
func nlmeans(src, dst []uint8, c, h, w int, strength float64, pr, sr int) {
	n := h * w
	img := make([]float32, c*n)
	for i, v := range src[:c*n] {
		img[i] = float32(v)
	}
	diff := make([]float32, n)
	box := make([]float32, n)
	tmp := make([]float32, n)
	wsum := make([]float32, n)
	acc := make([]float32, c*n)
	patch := float32((2*pr + 1) * (2*pr + 1) * c)
	scale := float32(1 / (strength * strength))
	for oy := -sr; oy <= sr; oy++ {
		for ox := -sr; ox <= sr; ox++ {
			clear(diff)
			for ch := range c {
				plane := img[ch*n : (ch+1)*n]
				for y := range h {
					yy := clampi(y+oy, 0, h-1)
					for x := range w {
						d := plane[y*w+x] - plane[yy*w+clampi(x+ox, 0, w-1)]
						diff[y*w+x] += d * d
					}
				}
			}
			boxFilter(diff, box, tmp, h, w, pr)
			for y := range h {
				yy := clampi(y+oy, 0, h-1)
				for x := range w {
					p := y*w + x
					q := yy*w + clampi(x+ox, 0, w-1)
					wt := float32(math.Exp(float64(-box[p] / patch * scale)))
					wsum[p] += wt
					for ch := range c {
						acc[ch*n+p] += wt * img[ch*n+q]
					}
				}
			}
		}
	}
	for ch := range c {
		for p := range n {
			dst[ch*n+p] = toByte(acc[ch*n+p] / wsum[p])
		}
	}
}

// boxFilter writes into out the sum of in over the (2r+1)^2 window around
// each pixel, replicating borders; tmp is scratch of the same size.
func boxFilter(in, out, tmp []float32, h, w, r int) {
	for y := range h {
		row := in[y*w : (y+1)*w]
		var s float32
		for dx := -r; dx <= r; dx++ {
			s += row[clampi(dx, 0, w-1)]
		}
		tmp[y*w] = s
		for x := 1; x < w; x++ {
			s += row[clampi(x+r, 0, w-1)] - row[clampi(x-r-1, 0, w-1)]
			tmp[y*w+x] = s
		}
	}
	for x := range w {
		var s float32
		for dy := -r; dy <= r; dy++ {
			s += tmp[clampi(dy, 0, h-1)*w+x]
		}
		out[x] = s
		for y := 1; y < h; y++ {
			s += tmp[clampi(y+r, 0, h-1)*w+x] - tmp[clampi(y-r-1, 0, h-1)*w+x]
			out[y*w+x] = s
		}
	}
}
