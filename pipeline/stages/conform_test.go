package stages

import (
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/disintegration/imaging"
	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// white returns a w x h opaque white colour image.
func white(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = 255
	}
	return m
}

func TestNewConformerNothingToDo(t *testing.T) {
	for name, c := range map[string]*Conformer{
		"off":           NewConformer("s", ConformOff, &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}),
		"no input":      NewConformer("s", ConformFit, nil),
		"channels only": NewConformer("s", ConformFit, &sdk.ImageSpec{Channels: 1}),
	} {
		if c != nil {
			t.Errorf("%s: got a conformer, want nil", name)
		}
		it := item.Item{Image: white(64, 32)}
		got, err := c.Item(it)
		if err != nil || got.Image != it.Image {
			t.Errorf("%s: a nil conformer changed the item (err %v)", name, err)
		}
	}
}

// A 64x32 white photo into a 1-channel 28x28 model: every mode gives a
// 28x28 gray image; fit keeps the whole picture and pads with black, fill
// and resize cover the square.
func TestConformModes(t *testing.T) {
	want := &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}
	for _, tc := range []struct {
		mode      string
		corner    uint8 // pixel (0, 0)
		padRows   int   // black rows at the top
		middleRow uint8
	}{
		{ConformFit, 0, 7, 255},
		{ConformFill, 255, 0, 255},
		{ConformResize, 255, 0, 255},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			in := item.Item{Index: 3, Name: "wide", Image: white(64, 32), Seed: 9}
			got, err := NewConformer("enc", tc.mode, want).Item(in)
			if err != nil {
				t.Fatal(err)
			}
			g, ok := got.Image.(*image.Gray)
			if !ok || g.Rect.Dx() != 28 || g.Rect.Dy() != 28 {
				t.Fatalf("got %T %v, want a 28x28 *image.Gray", got.Image, got.Image.Bounds())
			}
			if v := g.GrayAt(0, 0).Y; v != tc.corner {
				t.Errorf("corner %d, want %d", v, tc.corner)
			}
			for y := 0; y < tc.padRows; y++ {
				if v := g.GrayAt(14, y).Y; v != 0 {
					t.Errorf("row %d is %d, want black padding", y, v)
				}
			}
			if v := g.GrayAt(14, 14).Y; v < tc.middleRow-2 {
				t.Errorf("centre %d, want about %d", v, tc.middleRow)
			}
			if n := len(got.Prov); n != 1 || got.Prov[0].Kind != "conform" || got.Prov[0].Params["from"] != "64x32" || got.Prov[0].Params["to"] != "28x28x1" || got.Prov[0].Params["mode"] != tc.mode {
				t.Errorf("provenance %+v, want one conform step from 64x32 to 28x28x1", got.Prov)
			}
			if in.Image.Bounds().Dx() != 64 || len(in.Prov) != 0 {
				t.Error("the input item was modified")
			}
		})
	}
}

// Gray becomes colour by replication when the model takes 3 channels, and
// transparency is composited on black.
func TestConformChannels(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 10, 10))
	for y := 0; y < 10; y++ {
		for x := 0; x < 10; x++ {
			src.SetNRGBA(x, y, color.NRGBA{R: 200, G: 100, B: 50, A: 0}) // fully transparent
		}
	}
	got, err := NewConformer("t", ConformResize, &sdk.ImageSpec{Channels: 3, Width: 5, Height: 5}).Item(item.Item{Image: src})
	if err != nil {
		t.Fatal(err)
	}
	if r, g, b, a := got.Image.At(2, 2).RGBA(); r != 0 || g != 0 || b != 0 || a != 0xffff {
		t.Errorf("transparent pixel became %d,%d,%d,%d, want opaque black", r, g, b, a)
	}
	gray := image.NewGray(image.Rect(0, 0, 4, 4))
	for i := range gray.Pix {
		gray.Pix[i] = 90
	}
	got, err = NewConformer("t", ConformResize, &sdk.ImageSpec{Channels: 3, Width: 8, Height: 8}).Item(item.Item{Image: gray})
	if err != nil {
		t.Fatal(err)
	}
	if c, _, _, _ := got.Shape(); c != 3 {
		t.Fatalf("got %d channels, want 3", c)
	}
	if r, g, b, _ := got.Image.At(3, 3).RGBA(); r>>8 != 90 || g>>8 != 90 || b>>8 != 90 {
		t.Errorf("gray 90 became %d,%d,%d", r>>8, g>>8, b>>8)
	}
}

// An item already of the declared size is passed as it is: float pixels
// stay float (not quantised), and no provenance step claims a change.
func TestConformKeepsMatchingItems(t *testing.T) {
	tensor := sdk.NewTensor(sdk.Float32, 1, 1, 28, 28)
	in := item.Item{Tensor: tensor, Range: [2]float32{-1, 1}}
	got, err := NewConformer("d", ConformFit, &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}).Item(in)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tensor != tensor || got.Image != nil || len(got.Prov) != 0 {
		t.Errorf("a matching float item was changed: tensor kept %v, image %v, prov %v", got.Tensor == tensor, got.Image != nil, got.Prov)
	}
	// A float item of another size is quantised and resized.
	small := item.Item{Tensor: sdk.NewTensor(sdk.Float32, 1, 1, 14, 14), Range: [2]float32{-1, 1}}
	got, err = NewConformer("d", ConformFit, &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}).Item(small)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tensor != nil || got.Image == nil || got.Image.Bounds().Dx() != 28 {
		t.Errorf("a 14x14 float item was not conformed to 28x28 pixels")
	}
}

// Every frame of a sequence is conformed; the input's frames (which
// fan-out branches share) are left alone.
func TestConformFrames(t *testing.T) {
	frames := []image.Image{white(10, 20), white(10, 20)}
	in := item.Item{Frames: frames, Image: frames[1]}
	got, err := NewConformer("s", ConformFill, &sdk.ImageSpec{Width: 16, Height: 16}).Item(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Frames) != 2 || got.Image != got.Frames[1] {
		t.Fatalf("got %d frames", len(got.Frames))
	}
	for i, f := range got.Frames {
		if f.Bounds().Dx() != 16 || f.Bounds().Dy() != 16 {
			t.Errorf("frame %d is %v", i, f.Bounds())
		}
		if frames[i].Bounds().Dx() != 10 {
			t.Errorf("input frame %d was replaced", i)
		}
	}
}

// restore undoes fit: a 64x32 photo whose left half is white goes into a
// 28x28 model as a 28x14 band between black rows; an identity "model" plus
// Restore gives back 64x32 with the left half white and the right black,
// not the padding stretched in. A model that doubles its input (56x56 out)
// is restored the same way: the content box scales with the output.
func TestRestoreFit(t *testing.T) {
	want := &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}
	src := image.NewGray(image.Rect(0, 0, 64, 32))
	for y := range 32 {
		for x := range 32 {
			src.SetGray(x, y, color.Gray{Y: 255})
		}
	}
	c := NewConformer("tr", ConformFit, want).WithRestore()
	if !c.Restores() {
		t.Fatal("WithRestore: Restores is false")
	}
	in, err := c.Item(item.Item{Name: "half", Image: src})
	if err != nil {
		t.Fatal(err)
	}
	for _, scale := range []int{1, 2} {
		out := in
		if scale != 1 {
			out.Image = item.ToGray(imaging.Resize(in.Image, 28*scale, 28*scale, imaging.NearestNeighbor))
		}
		got, err := c.Restore(out, 64, 32)
		if err != nil {
			t.Fatal(err)
		}
		g, ok := got.Image.(*image.Gray)
		if !ok || g.Rect.Dx() != 64 || g.Rect.Dy() != 32 {
			t.Fatalf("x%d: got %T %v, want a 64x32 *image.Gray", scale, got.Image, got.Image.Bounds())
		}
		for _, p := range []struct {
			x, y int
			want uint8
		}{{4, 1, 255}, {4, 30, 255}, {28, 16, 255}, {36, 16, 0}, {60, 1, 0}, {60, 30, 0}} {
			if v := int(g.GrayAt(p.x, p.y).Y); v < int(p.want)-30 || v > int(p.want)+30 {
				t.Errorf("x%d: pixel (%d,%d) is %d, want about %d", scale, p.x, p.y, v, p.want)
			}
		}
		last := got.Prov[len(got.Prov)-1]
		if last.Kind != "restore" || last.Params["to"] != "64x32" || last.Params["from"] != fmt.Sprintf("%dx%d", 28*scale, 28*scale) {
			t.Errorf("x%d: last provenance step %+v, want restore from the output to 64x32", scale, last)
		}
	}
}

// Without WithRestore, and for fill (which cannot be undone), Restore
// leaves outputs alone.
func TestRestoreOnlyWhenAsked(t *testing.T) {
	want := &sdk.ImageSpec{Channels: 1, Width: 28, Height: 28}
	out := item.Item{Image: white(28, 28)}
	for name, c := range map[string]*Conformer{
		"not asked": NewConformer("tr", ConformFit, want),
		"fill":      NewConformer("tr", ConformFill, want).WithRestore(),
		"nil":       nil,
	} {
		got, err := c.Restore(out, 64, 32)
		if err != nil || got.Image != out.Image {
			t.Errorf("%s: Restore changed the output (err %v)", name, err)
		}
	}
}
