package item

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/sdk"
)

func grayImg(w, h int, f func(x, y int) uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			g.SetGray(x, y, color.Gray{Y: f(x, y)})
		}
	}
	return g
}

func nrgbaImg(w, h int, f func(x, y int) color.NRGBA) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetNRGBA(x, y, f(x, y))
		}
	}
	return m
}

func randNRGBA(r *rand.Rand, w, h int, opaque bool) *image.NRGBA {
	return nrgbaImg(w, h, func(x, y int) color.NRGBA {
		a := uint8(255)
		if !opaque {
			a = uint8(r.IntN(256))
		}
		return color.NRGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), a}
	})
}

func TestToTensorValues(t *testing.T) {
	red := nrgbaImg(2, 1, func(x, y int) color.NRGBA { return color.NRGBA{255, 0, 0, 255} })
	half := nrgbaImg(1, 1, func(x, y int) color.NRGBA { return color.NRGBA{200, 100, 50, 128} })
	ramp := grayImg(3, 1, func(x, y int) uint8 { return []uint8{0, 128, 255}[x] })
	redLuma := color.GrayModel.Convert(color.NRGBA{255, 0, 0, 255}).(color.Gray).Y
	tests := []struct {
		name  string
		img   image.Image
		spec  *sdk.ImageSpec
		shape []int
		want  []float32
	}{
		{"gray uint8 nil spec", ramp, nil, []int{1, 1, 1, 3}, []float32{0, 128, 255}},
		{"gray float32 default [0,1]", ramp, &sdk.ImageSpec{DType: sdk.Float32}, []int{1, 1, 1, 3}, []float32{0, 128.0 / 255, 1}},
		{"gray float32 [-1,1]", ramp, &sdk.ImageSpec{DType: sdk.Float32, Min: -1, Max: 1}, []int{1, 1, 1, 3}, []float32{-1, 128.0/255*2 - 1, 1}},
		{"uint8 ignores range", ramp, &sdk.ImageSpec{DType: sdk.Uint8, Min: -1, Max: 1}, []int{1, 1, 1, 3}, []float32{0, 128, 255}},
		{"gray to rgb replicates", ramp, &sdk.ImageSpec{Channels: 3}, []int{1, 3, 1, 3}, []float32{0, 128, 255, 0, 128, 255, 0, 128, 255}},
		{"gray to rgba opaque", ramp, &sdk.ImageSpec{Channels: 4}, []int{1, 4, 1, 3}, []float32{0, 128, 255, 0, 128, 255, 0, 128, 255, 255, 255, 255}},
		{"rgb to gray luminance", red, &sdk.ImageSpec{Channels: 1}, []int{1, 1, 1, 2}, []float32{float32(redLuma), float32(redLuma)}},
		{"rgb natural 3", red, nil, []int{1, 3, 1, 2}, []float32{255, 255, 0, 0, 0, 0}},
		{"alpha composited on black", half, &sdk.ImageSpec{Channels: 3}, []int{1, 3, 1, 1}, []float32{100, 50, 25}},
		{"alpha kept in 4 channels", half, &sdk.ImageSpec{Channels: 4}, []int{1, 4, 1, 1}, []float32{200, 100, 50, 128}},
		{"gray and alpha", half, &sdk.ImageSpec{Channels: 2}, []int{1, 2, 1, 1}, []float32{float32(luma(200, 100, 50, 255)), 128}},
		{"sub-image bounds", ramp.SubImage(image.Rect(1, 0, 3, 1)), nil, []int{1, 1, 1, 2}, []float32{128, 255}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts, err := ToTensor([]Item{{Image: tc.img}}, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.Check(); err != nil {
				t.Fatal(err)
			}
			if !sameInts(ts.Shape, tc.shape) {
				t.Fatalf("shape %v, expected %v", ts.Shape, tc.shape)
			}
			got := ts.Float32s()
			for i := range tc.want {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-5 {
					t.Fatalf("values %v, expected %v", got, tc.want)
				}
			}
		})
	}
}

func sameInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestToTensorBatchLayout(t *testing.T) {
	a := grayImg(2, 2, func(x, y int) uint8 { return uint8(10*y + x) })
	b := grayImg(2, 2, func(x, y int) uint8 { return uint8(100 + 10*y + x) })
	ts, err := ToTensor([]Item{{Image: a}, {Image: b}}, &sdk.ImageSpec{Channels: 1, Height: 2, Width: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 1, 10, 11, 100, 101, 110, 111}
	if !bytes.Equal(ts.Data, want) {
		t.Fatalf("data %v, expected %v", ts.Data, want)
	}
}

func TestToTensorErrors(t *testing.T) {
	g28 := grayImg(28, 28, func(x, y int) uint8 { return 0 })
	g30 := grayImg(30, 28, func(x, y int) uint8 { return 0 })
	rgb := nrgbaImg(28, 28, func(x, y int) color.NRGBA { return color.NRGBA{A: 255} })
	tests := []struct {
		name  string
		items []Item
		spec  *sdk.ImageSpec
		mixed bool
		want  []string
	}{
		{"empty", nil, nil, false, []string{"empty batch"}},
		{"latent", []Item{{Index: 4, Name: "z"}}, nil, false, []string{"item 4", "no image"}},
		{"fixed size", []Item{{Image: g28}, {Index: 7, Name: "cats/tom", Source: "in/cats/tom.png", Image: g30}},
			&sdk.ImageSpec{Height: 28, Width: 28}, false, []string{"item 7", "cats/tom", "in/cats/tom.png", "30x28", "expected 28x28"}},
		{"fixed width only", []Item{{Image: g30}}, &sdk.ImageSpec{Width: 28}, false, []string{"30x28", "expected 28x*"}},
		{"mixed sizes", []Item{{Image: g28}, {Index: 1, Image: g30}}, nil, true, []string{"differ", "item 1", "30x28"}},
		{"mixed channels", []Item{{Image: g28}, {Index: 1, Image: rgb}}, nil, true, []string{"differ", "3 channels"}},
		{"bad channels", []Item{{Image: g28}}, &sdk.ImageSpec{Channels: 5}, false, []string{"5 channels"}},
		{"empty range", []Item{{Image: g28}}, &sdk.ImageSpec{DType: sdk.Float32, Min: 1, Max: -1}, false, []string{"range"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ToTensor(tc.items, tc.spec)
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrMixedShapes) != tc.mixed {
				t.Errorf("errors.Is(err, ErrMixedShapes) = %v: %v", !tc.mixed, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "item: to tensor: ") {
				t.Errorf("error %q lacks the layer prefix", err)
			}
		})
	}
}

func TestSameShape(t *testing.T) {
	g28 := Item{Image: grayImg(28, 28, func(x, y int) uint8 { return 0 })}
	g30 := Item{Image: grayImg(30, 28, func(x, y int) uint8 { return 0 })}
	rgb := Item{Image: nrgbaImg(28, 28, func(x, y int) color.NRGBA { return color.NRGBA{A: 255} })}
	tests := []struct {
		name     string
		items    []Item
		spec     *sdk.ImageSpec
		size, ok bool
	}{
		{"same", []Item{g28, g28}, nil, true, true},
		{"sizes differ", []Item{g28, g30}, nil, false, false},
		{"channels differ", []Item{g28, rgb}, nil, true, false},
		{"channels fixed", []Item{g28, rgb}, &sdk.ImageSpec{Channels: 3}, true, true},
		{"size fixed", []Item{g28, g30}, &sdk.ImageSpec{Width: 28, Height: 28}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SameSize(tc.items); got != tc.size {
				t.Errorf("SameSize = %v", got)
			}
			if got := SameShape(tc.items, tc.spec); got != tc.ok {
				t.Errorf("SameShape = %v", got)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gray := func() image.Image {
		return grayImg(7, 5, func(x, y int) uint8 { return uint8(r.IntN(256)) })
	}
	specs := []*sdk.ImageSpec{
		nil,
		{DType: sdk.Uint8},
		{DType: sdk.Float32},
		{DType: sdk.Float32, Min: -1, Max: 1},
		{DType: sdk.Float32, Min: 0, Max: 255},
		{DType: sdk.Float32, Min: -0.5, Max: 3},
	}
	for _, spec := range specs {
		for _, c := range []int{1, 3, 4} {
			var items []Item
			for i := 0; i < 3; i++ {
				var img image.Image
				switch c {
				case 1:
					img = gray()
				case 3:
					img = randNRGBA(r, 7, 5, true)
				case 4:
					img = randNRGBA(r, 7, 5, false)
				}
				items = append(items, Item{Index: i, Image: img})
			}
			var s *sdk.ImageSpec
			if spec != nil {
				cp := *spec
				cp.Channels = c
				s = &cp
			} else if c == 4 {
				s = &sdk.ImageSpec{Channels: 4}
			}
			ts, err := ToTensor(items, s)
			if err != nil {
				t.Fatal(err)
			}
			imgs, err := FromTensor(ts, s)
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != len(items) {
				t.Fatalf("%d items back, expected %d", len(imgs), len(items))
			}
			for i, it := range items {
				if len(imgs[i]) != 1 {
					t.Fatalf("%d frames, expected 1", len(imgs[i]))
				}
				back := imgs[i][0]
				if c == 1 {
					if _, ok := back.(*image.Gray); !ok {
						t.Fatalf("1 channel gave %T, expected *image.Gray", back)
					}
				}
				if !samePixels(it.Image, back) {
					t.Fatalf("spec %+v, %d channels: item %d differs after the round trip", spec, c, i)
				}
			}
		}
	}
}

func samePixels(a, b image.Image) bool {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Size() != bb.Size() {
		return false
	}
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			c1 := color.NRGBAModel.Convert(a.At(ab.Min.X+x, ab.Min.Y+y))
			c2 := color.NRGBAModel.Convert(b.At(bb.Min.X+x, bb.Min.Y+y))
			if c1 != c2 {
				return false
			}
		}
	}
	return true
}

func TestFromTensorRangeAndClamp(t *testing.T) {
	nan := float32(math.NaN())
	ts := sdk.FromFloat32([]float32{-2, -1, 0, 1, 2, nan, 0.5, -0.999}, 1, 1, 1, 8)
	imgs, err := FromTensor(ts, &sdk.ImageSpec{DType: sdk.Float32, Min: -1, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	g := imgs[0][0].(*image.Gray)
	want := []uint8{0, 0, 128, 255, 255, 0, 191, 0}
	if !bytes.Equal(g.Pix, want) {
		t.Fatalf("pixels %v, expected %v", g.Pix, want)
	}
}

func TestFromTensorSequence(t *testing.T) {
	// 2 items, 3 frames, 3 channels, 1x2 pixels; frame f of item n is n*10+f.
	var v []uint8
	for n := 0; n < 2; n++ {
		for f := 0; f < 3; f++ {
			for i := 0; i < 3*2; i++ {
				v = append(v, uint8(n*10+f))
			}
		}
	}
	imgs, err := FromTensor(sdk.FromUint8(v, 2, 3, 3, 1, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || len(imgs[0]) != 3 {
		t.Fatalf("got %d items of %d frames, expected 2 of 3", len(imgs), len(imgs[0]))
	}
	for n := range imgs {
		for f, img := range imgs[n] {
			m, ok := img.(*image.NRGBA)
			if !ok {
				t.Fatalf("3 channels gave %T, expected *image.NRGBA", img)
			}
			if c := m.NRGBAAt(1, 0); c != (color.NRGBA{uint8(n*10 + f), uint8(n*10 + f), uint8(n*10 + f), 255}) {
				t.Fatalf("item %d frame %d pixel %v", n, f, c)
			}
		}
	}
}

func TestFromTensorErrors(t *testing.T) {
	tests := []struct {
		name string
		t    *sdk.Tensor
		spec *sdk.ImageSpec
		want string
	}{
		{"nil", nil, nil, "no tensor"},
		{"rank", sdk.NewTensor(sdk.Uint8, 2, 4), nil, "expected NCHW or NTCHW"},
		{"channels", sdk.NewTensor(sdk.Uint8, 1, 5, 2, 2), nil, "5 channels"},
		{"bad bytes", &sdk.Tensor{Shape: []int{1, 1, 2, 2}, DType: sdk.Uint8, Data: []byte{1}}, nil, "needs 4 bytes"},
		{"dtype", sdk.NewTensor(sdk.Uint8, 1, 1, 2, 2), &sdk.ImageSpec{DType: sdk.Float32}, "dtype uint8, expected float32"},
		{"shape", sdk.NewTensor(sdk.Uint8, 1, 1, 2, 2), &sdk.ImageSpec{Channels: 3, Height: 2, Width: 2}, "1x2x2 (CxHxW), expected 3x2x2"},
		{"latent", &sdk.Tensor{Shape: []int{1, 1, 1, 1}, DType: sdk.Uint8, Data: []byte{0}, Space: "vae/z"}, nil, "latent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromTensor(tc.t, tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, expected one containing %q", err, tc.want)
			}
		})
	}
}

func TestToTensorJPEG(t *testing.T) {
	// A decoded JPEG is *image.YCbCr: it must convert like any other image.
	src := randNRGBA(rand.New(rand.NewPCG(3, 4)), 16, 8, true)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, nil); err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.YCbCr); !ok {
		t.Fatalf("decoded %T", img)
	}
	ts, err := ToTensor([]Item{{Image: img}}, &sdk.ImageSpec{Channels: 3})
	if err != nil {
		t.Fatal(err)
	}
	back, err := FromTensor(ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !samePixels(img, back[0][0]) {
		t.Fatal("YCbCr image differs after the round trip")
	}
	g, err := ToTensor([]Item{{Image: img}}, &sdk.ImageSpec{Channels: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := color.GrayModel.Convert(img.At(3, 2)).(color.Gray).Y
	if got := g.Data[2*16+3]; got != want {
		t.Fatalf("gray pixel %d, expected %d", got, want)
	}
}

func TestConvertChannels(t *testing.T) {
	src := nrgbaImg(2, 2, func(x, y int) color.NRGBA { return color.NRGBA{200, 100, 50, 128} })
	for _, c := range []int{1, 2, 3, 4} {
		img, err := ConvertChannels(src, c)
		if err != nil {
			t.Fatal(err)
		}
		ts, _ := ToTensor([]Item{{Image: img}}, &sdk.ImageSpec{Channels: c})
		direct, _ := ToTensor([]Item{{Image: src}}, &sdk.ImageSpec{Channels: c})
		if !bytes.Equal(ts.Data, direct.Data) {
			t.Errorf("%d channels: converting first gives %v, directly %v", c, ts.Data, direct.Data)
		}
	}
	if _, err := ConvertChannels(src, 0); err == nil {
		t.Error("0 channels: no error")
	}
}

func BenchmarkToTensorRGB256(b *testing.B) {
	img := randNRGBA(rand.New(rand.NewPCG(1, 1)), 256, 256, true)
	items := make([]Item, 16)
	for i := range items {
		items[i] = Item{Image: img}
	}
	spec := &sdk.ImageSpec{Channels: 3, Height: 256, Width: 256, DType: sdk.Float32, Min: -1, Max: 1}
	b.SetBytes(int64(len(items) * 256 * 256 * 3))
	for b.Loop() {
		if _, err := ToTensor(items, spec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFromTensorRGB256(b *testing.B) {
	img := randNRGBA(rand.New(rand.NewPCG(1, 1)), 256, 256, true)
	items := make([]Item, 16)
	for i := range items {
		items[i] = Item{Image: img}
	}
	spec := &sdk.ImageSpec{Channels: 3, Height: 256, Width: 256, DType: sdk.Float32, Min: -1, Max: 1}
	ts, err := ToTensor(items, spec)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(items) * 256 * 256 * 3))
	for b.Loop() {
		if _, err := FromTensor(ts, spec); err != nil {
			b.Fatal(err)
		}
	}
}
