package classic

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// The fast filters are checked against their plain definitions on random
// images, including sizes smaller than the window.
func TestFastFiltersMatchDefinitions(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, sz := range [][2]int{{1, 1}, {3, 2}, {5, 17}, {16, 9}} {
		h, w := sz[0], sz[1]
		img := make([]uint8, 2*h*w)
		for i := range img {
			img[i] = uint8(r.IntN(256))
		}
		for rad := 1; rad <= 3; rad++ {
			got := make([]uint8, len(img))
			median(img, got, 2, h, w, rad)
			for ch := range 2 {
				for y := range h {
					for x := range w {
						var win []uint8
						for dy := -rad; dy <= rad; dy++ {
							for dx := -rad; dx <= rad; dx++ {
								win = append(win, img[ch*h*w+clampi(y+dy, 0, h-1)*w+clampi(x+dx, 0, w-1)])
							}
						}
						slices.Sort(win)
						if want := win[len(win)/2]; got[ch*h*w+y*w+x] != want {
							t.Fatalf("%dx%d radius %d: median at (%d,%d,%d) = %d, want %d", h, w, rad, ch, y, x, got[ch*h*w+y*w+x], want)
						}
					}
				}
			}
			in := make([]float32, h*w)
			for i := range in {
				in[i] = float32(img[i])
			}
			out, tmp := make([]float32, h*w), make([]float32, h*w)
			boxFilter(in, out, tmp, h, w, rad)
			for y := range h {
				for x := range w {
					var want float32
					for dy := -rad; dy <= rad; dy++ {
						for dx := -rad; dx <= rad; dx++ {
							want += in[clampi(y+dy, 0, h-1)*w+clampi(x+dx, 0, w-1)]
						}
					}
					if out[y*w+x] != want {
						t.Fatalf("%dx%d radius %d: box sum at (%d,%d) = %g, want %g", h, w, rad, y, x, out[y*w+x], want)
					}
				}
			}
		}
	}
}

func TestOtsuTiesCutHalfwayBetweenModes(t *testing.T) {
	var hist [256]int
	hist[40], hist[200] = 10, 5
	if got := otsu(&hist); got != 119 {
		t.Errorf("otsu of modes 40 and 200 = %d, want 119 (the middle of 40..199)", got)
	}
}
