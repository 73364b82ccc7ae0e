package bench

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// The data sets live in a cache under os.TempDir() so that a 10,000-image
// run generates them once; later runs (and other -count iterations) reuse
// them. A data set records how many images it holds in a "count" file
// written last, so an interrupted generation is resumed, never trusted.

// cacheRoot is the folder of the cached data sets (GENPIPE_BENCH_CACHE
// overrides it).
func cacheRoot() string {
	if d := os.Getenv("GENPIPE_BENCH_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "genpipe-bench")
}

// rgbSide is the side of the RGB data set's images.
const rgbSide = 256

// rgbDataset returns a folder holding at least n 256x256 RGB PNGs named
// 00000.png, 00001.png, ... (sorted names are index order, so a load stage
// with limit: n reads the first n).
func rgbDataset(n int) (string, error) {
	dir := filepath.Join(cacheRoot(), "rgb256-v1")
	if cachedCount(dir) >= n {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	err := parallel(n, func(i int) error {
		file := filepath.Join(dir, fmt.Sprintf("%05d.png", i))
		if st, err := os.Stat(file); err == nil && st.Size() > 0 {
			return nil
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, synthRGB(i)); err != nil {
			return err
		}
		return writeFileAtomic(file, buf.Bytes())
	})
	if err != nil {
		return "", fmt.Errorf("bench: generating %s: %w", dir, err)
	}
	return dir, writeFileAtomic(filepath.Join(dir, "count"), []byte(strconv.Itoa(n)))
}

// synthRGB draws image i: a smooth two-colour gradient in a random
// direction, a few filled circles and rectangles, and +-6 levels of
// uniform noise per channel, so PNG's filters and deflate see what they see
// in photographs (smooth areas, edges, sensor noise), not flat colour.
func synthRGB(i int) *image.NRGBA {
	r := rand.New(rand.NewPCG(uint64(i), 0x9e3779b97f4a7c15))
	img := image.NewNRGBA(image.Rect(0, 0, rgbSide, rgbSide))
	c0 := [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
	c1 := [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
	ang := r.Float64() * 2 * math.Pi
	dx, dy := math.Cos(ang), math.Sin(ang)
	type shape struct {
		rect           bool
		x0, y0, x1, y1 float64 // rect corners, or centre and radius in x0, y0, x1
		col            [3]float64
	}
	shapes := make([]shape, 3+r.IntN(4))
	for k := range shapes {
		s := &shapes[k]
		s.rect = r.IntN(2) == 0
		s.x0, s.y0 = r.Float64()*rgbSide, r.Float64()*rgbSide
		if s.rect {
			s.x1, s.y1 = s.x0+20+r.Float64()*80, s.y0+20+r.Float64()*80
		} else {
			s.x1 = 10 + r.Float64()*50
		}
		s.col = [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
	}
	for y := range rgbSide {
		for x := range rgbSide {
			t := (float64(x)*dx + float64(y)*dy) / (rgbSide * math.Sqrt2)
			t = t*0.5 + 0.5
			var c [3]float64
			for ch := range 3 {
				c[ch] = c0[ch]*(1-t) + c1[ch]*t
			}
			fx, fy := float64(x), float64(y)
			for _, s := range shapes {
				in := false
				if s.rect {
					in = fx >= s.x0 && fx < s.x1 && fy >= s.y0 && fy < s.y1
				} else {
					in = (fx-s.x0)*(fx-s.x0)+(fy-s.y0)*(fy-s.y0) < s.x1*s.x1
				}
				if in {
					c = s.col
				}
			}
			o := img.PixOffset(x, y)
			for ch := range 3 {
				img.Pix[o+ch] = clamp8(c[ch] + float64(r.IntN(13)-6))
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}

func clamp8(v float64) uint8 {
	return uint8(math.Round(math.Min(math.Max(v, 0), 255)))
}

// mnistSide is the side of the gray data set's images.
const mnistSide = 28

// mnistDataset returns an MNIST-format idx file (gzipped, like the
// t10k-images-idx3-ubyte.gz users download) holding n 28x28 gray images.
// The file is per n, as an idx file states its count in its header.
func mnistDataset(n int) (string, error) {
	file := filepath.Join(cacheRoot(), fmt.Sprintf("mnist-v1-%d-images-idx3-ubyte.gz", n))
	if st, err := os.Stat(file); err == nil && st.Size() > 0 {
		return file, nil
	}
	if err := os.MkdirAll(cacheRoot(), 0o755); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	hdr := []uint32{0x00000803, uint32(n), mnistSide, mnistSide}
	if err := binary.Write(zw, binary.BigEndian, hdr); err != nil {
		return "", err
	}
	for i := range n {
		if _, err := zw.Write(synthDigit(i).Pix); err != nil {
			return "", err
		}
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	return file, writeFileAtomic(file, buf.Bytes())
}

// writeFileAtomic writes through a uniquely named temporary file, so two
// benchmark processes filling the same cache never see half a file.
func writeFileAtomic(file string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), file)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// synthDigit draws a digit-like image: two or three thick soft strokes
// (lines and arcs) in white on black, inside MNIST's 20x20 centre box.
func synthDigit(i int) *image.Gray {
	r := rand.New(rand.NewPCG(uint64(i), 0x2545f4914f6cdd1d))
	img := image.NewGray(image.Rect(0, 0, mnistSide, mnistSide))
	type pt struct{ x, y float64 }
	var pts []pt
	for range 2 + r.IntN(2) {
		a := pt{4 + r.Float64()*20, 4 + r.Float64()*20}
		b := pt{4 + r.Float64()*20, 4 + r.Float64()*20}
		bend := (r.Float64() - 0.5) * 12
		for k := range 40 {
			t := float64(k) / 39
			// A quadratic bend perpendicular to a-b makes arcs as well as lines.
			nx, ny := -(b.y - a.y), b.x-a.x
			l := math.Hypot(nx, ny) + 1e-9
			off := bend * 4 * t * (1 - t)
			pts = append(pts, pt{a.x + (b.x-a.x)*t + nx/l*off, a.y + (b.y-a.y)*t + ny/l*off})
		}
	}
	for y := range mnistSide {
		for x := range mnistSide {
			d := math.Inf(1)
			for _, p := range pts {
				d = math.Min(d, math.Hypot(float64(x)-p.x, float64(y)-p.y))
			}
			// Stroke half-width 1.3 px with a 1 px soft edge.
			v := 255 * math.Min(math.Max(2.3-d, 0), 1)
			img.Pix[y*mnistSide+x] = clamp8(v)
		}
	}
	return img
}

// cachedCount reads a data set's "count" file (0 when absent or bad).
func cachedCount(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "count"))
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// parallel runs fn(0..n-1) on every CPU and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
