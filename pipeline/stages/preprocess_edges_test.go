package stages

import (
	"image"
	"image/color"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/item"
)

// A black/white step: sobel measures 255 on it, canny draws one line.
func TestEdgesStep(t *testing.T) {
	img := image.NewGray(image.Rect(0, 0, 20, 10))
	for y := range 10 {
		for x := 10; x < 20; x++ {
			img.SetGray(x, y, color.Gray{255})
		}
	}
	sobel := runOps(t, img, 0, nil, map[string]any{"edges": map[string]any{"method": "sobel", "sigma": 0}}).(*image.Gray)
	canny := runOps(t, img, 0, nil, map[string]any{"edges": map[string]any{"method": "canny", "sigma": 1}}).(*image.Gray)
	for y := range 10 {
		var peak uint8
		lines := 0
		for x := range 20 {
			peak = max(peak, sobel.GrayAt(x, y).Y)
			if canny.GrayAt(x, y).Y == 255 {
				lines++
				if x != 9 && x != 10 {
					t.Errorf("row %d: canny line at x=%d, expected at the step", y, x)
				}
			} else if canny.GrayAt(x, y).Y != 0 {
				t.Errorf("canny pixel %d at (%d,%d), expected 0 or 255", canny.GrayAt(x, y).Y, x, y)
			}
		}
		if peak != 255 {
			t.Errorf("row %d: sobel peak %d, expected 255", y, peak)
		}
		if lines != 1 {
			t.Errorf("row %d: %d canny pixels, expected a 1-pixel line", y, lines)
		}
	}
	if v := sobel.GrayAt(2, 5).Y; v != 0 {
		t.Errorf("sobel %d on a flat area", v)
	}
}

// On a real photo: one channel, same size, some but not most pixels edges;
// higher thresholds keep fewer.
func TestEdgesPhoto(t *testing.T) {
	img, err := DecodeFile("../../examples/data/photos/objects/coffee.jpg", 1<<26)
	if err != nil {
		t.Fatal(err)
	}
	count := func(op map[string]any) (int, image.Rectangle) {
		out := runOps(t, img, 0, nil, map[string]any{"edges": op})
		g, ok := out.(*image.Gray)
		if !ok {
			t.Fatalf("%v: %T, expected a 1-channel image", op, out)
		}
		n := 0
		for _, v := range g.Pix {
			if v >= 128 {
				n++
			}
		}
		return n, g.Rect
	}
	total := img.Bounds().Dx() * img.Bounds().Dy()
	loose, r := count(map[string]any{"low": 0.05, "high": 0.1})
	strict, _ := count(map[string]any{"low": 0.2, "high": 0.4})
	sobel, _ := count(map[string]any{"method": "sobel"})
	if r.Size() != img.Bounds().Size() {
		t.Errorf("size %v, expected %v", r.Size(), img.Bounds().Size())
	}
	for name, n := range map[string]int{"canny": loose, "sobel": sobel} {
		if n == 0 || n > total/4 {
			t.Errorf("%s: %d of %d pixels are edges", name, n, total)
		}
	}
	if strict >= loose {
		t.Errorf("canny: %d edge pixels at high thresholds, %d at low ones", strict, loose)
	}
	if s := PreprocessOutput(checkedOps(t, map[string]any{"edges": map[string]any{}}), nil, nil); s.Channels != 1 {
		t.Errorf("output channels %d, expected 1", s.Channels)
	}
	it := item.Item{Image: img}
	p, _ := NewPreprocess(checkedOps(t, map[string]any{"edges": map[string]any{}}), nil)
	if _, err := p.ApplyItem(it); err != nil {
		t.Error(err)
	}
}

func TestEdgesErrors(t *testing.T) {
	errs := CheckPreprocess(checkedOps(t, map[string]any{"edges": map[string]any{"low": 0.5, "high": 0.1}}), nil)
	if len(errs) != 1 || errs[0].Path != "[0].edges.high" || !strings.Contains(errs[0].Msg, "below low") {
		t.Errorf("errors %v", errs)
	}
}
