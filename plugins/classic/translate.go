package classic

// posterize maps every value to the nearest of levels evenly spaced values
// from 0 to 255 (0 and 255 included).
func posterize(src, dst []uint8, levels int) {
	var lut [256]uint8
	steps := levels - 1
	for v := range lut {
		q := (v*steps + 127) / 255 // nearest level index
		lut[v] = uint8((q*255 + steps/2) / steps)
	}
	for i, v := range src {
		dst[i] = lut[v]
	}
}

// sepia applies the usual sepia tone matrix to n planar RGB pixels and
// blends the result with the original by amount.
func sepia(src, dst []uint8, n int, amount float64) {
	a := float32(amount)
	r, g, b := src[:n], src[n:2*n], src[2*n:3*n]
	or, og, ob := dst[:n], dst[n:2*n], dst[2*n:3*n]
	for i := range n {
		R, G, B := float32(r[i]), float32(g[i]), float32(b[i])
		sr := 0.393*R + 0.769*G + 0.189*B
		sg := 0.349*R + 0.686*G + 0.168*B
		sb := 0.272*R + 0.534*G + 0.131*B
		or[i] = toByte(R + a*(min(sr, 255)-R))
		og[i] = toByte(G + a*(min(sg, 255)-G))
		ob[i] = toByte(B + a*(min(sb, 255)-B))
	}
}

// luma returns the BT.601 luma of pixel i of a planar item of c channels.
func luma(src []uint8, c, n, i int) uint8 {
	if c == 1 {
		return src[i]
	}
	return uint8((299*int(src[i]) + 587*int(src[n+i]) + 114*int(src[2*n+i]) + 500) / 1000)
}

// threshold turns an item black and white by luma: above cutoff is white in
// every channel. A negative cutoff is replaced by [otsu]'s for the item.
func threshold(src, dst []uint8, c, n, cutoff int) {
	if cutoff < 0 {
		var hist [256]int
		for i := range n {
			hist[luma(src, c, n, i)]++
		}
		cutoff = otsu(&hist)
	}
	for i := range n {
		v := uint8(0)
		if int(luma(src, c, n, i)) > cutoff {
			v = 255
		}
		for ch := range c {
			dst[ch*n+i] = v
		}
	}
}

// otsu returns the cutoff t (classes <= t and > t) that maximises the
// between-class variance of the histogram. When a range of cutoffs ties, as
// it does for an image with empty bins between its modes, it returns the
// middle of the range, so the cut falls halfway between the modes.
func otsu(hist *[256]int) int {
	var total, sum float64
	for v, k := range hist {
		total += float64(k)
		sum += float64(v * k)
	}
	var w0, sum0, best float64
	first, last := 0, 0
	for t := range 255 {
		w0 += float64(hist[t])
		sum0 += float64(t * hist[t])
		w1 := total - w0
		if w0 == 0 || w1 == 0 {
			continue
		}
		m0, m1 := sum0/w0, (sum-sum0)/w1
		between := w0 * w1 * (m0 - m1) * (m0 - m1)
		switch {
		case between > best*(1+1e-12):
			best, first, last = between, t, t
		case between >= best*(1-1e-12):
			last = t
		}
	}
	return (first + last) / 2
}
