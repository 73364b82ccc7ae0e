package stages

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"

	"github.com/genpipe/genpipe/sdk"
)

// encode returns img encoded in format (png, jpeg, gif, bmp, tiff).
func encode(t testing.TB, img image.Image, format string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95})
	case "gif":
		err = gif.Encode(&buf, img, nil)
	case "bmp":
		err = bmp.Encode(&buf, img)
	case "tiff":
		err = tiff.Encode(&buf, img, nil)
	default:
		t.Fatalf("unknown format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeImage(t testing.TB, path string, img image.Image, format string) string {
	t.Helper()
	return writeFile(t, path, encode(t, img, format))
}

// pattern is an opaque RGB test image whose pixels depend on position and k.
func pattern(w, h, k int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x*16 + k), uint8(y * 16), uint8(k * 40), 255})
		}
	}
	return m
}

func grayPattern(w, h int) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	for i := range g.Pix {
		g.Pix[i] = uint8(i * 7)
	}
	return g
}

// checked runs sdk.CheckParams on raw values of spec, as the planner does,
// and fails the test on errors.
func checked(t testing.TB, spec sdk.Param, raw map[string]any) map[string]any {
	t.Helper()
	v, errs := sdk.CheckParams([]sdk.Param{spec}, map[string]any{spec.Name: raw}, "")
	if len(errs) > 0 {
		t.Fatalf("params: %v", errs)
	}
	return v[spec.Name].(map[string]any)
}

func checkedOps(t testing.TB, raw ...any) []any {
	t.Helper()
	v, errs := sdk.CheckParams([]sdk.Param{PreprocessParam()}, map[string]any{"preprocess": raw}, "")
	if len(errs) > 0 {
		t.Fatalf("params: %v", errs)
	}
	return v["preprocess"].([]any)
}

func pixelsEqual(a, b image.Image) bool {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Size() != bb.Size() {
		return false
	}
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			if color.NRGBAModel.Convert(a.At(ab.Min.X+x, ab.Min.Y+y)) != color.NRGBAModel.Convert(b.At(bb.Min.X+x, bb.Min.Y+y)) {
				return false
			}
		}
	}
	return true
}

// NewPreprocess parses ops and reports their problems as one error.
func NewPreprocess(ops []any, consumer *sdk.ImageSpec) (*Preprocess, error) {
	p, errs := ParsePreprocess(ops, consumer)
	if len(errs) > 0 {
		return nil, fmt.Errorf("preprocess: %w", joinParamErrors(errs))
	}
	return p, nil
}

// CheckPreprocess returns ParsePreprocess's problems.
func CheckPreprocess(ops []any, consumer *sdk.ImageSpec) []*sdk.ParamError {
	_, errs := ParsePreprocess(ops, consumer)
	return errs
}

// PreprocessOutput is the output of ops, all unknown when they are invalid.
func PreprocessOutput(ops []any, in, consumer *sdk.ImageSpec) *sdk.ImageSpec {
	p, errs := ParsePreprocess(ops, consumer)
	if len(errs) > 0 {
		return &sdk.ImageSpec{DType: sdk.Uint8, Min: 0, Max: 255}
	}
	return p.Output(in)
}
