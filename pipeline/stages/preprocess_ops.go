package stages

import (
	"fmt"
	"image"
	"math/rand/v2"

	"github.com/disintegration/imaging"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// opDef declares one preprocess op: its parameters (Param.Name is the op's
// key in the file), declared once for validation, docs and the JSON Schema,
// and build, which turns the validated arguments into the op. build reports
// problems with a.Bad and returns the op's pixel function and, when the op
// changes the image's shape, how (nil: same shape).
//
// Adding an op is one file: declare an opDef and register it from an init
// function with registerOp (the ops below are the built-in table; ops
// registered elsewhere follow them in docs).
type opDef struct {
	Param sdk.Param
	Build func(a *OpArgs) (apply applyFunc, shape func(shape) shape)
}

// applyFunc never modifies img; stream tells seeded ops apart (op index,
// frame number) so they draw independent noise from one item seed.
type applyFunc func(img image.Image, seed, stream uint64) image.Image

// OpArgs are an op's validated arguments while it is built.
type OpArgs struct {
	Values
	// Consumer is the image contract of the model stage the preprocess
	// stage feeds (nil when none declares one).
	Consumer *sdk.ImageSpec
	name     string
	path     string
	errs     []*sdk.ParamError
}

// Bad reports a problem with field ("" for the op itself).
func (a *OpArgs) Bad(field, format string, args ...any) {
	p := a.path
	if field != "" {
		p += "." + field
	}
	a.errs = append(a.errs, &sdk.ParamError{Path: p, Msg: fmt.Sprintf(format, args...)})
}

// Filter is the op's resampling filter (lanczos by default).
func (a *OpArgs) Filter() imaging.ResampleFilter {
	f, ok := filterByName[orDefault(a.String("filter"), "lanczos")]
	if !ok {
		a.Bad("filter", "unknown filter %q", a.String("filter"))
	}
	return f
}

// Anchor is the op's anchor (center by default).
func (a *OpArgs) Anchor() imaging.Anchor {
	an, ok := anchorByName[orDefault(a.String("anchor"), "center")]
	if !ok {
		a.Bad("anchor", "unknown anchor %q", a.String("anchor"))
	}
	return an
}

// size is the op's width and height, which must both be above 0.
func (a *OpArgs) size() (int, int) {
	w, h := a.Int("width"), a.Int("height")
	if w <= 0 || h <= 0 {
		a.Bad("", "%s needs width and height above 0, got %dx%d", a.name, w, h)
	}
	return w, h
}

var ops = []opDef{
	{sdk.Param{Name: "resize", Type: sdk.Object, Doc: "resize to width x height (0 for one of them keeps the aspect ratio)", Fields: []sdk.Param{dim("width", "target width"), dim("height", "target height"), filter()}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			w, h, filter := a.Int("width"), a.Int("height"), a.Filter()
			if w <= 0 && h <= 0 {
				a.Bad("", "resize needs width or height above 0 (0 for one of them keeps the aspect ratio)")
			}
			return keepGray(func(img image.Image) image.Image { return imaging.Resize(img, w, h, filter) }),
				func(s shape) shape { s.w, s.h = resizedSize(s.w, s.h, w, h); return s }
		}},
	{sdk.Param{Name: "fit", Type: sdk.Object, Doc: "scale down to fit within width x height, keeping the aspect ratio", Fields: []sdk.Param{dim("width", "box width"), dim("height", "box height"), filter()}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			filter := a.Filter()
			w, h := a.size()
			return keepGray(func(img image.Image) image.Image { return imaging.Fit(img, w, h, filter) }),
				func(s shape) shape { s.w, s.h = fitSize(s.w, s.h, w, h); return s }
		}},
	{sdk.Param{Name: "fill", Type: sdk.Object, Doc: "scale and crop to exactly width x height", Fields: []sdk.Param{dim("width", "target width"), dim("height", "target height"), filter(),
		{Name: "anchor", Type: sdk.String, Doc: "which part to keep when cropping", Default: "center", Enum: anchors}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			filter, anchor := a.Filter(), a.Anchor()
			w, h := a.size()
			return keepGray(func(img image.Image) image.Image { return imaging.Fill(img, w, h, anchor, filter) }),
				func(s shape) shape { s.w, s.h = w, h; return s }
		}},
	{sdk.Param{Name: "crop", Type: sdk.Object, Doc: "cut a width x height region at the anchor", Fields: []sdk.Param{dim("width", "region width"), dim("height", "region height"),
		{Name: "anchor", Type: sdk.String, Doc: "where the region sits", Default: "center", Enum: anchors}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			a.Filter()
			anchor := a.Anchor()
			w, h := a.size()
			return keepGray(func(img image.Image) image.Image { return imaging.CropAnchor(img, w, h, anchor) }),
				func(s shape) shape {
					// A region larger than the image is cut to the image.
					if s.w > 0 && s.h > 0 {
						s.w, s.h = min(s.w, w), min(s.h, h)
					} else {
						s.w, s.h = 0, 0
					}
					return s
				}
		}},
	{sdk.Param{Name: "grayscale", Type: sdk.Object, Doc: "convert to one gray channel"},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			return func(img image.Image, _, _ uint64) image.Image { return item.ToGray(img) },
				func(s shape) shape { s.c = 1; return s }
		}},
	{sdk.Param{Name: "invert", Type: sdk.Object, Doc: "invert the colours"},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			return keepGray(func(img image.Image) image.Image { return imaging.Invert(img) }), nil
		}},
	{sdk.Param{Name: "flip", Type: sdk.Object, Doc: "mirror the image", Fields: []sdk.Param{
		{Name: "direction", Type: sdk.String, Doc: "mirror axis", Default: "horizontal", Enum: []string{"horizontal", "vertical"}}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			if a.String("direction") == "vertical" {
				return keepGray(func(img image.Image) image.Image { return imaging.FlipV(img) }), nil
			}
			return keepGray(func(img image.Image) image.Image { return imaging.FlipH(img) }), nil
		}},
	{sdk.Param{Name: "rotate", Type: sdk.Object, Doc: "rotate counter-clockwise by angle degrees; the canvas grows to fit", Fields: []sdk.Param{
		{Name: "angle", Type: sdk.Float, Doc: "degrees, counter-clockwise", Required: true, Min: sdk.Bound(-360), Max: sdk.Bound(360)},
		{Name: "background", Type: sdk.String, Doc: "fill colour for uncovered corners, #rrggbb", Default: "#000000"}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			angle := a.Float("angle")
			bg, err := parseColor(orDefault(a.String("background"), "#000000"))
			if err != nil {
				a.Bad("background", "%v", err)
			}
			return keepGray(func(img image.Image) image.Image { return imaging.Rotate(img, angle, bg) }),
				func(s shape) shape { s.w, s.h = rotatedSize(s.w, s.h, angle); return s }
		}},
	{sdk.Param{Name: "blur", Type: sdk.Object, Doc: "Gaussian blur", Fields: []sdk.Param{
		{Name: "sigma", Type: sdk.Float, Doc: "standard deviation in pixels", Required: true, Min: sdk.Bound(0.01), Max: sdk.Bound(100)}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			sigma := a.Float("sigma")
			return keepGray(func(img image.Image) image.Image { return imaging.Blur(img, sigma) }), nil
		}},
	{sdk.Param{Name: "sharpen", Type: sdk.Object, Doc: "unsharp mask", Fields: []sdk.Param{
		{Name: "sigma", Type: sdk.Float, Doc: "standard deviation in pixels", Required: true, Min: sdk.Bound(0.01), Max: sdk.Bound(100)}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			sigma := a.Float("sigma")
			return keepGray(func(img image.Image) image.Image { return imaging.Sharpen(img, sigma) }), nil
		}},
	{sdk.Param{Name: "brightness", Type: sdk.Object, Doc: "change brightness", Fields: []sdk.Param{
		{Name: "percent", Type: sdk.Float, Doc: "-100 (black) to 100 (white)", Required: true, Min: sdk.Bound(-100), Max: sdk.Bound(100)}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			pct := a.Float("percent")
			return keepGray(func(img image.Image) image.Image { return imaging.AdjustBrightness(img, pct) }), nil
		}},
	{sdk.Param{Name: "contrast", Type: sdk.Object, Doc: "change contrast", Fields: []sdk.Param{
		{Name: "percent", Type: sdk.Float, Doc: "-100 (flat gray) to 100", Required: true, Min: sdk.Bound(-100), Max: sdk.Bound(100)}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			pct := a.Float("percent")
			return keepGray(func(img image.Image) image.Image { return imaging.AdjustContrast(img, pct) }), nil
		}},
	{sdk.Param{Name: "gamma", Type: sdk.Object, Doc: "gamma correction (below 1 darkens, above 1 brightens)", Fields: []sdk.Param{
		{Name: "gamma", Type: sdk.Float, Doc: "gamma value", Required: true, Min: sdk.Bound(0.01), Max: sdk.Bound(10)}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			g := a.Float("gamma")
			if g <= 0 {
				a.Bad("gamma", "gamma must be above 0, got %v", g)
			}
			return keepGray(func(img image.Image) image.Image { return imaging.AdjustGamma(img, g) }), nil
		}},
	{sdk.Param{Name: "noise", Type: sdk.Object, Doc: "add seeded noise (e.g. to make inputs for a denoiser)", Fields: []sdk.Param{
		{Name: "type", Type: sdk.String, Doc: "gaussian: N(0, amount) on [0,1] pixels; salt_pepper: fraction amount of pixels set to black or white", Default: "gaussian", Enum: []string{"gaussian", "salt_pepper"}},
		{Name: "amount", Type: sdk.Float, Doc: "standard deviation (gaussian) or fraction of pixels (salt_pepper)", Default: 0.1, Min: sdk.Bound(0), Max: sdk.Bound(1)}}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			typ := orDefault(a.String("type"), "gaussian")
			amount := 0.1
			if _, ok := a.Values["amount"]; ok {
				amount = a.Float("amount")
			}
			if typ != "gaussian" && typ != "salt_pepper" {
				a.Bad("type", "unknown noise type %q, expected gaussian or salt_pepper", typ)
			}
			return func(img image.Image, seed, stream uint64) image.Image {
				return addNoise(img, typ, amount, rand.NewPCG(seed, stream))
			}, nil
		}},
	{sdk.Param{Name: "conform", Type: sdk.Object, Doc: "convert to the size and channels the consuming model declares", Fields: []sdk.Param{
		{Name: "mode", Type: sdk.String, Doc: "how to reach the declared size: fill scales and crops, resize stretches, fit scales to fit and pads with black", Default: "fill", Enum: []string{"resize", "fit", "fill"}}, filter()}},
		func(a *OpArgs) (applyFunc, func(shape) shape) {
			filter := a.Filter()
			if a.Consumer == nil {
				a.Bad("", "conform needs a model stage after it that declares its input size and channels; none does")
				return nil, nil
			}
			c := *a.Consumer
			mode := orDefault(a.String("mode"), "fill")
			return func(img image.Image, _, _ uint64) image.Image { return conform(img, c, mode, filter) },
				func(s shape) shape {
					switch {
					case c.Width > 0 && c.Height > 0:
						s.w, s.h = c.Width, c.Height
					case c.Width > 0 || c.Height > 0:
						s.w, s.h = resizedSize(s.w, s.h, c.Width, c.Height)
					}
					if c.Channels > 0 {
						s.c = c.Channels
					}
					return s
				}
		}},
}

// registerOp adds an op after the built-in ones; call it from init.
func registerOp(d opDef) {
	if lookupOp(d.Param.Name) != nil {
		panic("stages: preprocess op " + d.Param.Name + " registered twice")
	}
	ops = append(ops, d)
}

func lookupOp(name string) *opDef {
	for i := range ops {
		if ops[i].Param.Name == name {
			return &ops[i]
		}
	}
	return nil
}

// PreprocessParam is the spec of a preprocess stage: a list of operations
// applied in order, each a mapping with one key (one field per op).
func PreprocessParam() sdk.Param {
	fields := make([]sdk.Param, len(ops))
	for i, d := range ops {
		fields[i] = d.Param
	}
	return sdk.Param{Name: "preprocess", Type: sdk.List, Doc: "image operations applied in order", Elem: &sdk.Param{Name: "op", Type: sdk.Object, OneOf: true, Fields: fields}}
}
