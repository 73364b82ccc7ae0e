// Package classic is the built-in plugin "classic": classical (non-neural)
// image filters served through the same contract as the model families.
// It denoises (median, Gaussian, bilateral, non-local means) and translates
// (posterize, sepia, Otsu threshold), for pipelines that need a cleanup or a
// stylisation step without weights, and as a baseline to compare learned
// denoisers with. It does not import gorgonia.
package classic

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/genpipe/genpipe/sdk"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "classic"
	Version = "0.1.0"
)

// Denoise methods.
const (
	Median    = "median"
	Gaussian  = "gaussian"
	Bilateral = "bilateral"
	NLMeans   = "nlmeans"
)

// Translate methods.
const (
	Posterize = "posterize"
	Sepia     = "sepia"
	Threshold = "threshold"
)

// DenoiseParams are the parameters of the denoise capability. Each method
// reads only its own parameters; the others are ignored.
var DenoiseParams = []sdk.Param{
	{Name: "method", Type: sdk.String, Default: Median, Enum: []string{Median, Gaussian, Bilateral, NLMeans},
		Doc: "median: best for salt-and-pepper (impulse) noise; gaussian: plain smoothing; bilateral: smoothing that keeps edges; nlmeans: non-local means, averages similar patches (strongest on Gaussian noise, slowest)"},
	{Name: "radius", Type: sdk.Int, Default: 1, Min: sdk.Bound(1), Max: sdk.Bound(7),
		Doc: "median: the window is (2 radius + 1) pixels square"},
	{Name: "sigma", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0.1), Max: sdk.Bound(20),
		Doc: "gaussian: standard deviation in pixels"},
	{Name: "sigma_space", Type: sdk.Float, Default: 3.0, Min: sdk.Bound(0.5), Max: sdk.Bound(20),
		Doc: "bilateral: standard deviation in pixels of the spatial weight (the window reaches 2 sigma_space)"},
	{Name: "sigma_color", Type: sdk.Float, Default: 30.0, Min: sdk.Bound(1), Max: sdk.Bound(255),
		Doc: "bilateral: standard deviation of the colour weight, in 0-255 pixel units (Euclidean over channels); differences well above it are edges and are not smoothed across"},
	{Name: "strength", Type: sdk.Float, Default: 10.0, Min: sdk.Bound(1), Max: sdk.Bound(255),
		Doc: "nlmeans: filter strength h in 0-255 pixel units; about the noise's standard deviation works well, larger smooths more"},
	{Name: "patch_radius", Type: sdk.Int, Default: 1, Min: sdk.Bound(1), Max: sdk.Bound(5),
		Doc: "nlmeans: patches compared are (2 patch_radius + 1) pixels square"},
	{Name: "search_radius", Type: sdk.Int, Default: 5, Min: sdk.Bound(1), Max: sdk.Bound(15),
		Doc: "nlmeans: similar patches are looked for within this many pixels (cost grows with its square)"},
}

// TranslateParams are the parameters of the translate capability.
var TranslateParams = []sdk.Param{
	{Name: "method", Type: sdk.String, Default: Posterize, Enum: []string{Posterize, Sepia, Threshold},
		Doc: "posterize: reduce each channel to a few evenly spaced levels; sepia: warm brown-toned photo look (needs 3 channels); threshold: black and white by luma, cut at Otsu's threshold or at cutoff"},
	{Name: "levels", Type: sdk.Int, Default: 4, Min: sdk.Bound(2), Max: sdk.Bound(256),
		Doc: "posterize: number of levels per channel (256 keeps the image)"},
	{Name: "amount", Type: sdk.Float, Default: 1.0, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "sepia: blend between the original (0) and full sepia (1)"},
	{Name: "cutoff", Type: sdk.Int, Default: -1, Min: sdk.Bound(-1), Max: sdk.Bound(255),
		Doc: "threshold: luma above cutoff turns white, the rest black; -1 picks the cutoff of each image by Otsu's method"},
}

// Plugin is the classic plugin. The zero value is ready to use.
type Plugin struct{}

// New returns the classic plugin, for sdk.Serve or for use in process.
func New() sdk.Plugin { return &Plugin{} }

var _ sdk.Plugin = (*Plugin)(nil)

// Describe declares denoise and translate with their parameters and the one
// preset "default".
func (*Plugin) Describe() sdk.Description {
	img := &sdk.ImageSpec{Channels: 0, DType: sdk.Uint8, Min: 0, Max: 255}
	return sdk.Description{
		Name:    Name,
		Version: Version,
		Doc:     "Classical image filters without neural networks: denoising (median, Gaussian, bilateral, non-local means) and simple translations (posterize, sepia, Otsu threshold). Images of any size with 1 or 3 uint8 channels; the output has the input's shape. Deterministic, no weights.",
		Capabilities: []sdk.CapabilitySpec{
			{Name: sdk.CapDenoise, Doc: "remove noise, keeping the image's shape", Params: DenoiseParams},
			{Name: sdk.CapTranslate, Doc: "restyle the image, keeping its shape", Params: TranslateParams},
		},
		Presets: []sdk.Preset{{
			Name:         "default",
			Doc:          "the filters as parameterised; no weights",
			Default:      true,
			Capabilities: []sdk.Capability{sdk.CapDenoise, sdk.CapTranslate},
			Input:        img,
			Output:       img,
			Weights:      "none (classical algorithms)",
		}},
		BatchSize: 16,
	}
}

// Load checks the stage's parameters and returns a model implementing
// [sdk.Denoiser] or [sdk.Translator], as req.Capability asks. Params are
// checked again here (the host normally has) so in-process callers get
// defaults and errors too.
func (*Plugin) Load(_ context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	var specs []sdk.Param
	switch req.Capability {
	case sdk.CapDenoise:
		specs = DenoiseParams
	case sdk.CapTranslate:
		specs = TranslateParams
	default:
		return nil, fmt.Errorf("plugin classic: load: capability %q is not supported (classic can: denoise, translate)", req.Capability)
	}
	if req.Preset != "" && req.Preset != "default" {
		msg := fmt.Sprintf("plugin classic: load: unknown preset %q (classic has: default)", req.Preset)
		if h := suggest.DidYouMean(req.Preset, []string{"default"}); h != "" {
			msg += "; " + h
		}
		return nil, errors.New(msg)
	}
	if req.Weights != "" {
		return nil, fmt.Errorf("plugin classic: load: weights %q given, but classic filters take no weights", req.Weights)
	}
	p, errs := sdk.CheckParams(specs, req.Params, "")
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("plugin classic: load: %s", strings.Join(msgs, "; "))
	}
	if req.Capability == sdk.CapDenoise {
		return &Denoiser{p: p, method: p.String("method")}, nil
	}
	return &Translator{p: p, method: p.String("method")}, nil
}

// Denoiser is a loaded denoise stage.
type Denoiser struct {
	p      sdk.Params
	method string
}

var _ sdk.Denoiser = (*Denoiser)(nil)

// Denoise filters an N x C x H x W uint8 batch (C = 1 or 3) and returns a
// batch of the same shape.
func (d *Denoiser) Denoise(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	var f func(src, dst []uint8, c, h, w int) error
	switch d.method {
	case Gaussian:
		sigma := d.p.Float("sigma")
		f = func(src, dst []uint8, c, h, w int) error { gaussian(src, dst, c, h, w, sigma); return nil }
	case Bilateral:
		b := newBilateral(d.p.Float("sigma_space"), d.p.Float("sigma_color"))
		f = func(src, dst []uint8, c, h, w int) error { b.apply(src, dst, c, h, w); return nil }
	case NLMeans:
		strength, patch, search := d.p.Float("strength"), d.p.Int("patch_radius"), d.p.Int("search_radius")
		f = func(src, dst []uint8, c, h, w int) error {
			nlmeans(src, dst, c, h, w, strength, patch, search)
			return nil
		}
	default:
		r := d.p.Int("radius")
		f = func(src, dst []uint8, c, h, w int) error { median(src, dst, c, h, w, r); return nil }
	}
	return each(ctx, "denoise", in, f)
}

// Translator is a loaded translate stage.
type Translator struct {
	p      sdk.Params
	method string
}

var _ sdk.Translator = (*Translator)(nil)

// Translate restyles an N x C x H x W uint8 batch (C = 1 or 3; sepia needs
// 3) and returns a batch of the same shape.
func (t *Translator) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	var f func(src, dst []uint8, c, h, w int) error
	switch t.method {
	case Sepia:
		amount := t.p.Float("amount")
		f = func(src, dst []uint8, c, h, w int) error {
			if c != 3 {
				return fmt.Errorf("sepia needs 3 channels, got %d (use threshold or posterize for gray images)", c)
			}
			sepia(src, dst, h*w, amount)
			return nil
		}
	case Threshold:
		cutoff := t.p.Int("cutoff")
		f = func(src, dst []uint8, c, h, w int) error { threshold(src, dst, c, h*w, cutoff); return nil }
	default:
		levels := t.p.Int("levels")
		f = func(src, dst []uint8, _, _, _ int) error { posterize(src, dst, levels); return nil }
	}
	return each(ctx, "translate", in, f)
}

// each checks the batch, then runs f on every item, spreading items over the
// available cores. Each item's result depends on that item only, so results
// do not depend on batch size or order.
func each(ctx context.Context, call string, in *sdk.Batch, f func(src, dst []uint8, c, h, w int) error) (*sdk.Tensor, error) {
	prefix := "plugin classic: " + call + ": "
	if in == nil || in.Tensor == nil {
		return nil, errors.New(prefix + "no input tensor")
	}
	t := in.Tensor
	if t.DType != sdk.Uint8 {
		return nil, fmt.Errorf("%sexpected uint8 pixels, got %s (convert with a preprocess conform step)", prefix, t.DType)
	}
	if len(t.Shape) != 4 {
		return nil, fmt.Errorf("%sexpected an N x C x H x W image batch, got shape %v", prefix, t.Shape)
	}
	if c := t.Shape[1]; c != 1 && c != 3 {
		return nil, fmt.Errorf("%sexpected 1 or 3 channels, got %d (shape %v)", prefix, c, t.Shape)
	}
	if err := t.Check(); err != nil {
		return nil, fmt.Errorf("%s%w", prefix, err)
	}
	n, c, h, w := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := sdk.NewTensor(sdk.Uint8, n, c, h, w)
	if n == 0 || h == 0 || w == 0 {
		return out, nil
	}
	size := c * h * w
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(t.Data[i*size:(i+1)*size], out.Data[i*size:(i+1)*size], c, h, w)
			}
		})
	}
	var stopped error
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			stopped = fmt.Errorf("%sstopped before item %d of %d: %w", prefix, i, n, ctx.Err())
			break feed
		}
	}
	close(next)
	wg.Wait()
	if stopped != nil {
		return nil, stopped
	}
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%sitem %d: %w", prefix, i, err)
		}
	}
	return out, nil
}
