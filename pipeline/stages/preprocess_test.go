package stages

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

func nrgbaAt(img image.Image, x, y int) color.NRGBA {
	b := img.Bounds()
	return color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
}

func grayAt(img image.Image, x, y int) uint8 {
	return img.(*image.Gray).GrayAt(x, y).Y
}

func uniformGray(w, h int, v uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = v
	}
	return g
}

func runOps(t *testing.T, img image.Image, seed uint64, consumer *sdk.ImageSpec, ops ...any) image.Image {
	t.Helper()
	p, err := NewPreprocess(checkedOps(t, ops...), consumer)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(item.Item{Image: img, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPreprocessOps(t *testing.T) {
	src := pattern(8, 6, 1)
	gray := grayPattern(8, 6)
	step := image.NewGray(image.Rect(0, 0, 8, 4)) // 100 on the left half, 200 on the right
	for y := 0; y < 4; y++ {
		for x := 0; x < 8; x++ {
			step.Pix[y*8+x] = map[bool]uint8{true: 100, false: 200}[x < 4]
		}
	}
	checker := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range checker.Pix {
		checker.Pix[i] = uint8(255 * ((i%8 + i/8) % 2))
	}
	each := func(img image.Image, f func(x, y int) bool) bool {
		b := img.Bounds()
		for y := 0; y < b.Dy(); y++ {
			for x := 0; x < b.Dx(); x++ {
				if !f(x, y) {
					return false
				}
			}
		}
		return true
	}
	m := func(k string, v map[string]any) map[string]any { return map[string]any{k: v} }
	tests := []struct {
		name  string
		in    image.Image
		op    any
		size  image.Point
		check func(out image.Image) bool
	}{
		{"resize both", src, m("resize", map[string]any{"width": 4, "height": 2}), image.Pt(4, 2), nil},
		{"resize keeps aspect", src, m("resize", map[string]any{"width": 4}), image.Pt(4, 3), nil},
		{"resize nearest exact", src, m("resize", map[string]any{"width": 4, "height": 3, "filter": "nearest"}), image.Pt(4, 3),
			func(out image.Image) bool {
				// Each output pixel is one of the four of its 2x2 source block.
				return each(out, func(x, y int) bool {
					o := nrgbaAt(out, x, y)
					return o == src.NRGBAAt(2*x, 2*y) || o == src.NRGBAAt(2*x+1, 2*y) || o == src.NRGBAAt(2*x, 2*y+1) || o == src.NRGBAAt(2*x+1, 2*y+1)
				})
			}},
		{"fit shrinks", src, m("fit", map[string]any{"width": 4, "height": 4}), image.Pt(4, 3), nil},
		{"fit never enlarges", src, m("fit", map[string]any{"width": 80, "height": 80}), image.Pt(8, 6), nil},
		{"fill", src, m("fill", map[string]any{"width": 4, "height": 4}), image.Pt(4, 4), nil},
		{"crop top-left", src, m("crop", map[string]any{"width": 2, "height": 3, "anchor": "top-left"}), image.Pt(2, 3),
			func(out image.Image) bool {
				return each(out, func(x, y int) bool { return nrgbaAt(out, x, y) == src.NRGBAAt(x, y) })
			}},
		{"crop bottom-right", src, m("crop", map[string]any{"width": 2, "height": 2, "anchor": "bottom-right"}), image.Pt(2, 2),
			func(out image.Image) bool { return nrgbaAt(out, 1, 1) == src.NRGBAAt(7, 5) }},
		{"grayscale", src, "grayscale", image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool {
				return grayAt(out, x, y) == color.GrayModel.Convert(src.At(x, y)).(color.Gray).Y
			})
		}},
		{"invert", src, "invert", image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool {
				s, o := src.NRGBAAt(x, y), nrgbaAt(out, x, y)
				return o.R == 255-s.R && o.G == 255-s.G && o.B == 255-s.B && o.A == 255
			})
		}},
		{"invert gray stays gray", gray, "invert", image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool { return grayAt(out, x, y) == 255-gray.GrayAt(x, y).Y })
		}},
		{"flip horizontal", src, "flip", image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool { return nrgbaAt(out, x, y) == src.NRGBAAt(7-x, y) })
		}},
		{"flip vertical", src, m("flip", map[string]any{"direction": "vertical"}), image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool { return nrgbaAt(out, x, y) == src.NRGBAAt(x, 5-y) })
		}},
		{"rotate 90 counter-clockwise", src, m("rotate", map[string]any{"angle": 90}), image.Pt(6, 8), func(out image.Image) bool {
			return each(out, func(x, y int) bool { return nrgbaAt(out, x, y) == src.NRGBAAt(7-y, x) })
		}},
		{"rotate 45 grows with background", src, m("rotate", map[string]any{"angle": 45, "background": "#ff0000"}), image.Pt(10, 10),
			func(out image.Image) bool { return nrgbaAt(out, 0, 0) == color.NRGBA{255, 0, 0, 255} }},
		{"blur smooths", checker, m("blur", map[string]any{"sigma": 2}), image.Pt(8, 8), func(out image.Image) bool {
			return each(out, func(x, y int) bool { v := grayAt(out, x, y); return v > 100 && v < 155 })
		}},
		{"sharpen overshoots at an edge", step, m("sharpen", map[string]any{"sigma": 1}), image.Pt(8, 4), func(out image.Image) bool {
			return grayAt(out, 4, 1) > 200 && grayAt(out, 3, 1) < 100 && grayAt(out, 0, 1) == 100
		}},
		{"brightness up", uniformGray(2, 2, 100), m("brightness", map[string]any{"percent": 50}), image.Pt(2, 2),
			func(out image.Image) bool { return grayAt(out, 0, 0) == 228 }},
		{"brightness -100 is black", src, m("brightness", map[string]any{"percent": -100}), image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool { return nrgbaAt(out, x, y) == color.NRGBA{0, 0, 0, 255} })
		}},
		{"contrast -100 is flat gray", gray, m("contrast", map[string]any{"percent": -100}), image.Pt(8, 6), func(out image.Image) bool {
			return each(out, func(x, y int) bool { return grayAt(out, x, y) == 128 })
		}},
		{"contrast up spreads", step, m("contrast", map[string]any{"percent": 50}), image.Pt(8, 4),
			func(out image.Image) bool { return grayAt(out, 0, 0) < 100 && grayAt(out, 7, 0) > 200 }},
		{"gamma 2 brightens", uniformGray(2, 2, 64), m("gamma", map[string]any{"gamma": 2}), image.Pt(2, 2),
			func(out image.Image) bool { return grayAt(out, 0, 0) == 128 }},
		{"gamma 0.5 darkens", uniformGray(2, 2, 128), m("gamma", map[string]any{"gamma": 0.5}), image.Pt(2, 2),
			func(out image.Image) bool { return grayAt(out, 0, 0) == 64 }},
		{"noise 0 changes nothing", src, m("noise", map[string]any{"amount": 0}), image.Pt(8, 6),
			func(out image.Image) bool { return pixelsEqual(out, src) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := runOps(t, tc.in, 1, nil, tc.op)
			if got := out.Bounds().Size(); got != tc.size {
				t.Fatalf("size %v, expected %v", got, tc.size)
			}
			if _, isGrayIn := tc.in.(*image.Gray); isGrayIn || tc.name == "grayscale" {
				if _, ok := out.(*image.Gray); !ok {
					t.Fatalf("gray in, %T out: expected *image.Gray", out)
				}
			}
			if tc.check != nil && !tc.check(out) {
				t.Fatal("pixels wrong")
			}
			// The static shape agrees with the real one for a known input.
			in := &sdk.ImageSpec{Width: tc.in.Bounds().Dx(), Height: tc.in.Bounds().Dy(), Channels: item.Channels(tc.in)}
			st := PreprocessOutput(checkedOps(t, tc.op), in, nil)
			if st.Width != tc.size.X || st.Height != tc.size.Y || st.Channels != item.Channels(out) {
				t.Errorf("static output %dx%dx%d, real %dx%dx%d", st.Width, st.Height, st.Channels, tc.size.X, tc.size.Y, item.Channels(out))
			}
		})
	}
}

func TestPreprocessNoise(t *testing.T) {
	src := pattern(16, 16, 3)
	gray := uniformGray(32, 32, 128)
	for _, typ := range []string{"gaussian", "salt_pepper"} {
		for _, in := range []image.Image{src, gray} {
			t.Run(fmt.Sprintf("%s %T", typ, in), func(t *testing.T) {
				op := map[string]any{"noise": map[string]any{"type": typ, "amount": 0.2}}
				a := runOps(t, in, 42, nil, op)
				b := runOps(t, in, 42, nil, op)
				c := runOps(t, in, 43, nil, op)
				if !pixelsEqual(a, b) {
					t.Error("same seed, different noise")
				}
				if pixelsEqual(a, c) {
					t.Error("different seeds, same noise")
				}
				if pixelsEqual(a, in) {
					t.Error("no noise added")
				}
				if item.Channels(a) != item.Channels(in) {
					t.Errorf("%d channels out of %d", item.Channels(a), item.Channels(in))
				}
			})
		}
	}
	// Two noise ops in one stage draw different noise from one item seed.
	p, err := NewPreprocess(checkedOps(t, map[string]any{"noise": map[string]any{"amount": 0.1}}, map[string]any{"noise": map[string]any{"amount": 0.1}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.ops[0].apply(gray, 1, 0<<32) == nil || pixelsEqual(p.ops[0].apply(gray, 1, 0), p.ops[1].apply(gray, 1, 1<<32)) {
		t.Error("two noise ops drew the same noise")
	}
	// Gaussian noise has the declared spread; salt and pepper the declared fraction.
	g := runOps(t, gray, 7, nil, map[string]any{"noise": map[string]any{"type": "gaussian", "amount": 0.1}}).(*image.Gray)
	var sum, sq float64
	for _, v := range g.Pix {
		d := float64(v) - 128
		sum += d
		sq += d * d
	}
	n := float64(len(g.Pix))
	if mean, sd := sum/n, math.Sqrt(sq/n); math.Abs(mean) > 3 || math.Abs(sd-25.5) > 3 {
		t.Errorf("gaussian noise mean %.2f sd %.2f, expected about 0 and 25.5", mean, sd)
	}
	sp := runOps(t, gray, 7, nil, map[string]any{"noise": map[string]any{"type": "salt_pepper", "amount": 0.25}}).(*image.Gray)
	var black, white int
	for _, v := range sp.Pix {
		switch v {
		case 0:
			black++
		case 255:
			white++
		}
	}
	if f := float64(black+white) / n; math.Abs(f-0.25) > 0.05 || black == 0 || white == 0 {
		t.Errorf("salt and pepper: %d black %d white of %v pixels", black, white, n)
	}
}

func TestPreprocessConform(t *testing.T) {
	src := pattern(40, 20, 2)
	tests := []struct {
		name     string
		consumer sdk.ImageSpec
		mode     string
		size     image.Point
		channels int
		check    func(out image.Image) bool
	}{
		{"fill gray 28", sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}, "fill", image.Pt(28, 28), 1, nil},
		{"resize rgb", sdk.ImageSpec{Channels: 3, Width: 10, Height: 10}, "resize", image.Pt(10, 10), 3, nil},
		{"fit pads with black", sdk.ImageSpec{Channels: 3, Width: 20, Height: 20}, "fit", image.Pt(20, 20), 3, func(out image.Image) bool {
			// 40x20 scaled to 20x10, centred: rows 0-4 and 15-19 are padding.
			return nrgbaAt(out, 10, 0) == color.NRGBA{0, 0, 0, 255} && nrgbaAt(out, 10, 19) == color.NRGBA{0, 0, 0, 255} && nrgbaAt(out, 10, 10).G != 0
		}},
		{"fit enlarges", sdk.ImageSpec{Width: 80, Height: 80}, "fit", image.Pt(80, 80), 3, nil},
		{"width only keeps aspect", sdk.ImageSpec{Width: 20}, "fill", image.Pt(20, 10), 3, nil},
		{"channels only", sdk.ImageSpec{Channels: 1}, "fill", image.Pt(40, 20), 1, nil},
		{"rgba", sdk.ImageSpec{Channels: 4, Width: 40, Height: 20}, "fill", image.Pt(40, 20), 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := runOps(t, src, 0, &tc.consumer, map[string]any{"conform": map[string]any{"mode": tc.mode}})
			if got := out.Bounds().Size(); got != tc.size {
				t.Fatalf("size %v, expected %v", got, tc.size)
			}
			if c := item.Channels(out); c != tc.channels {
				t.Fatalf("%d channels, expected %d", c, tc.channels)
			}
			if tc.check != nil && !tc.check(out) {
				t.Fatal("pixels wrong")
			}
			// The output is accepted by ToTensor as is.
			if _, err := item.ToTensor([]item.Item{{Image: out}}, &tc.consumer); err != nil {
				t.Fatal(err)
			}
			in := &sdk.ImageSpec{Width: 40, Height: 20, Channels: 3}
			st := PreprocessOutput(checkedOps(t, map[string]any{"conform": map[string]any{"mode": tc.mode}}), in, &tc.consumer)
			wantC := tc.channels
			if tc.consumer.Channels == 4 {
				wantC = 4
			}
			if st.Width != tc.size.X || st.Height != tc.size.Y || st.Channels != wantC {
				t.Errorf("static output %+v", st)
			}
		})
	}
	// A gray image stays gray through conform.
	out := runOps(t, grayPattern(40, 20), 0, &sdk.ImageSpec{Width: 28, Height: 28}, "conform")
	if _, ok := out.(*image.Gray); !ok {
		t.Errorf("gray in, %T out", out)
	}
}

func TestPreprocessOutputStatic(t *testing.T) {
	ops := func(raw ...any) []any { return checkedOps(t, raw...) }
	rgb := &sdk.ImageSpec{Channels: 3, Width: 40, Height: 20}
	tests := []struct {
		name     string
		ops      []any
		in       *sdk.ImageSpec
		consumer *sdk.ImageSpec
		want     [3]int // width, height, channels
	}{
		{"nothing known", ops("invert"), nil, nil, [3]int{0, 0, 0}},
		{"resize both known without input", ops(map[string]any{"resize": map[string]any{"width": 64, "height": 32}}), nil, nil, [3]int{64, 32, 0}},
		{"resize one side needs input", ops(map[string]any{"resize": map[string]any{"width": 64}}), nil, nil, [3]int{64, 0, 0}},
		{"resize one side with input", ops(map[string]any{"resize": map[string]any{"width": 20}}), rgb, nil, [3]int{20, 10, 3}},
		{"grayscale", ops("grayscale"), nil, nil, [3]int{0, 0, 1}},
		{"fill then grayscale", ops(map[string]any{"fill": map[string]any{"width": 8, "height": 8}}, "grayscale"), nil, nil, [3]int{8, 8, 1}},
		{"crop needs input", ops(map[string]any{"crop": map[string]any{"width": 8, "height": 8}}), nil, nil, [3]int{0, 0, 0}},
		{"crop larger than input", ops(map[string]any{"crop": map[string]any{"width": 80, "height": 8}}), rgb, nil, [3]int{40, 8, 3}},
		{"rotate 270", ops(map[string]any{"rotate": map[string]any{"angle": -90}}), rgb, nil, [3]int{20, 40, 3}},
		{"conform", ops("invert", "conform"), rgb, &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}, [3]int{28, 28, 1}},
		{"conform open size", ops("conform"), rgb, &sdk.ImageSpec{Channels: 1}, [3]int{40, 20, 1}},
		{"invalid ops", []any{map[string]any{"resize": map[string]any{}}}, rgb, nil, [3]int{0, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := PreprocessOutput(tc.ops, tc.in, tc.consumer)
			if got := [3]int{s.Width, s.Height, s.Channels}; got != tc.want {
				t.Errorf("output %v, expected %v", got, tc.want)
			}
			if s.DType != sdk.Uint8 || s.Max != 255 {
				t.Errorf("range %+v", s)
			}
		})
	}
}

func TestPreprocessErrors(t *testing.T) {
	tests := []struct {
		name     string
		ops      []any
		consumer *sdk.ImageSpec
		want     []string
	}{
		{"conform without consumer", []any{"invert", "conform"}, nil, []string{"[1].conform", "conform needs a model stage"}},
		{"resize 0x0", []any{map[string]any{"resize": map[string]any{}}}, nil, []string{"[0].resize", "width or height"}},
		{"fit with a zero", []any{map[string]any{"fit": map[string]any{"width": 5}}}, nil, []string{"[0].fit", "5x0"}},
		{"crop with a zero", []any{"grayscale", map[string]any{"crop": map[string]any{"height": 5}}}, nil, []string{"[1].crop", "0x5"}},
		{"bad background", []any{map[string]any{"rotate": map[string]any{"angle": 10, "background": "red"}}}, nil, []string{"[0].rotate.background", "#rrggbb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ops := checkedOps(t, tc.ops...)
			_, err := NewPreprocess(ops, tc.consumer)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if errs := CheckPreprocess(ops, tc.consumer); len(errs) != 1 || !strings.HasPrefix(errs[0].Path, tc.want[0]) {
				t.Errorf("CheckPreprocess: %v", errs)
			}
		})
	}
	p, _ := NewPreprocess(nil, nil)
	if _, err := p.Apply(item.Item{Index: 3, Name: "z"}); err == nil || !strings.Contains(err.Error(), `item 3 "z"`) {
		t.Errorf("latent item: %v", err)
	}
	if _, err := p.Apply(item.Item{Image: image.NewGray(image.Rect(0, 0, 0, 5))}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty image: %v", err)
	}
}

func TestPreprocessConcurrent(t *testing.T) {
	p, err := NewPreprocess(checkedOps(t,
		map[string]any{"resize": map[string]any{"width": 24}},
		map[string]any{"noise": map[string]any{"amount": 0.3}},
		map[string]any{"rotate": map[string]any{"angle": 30}},
		"grayscale"), nil)
	if err != nil {
		t.Fatal(err)
	}
	src := pattern(32, 32, 1)
	want := make([]image.Image, 16)
	for i := range want {
		want[i], _ = p.Apply(item.Item{Image: src, Seed: uint64(i)})
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range want {
				got, err := p.Apply(item.Item{Image: src, Seed: uint64(i)})
				if err != nil || !pixelsEqual(got, want[i]) {
					t.Errorf("item %d differs when run concurrently (%v)", i, err)
				}
			}
		}()
	}
	wg.Wait()
	if !pixelsEqual(src, pattern(32, 32, 1)) {
		t.Error("the input image was modified")
	}
}

func TestPreprocessFrames(t *testing.T) {
	p, err := NewPreprocess(checkedOps(t, "invert", map[string]any{"noise": map[string]any{"amount": 0.2}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := uniformGray(8, 8, 50)
	it, err := p.ApplyItem(item.Item{Image: f, Frames: []image.Image{f, f}, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	if len(it.Frames) != 2 || it.Image != it.Frames[1] {
		t.Fatalf("frames %d, Image is the last frame: %v", len(it.Frames), it.Image == it.Frames[1])
	}
	if pixelsEqual(it.Frames[0], it.Frames[1]) {
		t.Error("frames got identical noise")
	}
}

// BenchmarkDecodePreprocessEncode is the host-stage path of one 256x256
// RGB image: decode a PNG file, conform it to 128x128, add noise, encode.
func BenchmarkDecodePreprocessEncode(b *testing.B) {
	file := filepath.Join(b.TempDir(), "in.png")
	src := image.NewNRGBA(image.Rect(0, 0, 256, 256))
	for i := range src.Pix {
		src.Pix[i] = uint8(i*7 + i/1024)
	}
	writeImage(b, file, src, "png")
	ops := checkedOps(b, map[string]any{"fill": map[string]any{"width": 128, "height": 128}}, map[string]any{"noise": map[string]any{"amount": 0.05}})
	p, err := NewPreprocess(ops, nil)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		img, err := DecodeFile(file, 0)
		if err != nil {
			b.Fatal(err)
		}
		out, err := p.Apply(item.Item{Image: img, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := encodeImage(&buf, out, "png", 95); err != nil {
			b.Fatal(err)
		}
	}
}
