package bench

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/stages"
)

// The per-image costs of the host stages, single-threaded, to explain the
// job benchmarks: which stage a job waits for and what would make it
// cheaper. Run with
//
//	go test -run '^$' -bench 'PNG|CreateFile' -count 5 ./bench

// BenchmarkPNGDecode is the load stage's work for one image file.
func BenchmarkPNGDecode(b *testing.B) {
	dir, err := rgbDataset(1)
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, "00000.png")
	for b.Loop() {
		if _, err := stages.DecodeFile(file, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPNGEncode is the save stage's encoding of one image: a data
// set's image as loaded, and the same after the job's model (posterized to
// 4 levels, or a 3x3 median). pool=false is what png.Encode does (a new
// deflate compressor, about 1 MB of state allocated and zeroed, per
// image); pool=true reuses compressors through png.Encoder.BufferPool.
// level=speed is png.BestSpeed.
func BenchmarkPNGEncode(b *testing.B) {
	images := map[string]image.Image{
		"rgb256":           synthRGB(0),
		"rgb256-posterize": posterized(synthRGB(0)),
		"gray28":           synthDigit(0),
	}
	for _, name := range []string{"rgb256", "rgb256-posterize", "gray28"} {
		img := images[name]
		for _, cfg := range []struct {
			name string
			enc  *png.Encoder
		}{
			{"level=default/pool=false", &png.Encoder{}},
			{"level=default/pool=true", &png.Encoder{BufferPool: &encoderPool{}}},
			{"level=speed/pool=true", &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &encoderPool{}}},
		} {
			b.Run("img="+name+"/"+cfg.name, func(b *testing.B) {
				var buf bytes.Buffer
				for b.Loop() {
					buf.Reset()
					if err := cfg.enc.Encode(&buf, img); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len()), "bytes")
			})
		}
	}
}

// posterized maps every channel to 4 levels, like the classic plugin's
// posterize with levels: 4.
func posterized(img *image.NRGBA) *image.NRGBA {
	out := image.NewNRGBA(img.Rect)
	for i, v := range img.Pix {
		if i%4 == 3 {
			out.Pix[i] = v
			continue
		}
		q := (int(v)*3 + 127) / 255
		out.Pix[i] = uint8(q * 85)
	}
	return out
}

// encoderPool is a png.EncoderBufferPool over sync.Pool.
type encoderPool struct{ p sync.Pool }

func (e *encoderPool) Get() *png.EncoderBuffer {
	b, _ := e.p.Get().(*png.EncoderBuffer)
	return b
}

func (e *encoderPool) Put(b *png.EncoderBuffer) { e.p.Put(b) }

// BenchmarkCreateFile is the file-system part of saving one output the way
// the save stage does: create a hidden temporary file, write 700 bytes (a
// 28x28 PNG), chmod, close, rename into place. Run in parallel by as many
// goroutines as GOMAXPROCS, all in one folder (dirs=1, what a save stage
// does) or each in its own (dirs=per-goroutine), which shows how much of the
// work the kernel serialises on the folder.
func BenchmarkCreateFile(b *testing.B) {
	for _, perG := range []bool{false, true} {
		name := "dirs=1"
		if perG {
			name = "dirs=per-goroutine"
		}
		b.Run(name, func(b *testing.B) {
			root := filepath.Join(outRoot(b, b.TempDir()), "out")
			var seq atomic.Int64
			m0 := machineBusy()
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				dir := root
				if perG {
					dir = filepath.Join(root, fmt.Sprint(seq.Add(1)))
				}
				if err := os.MkdirAll(dir, 0o755); err != nil {
					b.Error(err)
					return
				}
				data := make([]byte, 700)
				for pb.Next() {
					if err := createFile(dir, fmt.Sprintf("%09d.png", seq.Add(1)), data); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric((machineBusy()-m0).Seconds()/time.Since(t0).Seconds(), "cpu/wall")
		})
	}
}

func createFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".out.*.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name))
}
