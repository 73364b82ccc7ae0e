package classic_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/plugins/classic"
	"github.com/genpipe/genpipe/sdk"
)

// scene is a C x H x W test picture: a smooth diagonal gradient with a
// bright disc and a dark square, so it has flat areas, ramps and edges.
func scene(c, h, w int) []uint8 {
	data := make([]uint8, c*h*w)
	for y := range h {
		for x := range w {
			base := 60 + 80*float64(x+y)/float64(h+w)
			dx, dy := float64(x-w/3), float64(y-h/3)
			switch {
			case dx*dx+dy*dy < float64(h*h)/36:
				base = 220
			case x > w/2 && x < w*7/8 && y > h/2 && y < h*7/8:
				base = 25
			}
			for k := range c {
				data[k*h*w+y*w+x] = uint8(base + float64(20*k))
			}
		}
	}
	return data
}

func saltPepper(img []uint8, frac float64, seed uint64) []uint8 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := append([]uint8(nil), img...)
	for i := range out {
		if r.Float64() < frac {
			out[i] = uint8(255 * r.IntN(2))
		}
	}
	return out
}

func gaussNoise(img []uint8, sigma float64, seed uint64) []uint8 {
	r := rand.New(rand.NewPCG(seed, 2))
	out := make([]uint8, len(img))
	for i, v := range img {
		out[i] = uint8(math.Round(min(max(float64(v)+sigma*r.NormFloat64(), 0), 255)))
	}
	return out
}

func psnr(a, b []uint8) float64 {
	var se float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		se += d * d
	}
	if se == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(se/float64(len(a))))
}

func load(t testing.TB, capability sdk.Capability, params map[string]any) sdk.Model {
	t.Helper()
	m, err := classic.New().Load(context.Background(), sdk.LoadRequest{Capability: capability, Params: params})
	if err != nil {
		t.Fatalf("load %s %v: %v", capability, params, err)
	}
	return m
}

// run loads a model for capability, runs it on the items and checks that the
// output has the input's shape.
func run(t testing.TB, capability sdk.Capability, params map[string]any, c, h, w int, items ...[]uint8) []uint8 {
	t.Helper()
	in := &sdk.Batch{Tensor: sdk.FromUint8(bytes.Join(items, nil), len(items), c, h, w)}
	var out *sdk.Tensor
	var err error
	switch m := load(t, capability, params).(type) {
	case sdk.Denoiser:
		out, err = m.Denoise(context.Background(), in)
	case sdk.Translator:
		out, err = m.Translate(context.Background(), in)
	default:
		t.Fatalf("load %s returned %T", capability, m)
	}
	if err != nil {
		t.Fatalf("%s %v: %v", capability, params, err)
	}
	if fmt.Sprint(out.Shape) != fmt.Sprint(in.Shape) || out.DType != sdk.Uint8 {
		t.Fatalf("%s %v: got %s %v, want uint8 %v", capability, params, out.DType, out.Shape, in.Shape)
	}
	return out.Data
}

func TestDescribe(t *testing.T) {
	d := classic.New().Describe()
	for _, err := range sdk.ValidateDescription(d) {
		t.Errorf("description: %v", err)
	}
	if d.Name != "classic" || d.Version == "" {
		t.Errorf("name/version = %q/%q", d.Name, d.Version)
	}
	p := d.Preset("")
	if p == nil || p.Name != "default" || !p.Has(sdk.CapDenoise) || !p.Has(sdk.CapTranslate) {
		t.Fatalf("default preset = %+v", p)
	}
	for _, c := range []sdk.Capability{sdk.CapDenoise, sdk.CapTranslate} {
		spec := d.Capability(c)
		if spec == nil {
			t.Fatalf("no %s capability", c)
		}
		got, errs := sdk.CheckParams(spec.Params, nil, "")
		if len(errs) > 0 {
			t.Errorf("%s: defaults do not validate: %v", c, errs)
		}
		for _, sp := range spec.Params {
			if sp.Doc == "" {
				t.Errorf("%s param %s has no doc", c, sp.Name)
			}
			if _, ok := got[sp.Name]; !ok {
				t.Errorf("%s param %s has no default", c, sp.Name)
			}
		}
	}
}

func TestDenoiseImprovesPSNR(t *testing.T) {
	const h, w = 48, 64
	cases := []struct {
		noise  string
		params map[string]any
		gain   float64 // dB, at least
	}{
		{"salt_pepper", map[string]any{"method": "median"}, 12},
		{"salt_pepper", map[string]any{"method": "median", "radius": 2}, 8},
		{"gaussian", map[string]any{"method": "gaussian", "sigma": 1.0}, 2},
		{"gaussian", map[string]any{"method": "bilateral"}, 3},
		{"gaussian", map[string]any{"method": "nlmeans", "strength": 15.0}, 4},
	}
	for _, tc := range cases {
		for _, c := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%v/c%d", tc.noise, tc.params, c), func(t *testing.T) {
				clean := scene(c, h, w)
				noisy := saltPepper(clean, 0.08, 1)
				if tc.noise == "gaussian" {
					noisy = gaussNoise(clean, 15, 1)
				}
				out := run(t, sdk.CapDenoise, tc.params, c, h, w, noisy)
				before, after := psnr(noisy, clean), psnr(out, clean)
				t.Logf("PSNR %.1f dB -> %.1f dB", before, after)
				if after < before+tc.gain {
					t.Errorf("PSNR %.1f dB -> %.1f dB, want a gain of at least %g dB", before, after, tc.gain)
				}
			})
		}
	}
}

func variance(v []uint8) float64 {
	var s, s2 float64
	for _, x := range v {
		s += float64(x)
		s2 += float64(x) * float64(x)
	}
	n := float64(len(v))
	return s2/n - (s/n)*(s/n)
}

func TestGaussianReducesVarianceOfFlatNoise(t *testing.T) {
	flat := bytes.Repeat([]uint8{128}, 64*64)
	noisy := gaussNoise(flat, 20, 3)
	prev := variance(noisy)
	for _, sigma := range []float64{0.5, 1, 2, 4} {
		v := variance(run(t, sdk.CapDenoise, map[string]any{"method": "gaussian", "sigma": sigma}, 1, 64, 64, noisy))
		if v >= prev {
			t.Errorf("sigma %g: variance %.1f, not below %.1f at a smaller sigma", sigma, v, prev)
		}
		prev = v
	}
	if v0 := variance(noisy); prev > v0/20 {
		t.Errorf("sigma 4: variance %.1f, want below 1/20 of the noise's %.1f", prev, v0)
	}
}

func TestBilateralKeepsEdgesThatGaussianBlurs(t *testing.T) {
	// A vertical step from 40 to 200 at x = 32.
	step := make([]uint8, 64*64)
	for i := range step {
		if i%64 >= 32 {
			step[i] = 200
		} else {
			step[i] = 40
		}
	}
	noisy := gaussNoise(step, 8, 4)
	bil := run(t, sdk.CapDenoise, map[string]any{"method": "bilateral", "sigma_space": 3.0, "sigma_color": 30.0}, 1, 64, 64, noisy)
	gau := run(t, sdk.CapDenoise, map[string]any{"method": "gaussian", "sigma": 3.0}, 1, 64, 64, noisy)
	// Mean error of the two columns beside the edge.
	edgeErr := func(img []uint8) float64 {
		var e float64
		for y := range 64 {
			for _, x := range []int{31, 32} {
				e += math.Abs(float64(img[y*64+x]) - float64(step[y*64+x]))
			}
		}
		return e / 128
	}
	if eb, eg := edgeErr(bil), edgeErr(gau); eb > 8 || eg < 30 {
		t.Errorf("mean error beside the edge: bilateral %.1f (want <= 8), gaussian %.1f (want >= 30)", eb, eg)
	}
	flatPatch := func(img []uint8) []uint8 {
		var p []uint8
		for y := 8; y < 56; y++ {
			p = append(p, img[y*64+4:y*64+24]...)
		}
		return p
	}
	if vb, vn := variance(flatPatch(bil)), variance(flatPatch(noisy)); vb > vn/4 {
		t.Errorf("bilateral: flat-area variance %.1f, want below a quarter of the noise's %.1f", vb, vn)
	}
}

func TestMedianKeepsACleanImage(t *testing.T) {
	// A median of radius 1 leaves straight-edged shapes and flat areas as
	// they are (the disc's rim and corners may change by a pixel).
	img := make([]uint8, 32*32)
	for i := range img {
		if x, y := i%32, i/32; x >= 8 && x < 24 && y >= 8 && y < 24 {
			img[i] = 180
		}
	}
	out := run(t, sdk.CapDenoise, nil, 1, 32, 32, img)
	diff := 0
	for i := range img {
		if out[i] != img[i] {
			diff++
		}
	}
	if diff != 4 { // the four corner pixels of the square are cut
		t.Errorf("median changed %d pixels of a clean square, want only its 4 corners", diff)
	}
}

func TestPosterize(t *testing.T) {
	ramp := make([]uint8, 256)
	for i := range ramp {
		ramp[i] = uint8(i)
	}
	for _, levels := range []int{2, 3, 4, 8, 256} {
		out := run(t, sdk.CapTranslate, map[string]any{"method": "posterize", "levels": levels}, 1, 1, 256, ramp)
		seen := map[uint8]bool{}
		for i, v := range out {
			seen[v] = true
			step := 255 / float64(levels-1)
			if math.Abs(float64(v)-float64(i)) > step/2+0.5 {
				t.Errorf("levels %d: %d -> %d, more than half a step (%.1f) away", levels, i, v, step/2)
			}
			if i > 0 && v < out[i-1] {
				t.Errorf("levels %d: not monotonic at %d", levels, i)
			}
		}
		if len(seen) != levels || !seen[0] || !seen[255] {
			t.Errorf("levels %d: %d distinct values (0 and 255 present: %v %v)", levels, len(seen), seen[0], seen[255])
		}
	}
}

func TestSepia(t *testing.T) {
	img := scene(3, 16, 16)
	out := run(t, sdk.CapTranslate, map[string]any{"method": "sepia"}, 3, 16, 16, img)
	n := 16 * 16
	for i := range n {
		r, g, b := out[i], out[n+i], out[2*n+i]
		if r < g || g < b {
			t.Fatalf("pixel %d is (%d,%d,%d), want warm tones r >= g >= b", i, r, g, b)
		}
	}
	if same := run(t, sdk.CapTranslate, map[string]any{"method": "sepia", "amount": 0.0}, 3, 16, 16, img); !bytes.Equal(same, img) {
		t.Error("sepia amount 0 changed the image")
	}
	half := run(t, sdk.CapTranslate, map[string]any{"method": "sepia", "amount": 0.5}, 3, 16, 16, img)
	for i := range half {
		lo, hi := min(img[i], out[i]), max(img[i], out[i])
		if half[i] < lo || half[i] > hi {
			t.Fatalf("amount 0.5: value %d outside [%d, %d]", half[i], lo, hi)
		}
	}
	m := load(t, sdk.CapTranslate, map[string]any{"method": "sepia"}).(sdk.Translator)
	_, err := m.Translate(context.Background(), &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 2, 1, 4, 4)})
	if err == nil || !strings.Contains(err.Error(), "plugin classic: translate: item 0: sepia needs 3 channels, got 1") {
		t.Errorf("sepia on gray: error %v", err)
	}
}

func TestOtsuSeparatesABimodalImage(t *testing.T) {
	// Noisy dark background (mean 60) with a noisy bright square (mean 170);
	// the noise never crosses the middle, so Otsu must recover the mask.
	const h, w = 40, 40
	r := rand.New(rand.NewPCG(5, 5))
	for _, c := range []int{1, 3} {
		img := make([]uint8, c*h*w)
		mask := make([]bool, h*w)
		for y := range h {
			for x := range w {
				mean := 60.0
				if x >= 10 && x < 25 && y >= 5 && y < 35 {
					mean, mask[y*w+x] = 170, true
				}
				v := uint8(mean + 25*(2*r.Float64()-1))
				for k := range c {
					img[k*h*w+y*w+x] = v
				}
			}
		}
		out := run(t, sdk.CapTranslate, map[string]any{"method": "threshold"}, c, h, w, img)
		for k := range c {
			for i, m := range mask {
				if want := map[bool]uint8{false: 0, true: 255}[m]; out[k*h*w+i] != want {
					t.Fatalf("channels %d: pixel %d of channel %d is %d, want %d", c, i, k, out[k*h*w+i], want)
				}
			}
		}
	}
	// A fixed cutoff: strictly above it is white.
	ramp := []uint8{0, 99, 100, 101, 255}
	out := run(t, sdk.CapTranslate, map[string]any{"method": "threshold", "cutoff": 100}, 1, 1, 5, ramp)
	if !bytes.Equal(out, []uint8{0, 0, 0, 255, 255}) {
		t.Errorf("cutoff 100 on %v gives %v", ramp, out)
	}
	// Two flat levels: the cut falls halfway between them.
	two := []uint8{40, 40, 40, 200, 200}
	for _, cut := range []int{-1} {
		out := run(t, sdk.CapTranslate, map[string]any{"method": "threshold", "cutoff": cut}, 1, 1, 5, two)
		if !bytes.Equal(out, []uint8{0, 0, 0, 255, 255}) {
			t.Errorf("otsu on %v gives %v", two, out)
		}
	}
}

func TestBatchItemsAreIndependentAndDeterministic(t *testing.T) {
	const h, w = 24, 32
	a, b := scene(3, h, w), gaussNoise(scene(3, h, w), 20, 9)
	c := saltPepper(a, 0.1, 9)
	items := [][]uint8{a, b, c, b, a}
	for _, tc := range []struct {
		capability sdk.Capability
		params     map[string]any
	}{
		{sdk.CapDenoise, map[string]any{"method": "median", "radius": 2}},
		{sdk.CapDenoise, map[string]any{"method": "gaussian"}},
		{sdk.CapDenoise, map[string]any{"method": "bilateral"}},
		{sdk.CapDenoise, map[string]any{"method": "nlmeans", "search_radius": 3}},
		{sdk.CapTranslate, map[string]any{"method": "posterize"}},
		{sdk.CapTranslate, map[string]any{"method": "sepia"}},
		{sdk.CapTranslate, map[string]any{"method": "threshold"}},
	} {
		batch := run(t, tc.capability, tc.params, 3, h, w, items...)
		if again := run(t, tc.capability, tc.params, 3, h, w, items...); !bytes.Equal(batch, again) {
			t.Errorf("%s %v: two runs differ", tc.capability, tc.params)
		}
		size := 3 * h * w
		for i, item := range items {
			if alone := run(t, tc.capability, tc.params, 3, h, w, item); !bytes.Equal(batch[i*size:(i+1)*size], alone) {
				t.Errorf("%s %v: item %d differs in a batch from alone", tc.capability, tc.params, i)
			}
		}
	}
}

func TestOddSizes(t *testing.T) {
	// Tiny and thin images must not index out of range in any filter.
	for _, sz := range [][2]int{{1, 1}, {1, 9}, {9, 1}, {2, 3}} {
		img := scene(3, sz[0], sz[1])
		for _, method := range []string{"median", "gaussian", "bilateral", "nlmeans"} {
			run(t, sdk.CapDenoise, map[string]any{"method": method, "radius": 3}, 3, sz[0], sz[1], img)
		}
		for _, method := range []string{"posterize", "sepia", "threshold"} {
			run(t, sdk.CapTranslate, map[string]any{"method": method}, 3, sz[0], sz[1], img)
		}
	}
	for _, method := range []string{"median", "gaussian", "bilateral", "nlmeans"} {
		in := &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 0, 3, 8, 8)}
		out, err := load(t, sdk.CapDenoise, map[string]any{"method": method}).(sdk.Denoiser).Denoise(context.Background(), in)
		if err != nil || fmt.Sprint(out.Shape) != "[0 3 8 8]" {
			t.Errorf("%s on an empty batch: %v %v", method, out, err)
		}
	}
}

func TestBadInput(t *testing.T) {
	d := load(t, sdk.CapDenoise, nil).(sdk.Denoiser)
	tr := load(t, sdk.CapTranslate, nil).(sdk.Translator)
	cases := []struct {
		name string
		in   *sdk.Batch
		want string
	}{
		{"nil batch", nil, "no input tensor"},
		{"float32", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Float32, 1, 3, 4, 4)}, "expected uint8 pixels, got float32"},
		{"4 channels", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 1, 4, 4, 4)}, "expected 1 or 3 channels, got 4"},
		{"latent", &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 2, 16)}, "expected an N x C x H x W image batch, got shape [2 16]"},
		{"short data", &sdk.Batch{Tensor: &sdk.Tensor{Shape: []int{2, 1, 2, 2}, DType: sdk.Uint8, Data: make([]byte, 7)}}, "needs 8 bytes, got 7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Denoise(context.Background(), tc.in)
			if err == nil || !strings.HasPrefix(err.Error(), "plugin classic: denoise: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("denoise: error %v, want one containing %q", err, tc.want)
			}
			_, err = tr.Translate(context.Background(), tc.in)
			if err == nil || !strings.HasPrefix(err.Error(), "plugin classic: translate: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("translate: error %v, want one containing %q", err, tc.want)
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
		{"typo in name", sdk.LoadRequest{Capability: sdk.CapDenoise, Params: sdk.Params{"sigma_colour": 20.0}}, []string{`unknown parameter "sigma_colour"`, `did you mean "sigma_color"?`}},
		{"typo in method", sdk.LoadRequest{Capability: sdk.CapDenoise, Params: sdk.Params{"method": "meidan"}}, []string{`"meidan" is not one of median, gaussian, bilateral, nlmeans`, `did you mean "median"?`}},
		{"translate param on denoise", sdk.LoadRequest{Capability: sdk.CapDenoise, Params: sdk.Params{"levels": 4}}, []string{`unknown parameter "levels"`}},
		{"out of range", sdk.LoadRequest{Capability: sdk.CapTranslate, Params: sdk.Params{"levels": 1, "cutoff": 256}}, []string{"cutoff: 256 is out of range [-1, 255]", "levels: 1 is out of range [2, 256]"}},
		{"wrong type", sdk.LoadRequest{Capability: sdk.CapDenoise, Params: sdk.Params{"radius": 1.5}}, []string{"radius: expected int, got 1.5"}},
		{"other capability", sdk.LoadRequest{Capability: sdk.CapGenerate}, []string{`capability "generate" is not supported`}},
		{"unknown preset", sdk.LoadRequest{Capability: sdk.CapDenoise, Preset: "defaults"}, []string{`unknown preset "defaults"`, `did you mean "default"?`}},
		{"weights", sdk.LoadRequest{Capability: sdk.CapDenoise, Weights: "w.safetensors"}, []string{"take no weights"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := classic.New().Load(context.Background(), tc.req)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "plugin classic: load: ") {
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

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := &sdk.Batch{Tensor: sdk.NewTensor(sdk.Uint8, 3, 3, 16, 16)}
	_, err := load(t, sdk.CapDenoise, nil).(sdk.Denoiser).Denoise(ctx, in)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// BenchmarkDenoise and BenchmarkTranslate time a 16-image 256x256 RGB batch
// in process, per method.
func BenchmarkDenoise(b *testing.B) {
	in := &sdk.Batch{Tensor: sdk.FromUint8(bytes.Repeat(gaussNoise(scene(3, 256, 256), 15, 1), 16), 16, 3, 256, 256)}
	for _, method := range []string{"median", "gaussian", "bilateral", "nlmeans"} {
		b.Run(method, func(b *testing.B) {
			d := load(b, sdk.CapDenoise, map[string]any{"method": method}).(sdk.Denoiser)
			b.SetBytes(int64(len(in.Data)))
			for b.Loop() {
				if _, err := d.Denoise(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTranslate(b *testing.B) {
	in := &sdk.Batch{Tensor: sdk.FromUint8(bytes.Repeat(scene(3, 256, 256), 16), 16, 3, 256, 256)}
	for _, method := range []string{"posterize", "sepia", "threshold"} {
		b.Run(method, func(b *testing.B) {
			tr := load(b, sdk.CapTranslate, map[string]any{"method": method}).(sdk.Translator)
			b.SetBytes(int64(len(in.Data)))
			for b.Loop() {
				if _, err := tr.Translate(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
