// Package edges is a third-party pipeline plugin that turns photos into edge
// maps and pencil sketches: dark lines on a white background, the input
// domain of pix2pix "edges2shoes"-style models.
//
// It is built only against github.com/genpipe/genpipe/sdk and the standard
// library, in a Go module of its own, to show (and test) that the SDK is all a
// plugin author needs. The binary is cmd/pipeline-plugin-edges; see README.md.
package edges

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/genpipe/genpipe/sdk"
)

// Name and Version identify the plugin to the host.
const (
	Name    = "edges"
	Version = "0.1.0"
)

// The methods the translate capability offers.
const (
	MethodCanny  = "canny"
	MethodSobel  = "sobel"
	MethodSketch = "sketch"
)

// TranslateParams are the parameters of the translate capability.
var TranslateParams = []sdk.Param{
	{Name: "method", Type: sdk.String, Default: MethodCanny, Enum: []string{MethodCanny, MethodSobel, MethodSketch},
		Doc: "canny: thin binary lines (Gaussian smoothing, Sobel gradient, non-maximum suppression, hysteresis between low and high); " +
			"sobel: soft lines whose darkness ramps with the gradient magnitude from low to high; " +
			"sketch: pencil-sketch look (colour-dodge blend of the gray image with its blurred negative)"},
	{Name: "sigma", Type: sdk.Float, Default: 1.5, Min: sdk.Bound(0), Max: sdk.Bound(20),
		Doc: "standard deviation in pixels of the Gaussian smoothing; canny and sobel: larger ignores finer texture (0: none); sketch: larger gives broader strokes (must be > 0)"},
	{Name: "low", Type: sdk.Float, Default: 0.08, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "weak edge threshold, in units of step contrast (a clean step between gray levels a and b measures |a-b|/255 at any sigma); canny keeps weak edges only where they connect to strong ones; sobel draws nothing below it; sketch ignores it"},
	{Name: "high", Type: sdk.Float, Default: 0.2, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "strong edge threshold in the same units, at least low; canny starts lines at it; sobel draws full black from it; sketch ignores it"},
	{Name: "invert", Type: sdk.Bool, Default: false,
		Doc: "draw white lines on black instead of black lines on white"},
	{Name: "thickness", Type: sdk.Int, Default: 0, Min: sdk.Bound(0), Max: sdk.Bound(8),
		Doc: "widen the lines by this radius in pixels (0: as detected, one pixel for canny)"},
}

// Plugin is the edges plugin. The zero value is ready to use.
type Plugin struct{}

// New returns the edges plugin, for sdk.Serve or for use in process.
func New() sdk.Plugin { return &Plugin{} }

var _ sdk.Plugin = (*Plugin)(nil)

// Describe declares the translate capability, its parameters and the one
// preset "default".
func (*Plugin) Describe() sdk.Description {
	return sdk.Description{
		Name:    Name,
		Version: Version,
		Doc:     "Edge maps and pencil sketches from photos (Canny, Sobel, colour-dodge sketch): dark lines on white, one gray channel, same size as the input. Deterministic, no weights.",
		Capabilities: []sdk.CapabilitySpec{{
			Name:   sdk.CapTranslate,
			Doc:    "turn each image (1 or 3 channels) into a one-channel line drawing of the same size",
			Params: TranslateParams,
		}},
		Presets: []sdk.Preset{{
			Name:         "default",
			Doc:          "the algorithms as parameterised; no weights",
			Default:      true,
			Capabilities: []sdk.Capability{sdk.CapTranslate},
			Input:        &sdk.ImageSpec{Channels: 0, DType: sdk.Uint8, Min: 0, Max: 255},
			Output:       &sdk.ImageSpec{Channels: 1, DType: sdk.Uint8, Min: 0, Max: 255},
			Weights:      "none (a classical algorithm)",
		}},
		BatchSize: 16,
	}
}

// Config is a validated translate configuration.
type Config struct {
	Method    string
	Sigma     float64
	Low, High float64
	Invert    bool
	Thickness int
}

// Load checks the stage parameters and returns a model implementing
// [sdk.Translator]. Params are checked again here (they are normally checked
// by the host already) so that in-process callers get defaults and errors too.
func (*Plugin) Load(_ context.Context, req sdk.LoadRequest) (sdk.Model, error) {
	if req.Capability != sdk.CapTranslate {
		return nil, fmt.Errorf("plugin edges: load: capability %q is not supported (edges can: translate)", req.Capability)
	}
	if req.Preset != "" && req.Preset != "default" {
		msg := fmt.Sprintf("plugin edges: load: unknown preset %q (edges has: default)", req.Preset)
		if h := didYouMean(req.Preset, []string{"default"}); h != "" {
			msg += "; " + h
		}
		return nil, errors.New(msg)
	}
	if req.Weights != "" {
		return nil, fmt.Errorf("plugin edges: load: weights %q given, but edges is a classical algorithm and takes no weights", req.Weights)
	}
	cfg, err := ParseConfig(req.Params)
	if err != nil {
		return nil, err
	}
	return &Model{cfg: cfg}, nil
}

// ParseConfig validates params against [TranslateParams], fills defaults and
// checks the rules that span parameters.
func ParseConfig(params map[string]any) (Config, error) {
	p, errs := sdk.CheckParams(TranslateParams, params, "")
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return Config{}, fmt.Errorf("plugin edges: load: %s", strings.Join(msgs, "; "))
	}
	cfg := Config{
		Method:    p.String("method"),
		Sigma:     p.Float("sigma"),
		Low:       p.Float("low"),
		High:      p.Float("high"),
		Invert:    p.Bool("invert"),
		Thickness: p.Int("thickness"),
	}
	if cfg.Low > cfg.High {
		return Config{}, fmt.Errorf("plugin edges: load: low (%g) must not exceed high (%g)", cfg.Low, cfg.High)
	}
	if cfg.Method == MethodSketch && cfg.Sigma <= 0 {
		return Config{}, fmt.Errorf("plugin edges: load: method sketch needs sigma > 0, got %g", cfg.Sigma)
	}
	return cfg, nil
}

// Model is a loaded edges translator.
type Model struct {
	cfg Config
}

var _ sdk.Translator = (*Model)(nil)

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Translate turns an N x C x H x W uint8 batch (C = 1 or 3) into an
// N x 1 x H x W uint8 batch of line drawings. Items are spread over the
// available cores; each item's result depends only on that item.
func (m *Model) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	if in == nil || in.Tensor == nil {
		return nil, errors.New("plugin edges: translate: no input tensor")
	}
	t := in.Tensor
	if err := checkInput(t); err != nil {
		return nil, err
	}
	n, c, h, w := t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3]
	out := sdk.NewTensor(sdk.Uint8, n, 1, h, w)
	if n == 0 || h == 0 || w == 0 {
		return out, nil
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				src := t.Data[i*c*h*w : (i+1)*c*h*w]
				dst := out.Data[i*h*w : (i+1)*h*w]
				m.cfg.render(src, c, h, w, dst)
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			err = fmt.Errorf("plugin edges: translate: stopped before item %d of %d: %w", i, n, ctx.Err())
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return out, nil
}

func checkInput(t *sdk.Tensor) error {
	if t.DType != sdk.Uint8 {
		return fmt.Errorf("plugin edges: translate: expected uint8 pixels, got %s (convert with a preprocess conform step)", t.DType)
	}
	if len(t.Shape) != 4 {
		return fmt.Errorf("plugin edges: translate: expected an N x C x H x W image batch, got shape %v", t.Shape)
	}
	if c := t.Shape[1]; c != 1 && c != 3 {
		return fmt.Errorf("plugin edges: translate: expected 1 or 3 channels, got %d (shape %v)", c, t.Shape)
	}
	if err := t.Check(); err != nil {
		return fmt.Errorf("plugin edges: translate: %w", err)
	}
	return nil
}

// render draws one item: src is C x H x W, dst is H x W.
func (cfg *Config) render(src []uint8, c, h, w int, dst []uint8) {
	gray := toGray(src, c, h, w)
	var line []float32 // line strength per pixel in [0, 1]
	switch cfg.Method {
	case MethodSketch:
		line = sketch(gray, h, w, cfg.Sigma)
	case MethodSobel:
		mag, _, _ := gradient(gray, h, w, cfg.Sigma)
		line = ramp(mag, cfg.Low, cfg.High)
	default:
		line = canny(gray, h, w, cfg.Sigma, cfg.Low, cfg.High)
	}
	if cfg.Thickness > 0 {
		line = dilate(line, h, w, cfg.Thickness)
	}
	for i, v := range line {
		if !cfg.Invert {
			v = 1 - v
		}
		dst[i] = uint8(v*255 + 0.5)
	}
}
