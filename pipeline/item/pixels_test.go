package item

import (
	"bytes"
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/genpipe/genpipe/sdk"
)

// floatBatch returns an n x c x h x w float32 tensor of values spread over
// [lo, hi] and a little beyond, with a NaN and both ends exactly.
func floatBatch(r *rand.Rand, lo, hi float32, n, c, h, w int) *sdk.Tensor {
	v := make([]float32, n*c*h*w)
	for i := range v {
		v[i] = lo + (hi-lo)*(r.Float32()*1.2-0.1)
	}
	v[0], v[1], v[2] = float32(math.NaN()), lo, hi
	return sdk.FromFloat32(v, n, c, h, w)
}

func imageBytes(img image.Image) []byte {
	switch m := img.(type) {
	case *image.Gray:
		return m.Pix
	case *image.NRGBA:
		return m.Pix
	}
	return nil
}

// A float model output kept in the items quantises, when a host stage asks
// for pixels, to exactly the bytes FromTensor made before (8-bit outputs
// stay byte-identical), and only one representation stays.
func TestWithPixelsIsFromTensor(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, spec := range []*sdk.ImageSpec{
		{DType: sdk.Float32},
		{DType: sdk.Float32, Min: 0, Max: 1},
		{DType: sdk.Float32, Min: -1, Max: 1},
		{DType: sdk.Float32, Min: -0.5, Max: 3},
	} {
		for _, c := range []int{1, 2, 3, 4} {
			ts := floatBatch(r, spec.Min, max(spec.Max, 1), 3, c, 5, 7)
			want, err := FromTensor(ts, spec)
			if err != nil {
				t.Fatal(err)
			}
			items := make([]Item, 3)
			for i := range items {
				items[i] = Item{Index: i, Image: image.NewGray(image.Rect(0, 0, 1, 1)), Label: -1}
			}
			if err := Unpack(items, ts, spec); err != nil {
				t.Fatal(err)
			}
			for i, it := range items {
				if it.Image != nil || it.Frames != nil || it.Tensor == nil || it.Tensor.DType != sdk.Float32 {
					t.Fatalf("unpacked item %d: image %v, tensor %v; expected only a float tensor", i, it.Image != nil, it.Tensor)
				}
				if sc, sh, sw, ok := it.Shape(); !ok || sh != 5 || sw != 7 || sc != map[int]int{1: 1, 2: 3, 3: 3, 4: 3}[c] {
					t.Fatalf("Shape = %d %d %d %v", sc, sh, sw, ok)
				}
				px, err := it.WithPixels()
				if err != nil {
					t.Fatal(err)
				}
				if px.Tensor != nil || px.Image == nil || px.Frames != nil {
					t.Fatalf("WithPixels kept the tensor or made no image")
				}
				if !bytes.Equal(imageBytes(px.Image), imageBytes(want[i][0])) {
					t.Fatalf("spec %+v, %d channels, item %d: pixels differ from FromTensor's", spec, c, i)
				}
				if _, ok := px.Image.(*image.Gray); ok != (c == 1) {
					t.Fatalf("%d channels gave %T", c, px.Image)
				}
			}
		}
	}
}

func TestUnpackUint8AndSequences(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	u8 := sdk.NewTensor(sdk.Uint8, 2, 3, 4, 4)
	for i := range u8.Data {
		u8.Data[i] = uint8(r.IntN(256))
	}
	seq := floatBatch(r, 0, 1, 2*3, 1, 4, 4)
	seq.Shape = []int{2, 3, 1, 4, 4}
	for _, tc := range []struct {
		name string
		t    *sdk.Tensor
		spec *sdk.ImageSpec
	}{
		{"uint8", u8, nil},
		{"float sequence", seq, &sdk.ImageSpec{DType: sdk.Float32}},
	} {
		want, err := FromTensor(tc.t, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		items := []Item{{Latent: sdk.FromFloat32([]float32{1}, 1, 1)}, {Index: 1}}
		if err := Unpack(items, tc.t, tc.spec); err != nil {
			t.Fatal(err)
		}
		for i, it := range items {
			if it.Tensor != nil || it.Latent != nil || it.Image == nil {
				t.Fatalf("%s: item %d keeps a tensor or latent, or has no image", tc.name, i)
			}
			frames := want[i]
			if !bytes.Equal(imageBytes(it.Image), imageBytes(frames[len(frames)-1])) {
				t.Fatalf("%s: item %d differs from FromTensor", tc.name, i)
			}
			if len(frames) > 1 && len(it.Frames) != len(frames) || len(frames) == 1 && it.Frames != nil {
				t.Fatalf("%s: %d frames, expected %d", tc.name, len(it.Frames), len(frames))
			}
		}
	}
	if err := Unpack(make([]Item, 3), u8, nil); err == nil {
		t.Error("3 items for 2 images: no error")
	}
	if err := Unpack(make([]Item, 2), u8, &sdk.ImageSpec{DType: sdk.Float32}); err == nil {
		t.Error("dtype mismatch: no error")
	}
}

// Float items go to a float model by a range remap that never rounds to 8
// bits; to a uint8 model (or one wanting other channels) exactly as their
// 8-bit image would.
func TestToTensorFromFloatItems(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	out01 := &sdk.ImageSpec{DType: sdk.Float32, Min: 0, Max: 1}
	ts := floatBatch(r, 0, 1, 2, 3, 4, 5)
	items := make([]Item, 2)
	if err := Unpack(items, ts, out01); err != nil {
		t.Fatal(err)
	}
	orig := append([]Item(nil), items...)
	src := ts.Float32s()
	clamped := make([]float32, len(src))
	for i, v := range src {
		clamped[i] = min(max(v, 0), 1)
		if v != v {
			clamped[i] = 0
		}
	}

	// Same range: the values themselves (clamped), bit for bit.
	got, err := ToTensor(items, &sdk.ImageSpec{DType: sdk.Float32, Channels: 3, Height: 4, Width: 5})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.Float32s() {
		if v != clamped[i] {
			t.Fatalf("value %d: %v, expected %v", i, v, clamped[i])
		}
	}
	// Another range: a linear map, to float precision.
	got, err = ToTensor(items, &sdk.ImageSpec{DType: sdk.Float32, Min: -1, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	maxErr := 0.0
	for i, v := range got.Float32s() {
		maxErr = max(maxErr, math.Abs(float64(v)-(2*float64(clamped[i])-1)))
	}
	if maxErr > 1e-6 {
		t.Fatalf("[0,1] -> [-1,1]: max error %g", maxErr)
	}
	// The 8-bit path would be off by up to half a step of 1/255.
	if q := quantError(clamped); q < 1e-4 {
		t.Fatalf("test values quantise with error %g only; they test nothing", q)
	}

	// uint8, and other channels: as the 8-bit images go.
	for _, spec := range []*sdk.ImageSpec{nil, {DType: sdk.Uint8, Channels: 1}, {DType: sdk.Float32, Channels: 1}, {DType: sdk.Float32, Channels: 4, Min: -1, Max: 1}} {
		px := make([]Item, len(items))
		for i := range items {
			if px[i], err = items[i].WithPixels(); err != nil {
				t.Fatal(err)
			}
		}
		want, err := ToTensor(px, spec)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ToTensor(items, spec)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Data, want.Data) || !equalShape(got.Shape, want.Shape) || got.DType != want.DType {
			t.Fatalf("spec %+v: float items differ from their 8-bit images", spec)
		}
	}
	// Neither the caller's items nor their tensors changed.
	for i := range items {
		if items[i].Tensor != orig[i].Tensor || items[i].Image != nil {
			t.Fatal("ToTensor changed the caller's items")
		}
	}
	if !bytes.Equal(sdk.FromFloat32(src, ts.Shape...).Data, ts.Data) {
		t.Fatal("the tensor changed")
	}
	// Mixed float and 8-bit items share one tensor when the shape agrees.
	mixed := []Item{items[0], {Image: image.NewNRGBA(image.Rect(0, 0, 5, 4))}}
	if !SameShape(mixed, nil) {
		t.Fatal("SameShape: a 3-channel float item and a colour image of the same size differ")
	}
	if _, err := ToTensor(mixed, out01); err != nil {
		t.Fatal(err)
	}
	if SameShape([]Item{items[0], {Image: image.NewGray(image.Rect(0, 0, 5, 4))}}, nil) {
		t.Fatal("SameShape: 3-channel float item and a gray image agree")
	}
}

func quantError(v []float32) float64 {
	e := 0.0
	for _, x := range v {
		q := math.Round(float64(x)*255) / 255
		e = max(e, math.Abs(q-float64(x)))
	}
	return e
}

func equalShape(a, b []int) bool {
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

// 8-bit pixels go to float [0, 1] as v/255 exactly (what a float model
// computing in [0, 1] divides by itself), and to other ranges linearly.
func TestToTensorUint8ToFloat(t *testing.T) {
	pix := make([]uint8, 256)
	for i := range pix {
		pix[i] = uint8(i)
	}
	g := &image.Gray{Pix: pix, Stride: 256, Rect: image.Rect(0, 0, 256, 1)}
	got, err := ToTensor([]Item{{Image: g}}, &sdk.ImageSpec{DType: sdk.Float32})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.Float32s() {
		if want := float32(i) / 255; v != want {
			t.Fatalf("%d -> %v, expected %v", i, v, want)
		}
	}
	got, err = ToTensor([]Item{{Image: g}}, &sdk.ImageSpec{DType: sdk.Float32, Min: -1, Max: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.Float32s() {
		if want := float64(i)/255*2 - 1; math.Abs(float64(v)-want) > 1e-6 {
			t.Fatalf("%d -> %v, expected %v", i, v, want)
		}
	}
}

func TestRemapClamps(t *testing.T) {
	src := sdk.FromFloat32([]float32{float32(math.NaN()), -3, -1, 0, 1, 3}, 6).Data
	dst := make([]byte, len(src))
	remap(dst, src, -1, 1, 0, 1)
	want := []float32{0, 0, 0, 0.5, 1, 1}
	got := (&sdk.Tensor{Shape: []int{6}, DType: sdk.Float32, Data: dst}).Float32s()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("remap: %v, expected %v", got, want)
		}
	}
}
