package edges_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/examples/edges"
	"github.com/genpipe/genpipe/sdk"
)

// picture draws one C x H x W item from a colour function.
func picture(c, h, w int, col func(x, y int) [3]uint8) []uint8 {
	data := make([]uint8, c*h*w)
	for y := range h {
		for x := range w {
			v := col(x, y)
			if c == 1 {
				data[y*w+x] = v[0]
				continue
			}
			for k := range c {
				data[k*h*w+y*w+x] = v[k]
			}
		}
	}
	return data
}

func gray(v uint8) [3]uint8 { return [3]uint8{v, v, v} }

// rect is a 64x64 picture of a filled square [16, 48) x [16, 48).
func rect(c int) []uint8 {
	return picture(c, 64, 64, func(x, y int) [3]uint8 {
		if x >= 16 && x < 48 && y >= 16 && y < 48 {
			return [3]uint8{230, 200, 40} // luma 190
		}
		return [3]uint8{20, 40, 60} // luma 36
	})
}

// disc is a 64x64 gray picture of a filled circle of radius 20 at (32, 32).
func disc() []uint8 {
	return picture(1, 64, 64, func(x, y int) [3]uint8 {
		dx, dy := float64(x)+0.5-32, float64(y)+0.5-32
		if dx*dx+dy*dy < 20*20 {
			return gray(220)
		}
		return gray(30)
	})
}

func load(t testing.TB, params map[string]any) sdk.Translator {
	t.Helper()
	m, err := edges.New().Load(context.Background(), sdk.LoadRequest{Capability: sdk.CapTranslate, Params: params})
	if err != nil {
		t.Fatalf("load %v: %v", params, err)
	}
	tr, ok := m.(sdk.Translator)
	if !ok {
		t.Fatalf("load returned %T, which is not an sdk.Translator", m)
	}
	return tr
}

func translate(t testing.TB, params map[string]any, c, h, w int, items ...[]uint8) *sdk.Tensor {
	t.Helper()
	in := sdk.FromUint8(bytes.Join(items, nil), len(items), c, h, w)
	out, err := load(t, params).Translate(context.Background(), &sdk.Batch{Tensor: in})
	if err != nil {
		t.Fatalf("translate %v: %v", params, err)
	}
	if want := []int{len(items), 1, h, w}; fmt.Sprint(out.Shape) != fmt.Sprint(want) || out.DType != sdk.Uint8 {
		t.Fatalf("translate %v: got %s %v, want uint8 %v", params, out.DType, out.Shape, want)
	}
	return out
}

// lines returns the coordinates of line pixels (darker than mid-gray on the
// default white background).
func lines(out []uint8, w int) [][2]int {
	var p [][2]int
	for i, v := range out {
		if v < 128 {
			p = append(p, [2]int{i % w, i / w})
		}
	}
	return p
}

// distToSquare is the distance of pixel (x, y)'s centre from the boundary of
// the square [16, 48)^2.
func distToSquare(x, y int) float64 {
	px, py := float64(x)+0.5, float64(y)+0.5
	inside := px > 16 && px < 48 && py > 16 && py < 48
	dx := math.Max(math.Max(16-px, px-48), 0)
	dy := math.Max(math.Max(16-py, py-48), 0)
	if !inside {
		return math.Hypot(dx, dy)
	}
	return math.Min(math.Min(px-16, 48-px), math.Min(py-16, 48-py))
}

func TestDescribe(t *testing.T) {
	d := edges.New().Describe()
	for _, err := range sdk.ValidateDescription(d) {
		t.Errorf("description: %v", err)
	}
	if d.Name != "edges" || d.Version == "" {
		t.Errorf("name/version = %q/%q", d.Name, d.Version)
	}
	spec := d.Capability(sdk.CapTranslate)
	if spec == nil {
		t.Fatal("no translate capability")
	}
	p := d.Preset("")
	if p == nil || p.Name != "default" || !p.Has(sdk.CapTranslate) || p.Input.DType != sdk.Uint8 || p.Output.Channels != 1 {
		t.Fatalf("default preset = %+v", p)
	}
	// Every declared default must pass the declared validation.
	got, errs := sdk.CheckParams(spec.Params, nil, "")
	if len(errs) > 0 {
		t.Fatalf("defaults do not validate: %v", errs)
	}
	for _, sp := range spec.Params {
		if sp.Doc == "" {
			t.Errorf("param %s has no doc", sp.Name)
		}
		if _, ok := got[sp.Name]; !ok {
			t.Errorf("param %s has no default", sp.Name)
		}
	}
}

func TestCannySquareGivesOnePixelLinesOnTheBoundary(t *testing.T) {
	for _, c := range []int{1, 3} {
		t.Run(fmt.Sprintf("channels=%d", c), func(t *testing.T) {
			out := translate(t, nil, c, 64, 64, rect(c)).Data
			pts := lines(out, 64)
			for _, p := range pts {
				if d := distToSquare(p[0], p[1]); d > 1.5 {
					t.Errorf("line pixel at %v is %.1f px from the square's boundary (flat region)", p, d)
				}
			}
			// Thin: a row through the square's sides crosses exactly one line pixel per side.
			for y := 20; y < 44; y++ {
				left, right := 0, 0
				for x := range 64 {
					if out[y*64+x] < 128 {
						if x < 32 {
							left++
						} else {
							right++
						}
					}
				}
				if left != 1 || right != 1 {
					t.Errorf("row %d crosses %d line pixels on the left side and %d on the right, want 1 and 1", y, left, right)
				}
			}
			if n := len(pts); n < 4*32-8 || n > 4*32+8 {
				t.Errorf("%d line pixels, want about the perimeter 128", n)
			}
		})
	}
}

func TestCannyCircleIsClosedAndThin(t *testing.T) {
	out := translate(t, map[string]any{"method": "canny"}, 1, 64, 64, disc()).Data
	pts := lines(out, 64)
	on := map[[2]int]bool{}
	for _, p := range pts {
		on[p] = true
		r := math.Hypot(float64(p[0])+0.5-32, float64(p[1])+0.5-32)
		if math.Abs(r-20) > 1.5 {
			t.Errorf("line pixel %v at radius %.2f, want 20 +- 1.5", p, r)
		}
	}
	for a := 0; a < 360; a += 5 {
		s, c := math.Sincos(float64(a) * math.Pi / 180)
		found := false
		for _, p := range pts {
			if math.Hypot(float64(p[0])+0.5-32-20*c, float64(p[1])+0.5-32-20*s) <= 1.6 {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no line pixel near the circle at %d degrees", a)
		}
	}
	for p := range on {
		if on[[2]int{p[0] + 1, p[1]}] && on[[2]int{p[0], p[1] + 1}] && on[[2]int{p[0] + 1, p[1] + 1}] {
			t.Errorf("2x2 block of line pixels at %v: line not thin", p)
		}
	}
}

func TestSobelMarksBoundaryWithSoftThickerLines(t *testing.T) {
	out := translate(t, map[string]any{"method": "sobel"}, 3, 64, 64, rect(3)).Data
	canny := translate(t, map[string]any{"method": "canny"}, 3, 64, 64, rect(3)).Data
	for i, v := range out {
		x, y := i%64, i/64
		d := distToSquare(x, y)
		if d > 4 && v != 255 {
			t.Errorf("pixel (%d,%d), %.1f px from the boundary, is %d, want white 255", x, y, d, v)
		}
	}
	// The middle of each side is black.
	for _, p := range [][2]int{{16, 32}, {47, 32}, {32, 16}, {32, 47}} {
		if v := out[p[1]*64+p[0]]; v != 0 {
			t.Errorf("boundary pixel %v is %d, want black 0", p, v)
		}
	}
	if ns, nc := len(lines(out, 64)), len(lines(canny, 64)); ns <= nc {
		t.Errorf("sobel drew %d line pixels, canny %d: sobel should be thicker", ns, nc)
	}
	grays := 0
	for _, v := range out {
		if v > 0 && v < 255 {
			grays++
		}
	}
	if grays == 0 {
		t.Error("sobel output has no intermediate grays, want a soft ramp")
	}
}

// steps is a 64x160 gray picture of four squares of contrast 0.06, 0.15, 0.3
// and 0.6 on mid-gray, so thresholds can be checked in contrast units.
var contrasts = []float64{0.06, 0.15, 0.3, 0.6}

func steps() []uint8 {
	return picture(1, 64, 160, func(x, y int) [3]uint8 {
		if y >= 20 && y < 44 {
			for k, c := range contrasts {
				if x >= 8+k*40 && x < 32+k*40 {
					return gray(uint8(math.Round(60 + 255*c)))
				}
			}
		}
		return gray(60)
	})
}

func TestThresholdsAreInContrastUnitsAndMonotonic(t *testing.T) {
	img := steps()
	for _, method := range []string{"canny", "sobel"} {
		for _, sigma := range []float64{0, 1.5, 3} {
			prev := math.MaxInt
			for _, th := range []float64{0.02, 0.1, 0.2, 0.45, 0.8} {
				out := translate(t, map[string]any{"method": method, "sigma": sigma, "low": th, "high": th}, 1, 64, 160, img).Data
				n := len(lines(out, 160))
				if n > prev {
					t.Errorf("%s sigma %g: threshold %g drew %d line pixels, more than %d at a lower threshold", method, sigma, th, n, prev)
				}
				prev = n
				for k, c := range contrasts {
					// The middle of the square's left side.
					found := false
					for x := 8 + k*40 - 2; x <= 8+k*40+1; x++ {
						if out[32*160+x] < 128 {
							found = true
						}
					}
					if want := c > th*1.1; found != want && math.Abs(c-th) > 0.1*th {
						t.Errorf("%s sigma %g threshold %g: edge of contrast %g drawn=%v, want %v", method, sigma, th, c, found, want)
					}
				}
			}
		}
	}
}

func TestHysteresisKeepsWeakEdgesConnectedToStrongOnes(t *testing.T) {
	// One horizontal edge whose contrast fades along it from 0.6 (x < 16) to
	// 0.15 (x >= 40). With high 0.4 the line starts on the strong part; with
	// low 0.1 it follows the edge to the far weak end, with low 0.2 it stops.
	contrast := func(x int) float64 { return 0.6 - 0.45*min(max(float64(x-16)/24, 0), 1) }
	img := picture(1, 64, 64, func(x, y int) [3]uint8 {
		if y >= 32 {
			return gray(uint8(math.Round(60 + 255*contrast(x))))
		}
		return gray(60)
	})
	weakEnd := func(out []uint8) bool { return out[31*64+56] < 128 || out[32*64+56] < 128 }
	if out := translate(t, map[string]any{"low": 0.1, "high": 0.4}, 1, 64, 64, img).Data; !weakEnd(out) {
		t.Error("low 0.1 high 0.4: weak end of the edge dropped, want it kept through hysteresis")
	}
	if out := translate(t, map[string]any{"low": 0.2, "high": 0.4}, 1, 64, 64, img).Data; weakEnd(out) {
		t.Error("low 0.2 high 0.4: weak end of the edge kept, want it dropped")
	}
	// An edge that is weak everywhere is not drawn at all.
	weakOnly := picture(1, 64, 64, func(x, y int) [3]uint8 {
		if y >= 32 {
			return gray(60 + 38)
		}
		return gray(60)
	})
	if n := len(lines(translate(t, map[string]any{"low": 0.1, "high": 0.4}, 1, 64, 64, weakOnly).Data, 64)); n != 0 {
		t.Errorf("weak-only edge drew %d line pixels, want 0", n)
	}
	if n := len(lines(translate(t, map[string]any{"low": 0.1, "high": 0.14}, 1, 64, 64, weakOnly).Data, 64)); n != 64 {
		t.Errorf("weak-only edge with high 0.14 drew %d line pixels, want one row of 64", n)
	}
}

func TestInvertAndThickness(t *testing.T) {
	img := rect(3)
	plain := translate(t, nil, 3, 64, 64, img).Data
	inv := translate(t, map[string]any{"invert": true}, 3, 64, 64, img).Data
	for i := range plain {
		if inv[i] != 255-plain[i] {
			t.Fatalf("pixel %d: invert gives %d, want 255-%d", i, inv[i], plain[i])
		}
	}
	prev := len(lines(plain, 64))
	for _, th := range []int{1, 2, 4} {
		out := translate(t, map[string]any{"thickness": th}, 3, 64, 64, img).Data
		pts := lines(out, 64)
		if len(pts) <= prev {
			t.Errorf("thickness %d drew %d line pixels, not more than %d", th, len(pts), prev)
		}
		prev = len(pts)
		for _, p := range pts {
			if d := distToSquare(p[0], p[1]); d > float64(th)+2 {
				t.Errorf("thickness %d: line pixel %v is %.1f px from the boundary", th, p, d)
			}
		}
	}
}

func TestSketchIsWhiteWhereFlatAndDarkAtEdges(t *testing.T) {
	flat := picture(3, 32, 32, func(int, int) [3]uint8 { return [3]uint8{90, 120, 200} })
	for _, v := range translate(t, map[string]any{"method": "sketch", "sigma": 3.0}, 3, 32, 32, flat).Data {
		if v != 255 {
			t.Fatalf("sketch of a flat image has value %d, want all white", v)
		}
	}
	out := translate(t, map[string]any{"method": "sketch", "sigma": 3.0}, 3, 64, 64, rect(3)).Data
	darkest := uint8(255)
	for i, v := range out {
		if d := distToSquare(i%64, i/64); d > 10 && v < 250 {
			t.Errorf("pixel %d, %.1f px from the edge, is %d, want near white", i, d, v)
		}
		darkest = min(darkest, v)
	}
	// The dark side of the edge (the background just outside the square).
	if v := out[32*64+15]; v > 128 || v != darkest && v > darkest+60 {
		t.Errorf("pixel just outside the square is %d, want a dark stroke (darkest %d)", v, darkest)
	}
}

func TestBatchItemsAreIndependentAndDeterministic(t *testing.T) {
	a, b, c := rect(3), picture(3, 64, 64, func(x, y int) [3]uint8 { return [3]uint8{uint8(x * 4), uint8(y * 4), 0} }), rect(3)
	c[5000] = 255
	for _, method := range []string{"canny", "sobel", "sketch"} {
		p := map[string]any{"method": method}
		batch := translate(t, p, 3, 64, 64, a, b, c, a, b, c, a)
		again := translate(t, p, 3, 64, 64, a, b, c, a, b, c, a)
		if !bytes.Equal(batch.Data, again.Data) {
			t.Errorf("%s: two runs differ", method)
		}
		for i, item := range [][]uint8{a, b, c, a, b, c, a} {
			alone := translate(t, p, 3, 64, 64, item)
			if !bytes.Equal(batch.Slice(i, i+1).Data, alone.Data) {
				t.Errorf("%s: item %d differs in a batch of 7 from alone", method, i)
			}
		}
	}
}

func TestEmptyBatch(t *testing.T) {
	in := sdk.NewTensor(sdk.Uint8, 0, 3, 8, 8)
	out, err := load(t, nil).Translate(context.Background(), &sdk.Batch{Tensor: in})
	if err != nil || fmt.Sprint(out.Shape) != "[0 1 8 8]" {
		t.Fatalf("empty batch: %v %v", out, err)
	}
}

func TestBadInput(t *testing.T) {
	tr := load(t, nil)
	cases := []struct {
		name string
		in   *sdk.Batch
		want string
	}{
		{"nil batch", nil, "no input tensor"},
		{"float32", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Float32, 1, 3, 4, 4)}, "expected uint8 pixels, got float32"},
		{"2 channels", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 1, 2, 4, 4)}, "expected 1 or 3 channels, got 2"},
		{"4 channels", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 2, 4, 4, 4)}, "expected 1 or 3 channels, got 4"},
		{"3-d", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 3, 4, 4)}, "expected an N x C x H x W image batch, got shape [3 4 4]"},
		{"latent", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 3, 16)}, "got shape [3 16]"},
		{"short data", &sdk.Batch{Tensor: &sdk.Tensor{Shape: []int{1, 1, 4, 4}, DType: sdk.Uint8, Data: make([]byte, 15)}}, "needs 16 bytes, got 15"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tr.Translate(context.Background(), tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "plugin edges: translate: ") {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name string
		req  sdk.LoadRequest
		want []string
	}{
		{"typo in name", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"sigm": 2.0}}, []string{`unknown parameter "sigm"`, `did you mean "sigma"?`}},
		{"typo in method", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"method": "cany"}}, []string{`"cany" is not one of canny, sobel, sketch`, `did you mean "canny"?`}},
		{"out of range", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"high": 2.0, "thickness": 9}}, []string{"high: 2 is out of range [0, 1]", "thickness: 9 is out of range [0, 8]"}},
		{"wrong type", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"invert": "yes"}}, []string{`invert: expected bool, got string "yes"`}},
		{"low above high", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"low": 0.5, "high": 0.3}}, []string{"low (0.5) must not exceed high (0.3)"}},
		{"sketch without blur", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"method": "sketch", "sigma": 0}}, []string{"sketch needs sigma > 0"}},
		{"other capability", sdk.LoadRequest{Capability: sdk.CapDenoise}, []string{`capability "denoise" is not supported`}},
		{"unknown preset", sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: "defualt"}, []string{`unknown preset "defualt"`, `did you mean "default"?`}},
		{"weights", sdk.LoadRequest{Capability: sdk.CapTranslate, Weights: "w.safetensors"}, []string{"takes no weights"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := edges.New().Load(context.Background(), tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "plugin edges: load: ") {
				t.Errorf("error %q lacks the layer prefix", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadFillsDefaults(t *testing.T) {
	cfg, err := edges.ParseConfig(map[string]any{"sigma": 2}) // an int where a float is declared
	if err != nil {
		t.Fatal(err)
	}
	want := edges.Config{Method: "canny", Sigma: 2, Low: 0.08, High: 0.2}
	if cfg != want {
		t.Errorf("config %+v, want %+v", cfg, want)
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := sdk.FromUint8(bytes.Repeat(rect(3), 4), 4, 3, 64, 64)
	_, err := load(t, nil).Translate(ctx, &sdk.Batch{Tensor: in})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// BenchmarkTranslate measures the in-process cost of a 16-image 256x256 RGB
// batch, the figure the out-of-process call is compared with.
func BenchmarkTranslate(b *testing.B) {
	img := picture(3, 256, 256, func(x, y int) [3]uint8 {
		dx, dy := x-128, y-128
		v := uint8((x*7 + y*3) % 64)
		if dx*dx+dy*dy < 80*80 {
			v += 150
		}
		return [3]uint8{v, v / 2, 255 - v}
	})
	in := &sdk.Batch{Tensor: sdk.FromUint8(bytes.Repeat(img, 16), 16, 3, 256, 256)}
	for _, method := range []string{"canny", "sobel", "sketch"} {
		b.Run(method, func(b *testing.B) {
			tr := load(b, map[string]any{"method": method})
			b.SetBytes(int64(len(in.Data)))
			for b.Loop() {
				if _, err := tr.Translate(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
