package diffusion

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/sdk"
)

// maskURL is a w x h mask image, light inside light, as the host hands it
// to the plugin.
func maskURL(t *testing.T, w, h int, light image.Rectangle) string {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := light.Min.Y; y < light.Max.Y; y++ {
		for x := light.Min.X; x < light.Max.X; x++ {
			img.SetGray(x, y, color.Gray{Y: 200})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return sdk.ImageDataURL("image/png", buf.Bytes())
}

// TestInpaintMaskImage checks that a mask image marks the same region as
// the box that draws it, and that a wrong size, an all-dark mask or both
// box and mask are errors naming the problem.
func TestInpaintMaskImage(t *testing.T) {
	a := Arch{Kind: UNet, Ch: 1, Size: Size}
	get := func(p sdk.Params) ([]bool, error) {
		md := &model{m: &Model{Arch: a}, params: p}
		return md.inpaintMask()
	}
	fromBox, err := get(sdk.Params{"box": []any{3, 5, 20, 11}})
	if err != nil {
		t.Fatal(err)
	}
	fromMask, err := get(sdk.Params{"mask": maskURL(t, Size, Size, image.Rect(3, 5, 20, 11))})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fromBox, fromMask) {
		t.Errorf("the mask image's region differs from the box's")
	}
	n := 0
	for _, m := range fromMask {
		if m {
			n++
		}
	}
	if n != 17*6 {
		t.Errorf("mask marks %d pixels, want %d", n, 17*6)
	}
	for _, c := range []struct {
		p    sdk.Params
		want string
	}{
		{sdk.Params{"mask": maskURL(t, 32, 28, image.Rect(0, 0, 4, 4))}, "mask: image is 32x28 (WxH), expected 28x28"},
		{sdk.Params{"mask": maskURL(t, Size, Size, image.Rectangle{})}, "nothing to inpaint"},
		{sdk.Params{"mask": "masks/hole.png"}, "expected a data URL"},
		{sdk.Params{"box": []any{0, 0, 4, 4}, "mask": maskURL(t, Size, Size, image.Rect(0, 0, 4, 4))}, "give box or mask, not both"},
	} {
		if _, err := get(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got error %v, want one containing %q", err, c.want)
		}
	}
}
