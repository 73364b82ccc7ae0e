package stages

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"

	"github.com/disintegration/imaging"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

type Preprocess struct {
	ops []*op
	raw []any
}

// op is one parsed operation.
type op struct {
	index int
	kind  string
	// apply never modifies img; stream tells seeded ops apart (op index,
	// frame number) so they draw independent noise from one item seed.
	apply func(img image.Image, seed, stream uint64) image.Image
	// shape maps the statically known input shape to the output shape.
	shape func(s shape) shape
}

// shape is a statically known image shape; 0 means unknown.
type shape struct{ w, h, c int }

var filterByName = map[string]imaging.ResampleFilter{
	"lanczos": imaging.Lanczos, "catmullrom": imaging.CatmullRom, "linear": imaging.Linear,
	"box": imaging.Box, "nearest": imaging.NearestNeighbor,
}

var anchorByName = map[string]imaging.Anchor{
	"center": imaging.Center, "top-left": imaging.TopLeft, "top": imaging.Top, "top-right": imaging.TopRight,
	"left": imaging.Left, "right": imaging.Right, "bottom-left": imaging.BottomLeft, "bottom": imaging.Bottom,
	"bottom-right": imaging.BottomRight,
}

// Preprocess is a preprocess stage parsed once: its ops, typed, in order.
// The planner makes it (see [ParsePreprocess]) and stores it in the plan;
// the executor applies it. It holds no mutable state, so one value serves a
// whole worker pool.
//
// ParsePreprocess parses the list sdk.CheckParams returned for
// [PreprocessParam] (each element a one-key mapping). consumer is the image
// contract of the model stage the output feeds; conform needs it (nil is
// then an error naming the op). Errors have paths relative to the list
// ("[2].resize"), which the caller prefixes with the stage key.
func ParsePreprocess(ops []any, consumer *sdk.ImageSpec) (*Preprocess, []*sdk.ParamError) {
	var out []*op
	var errs []*sdk.ParamError
	for i, raw := range ops {
		o, es := parseOp(i, raw, consumer)
		errs = append(errs, es...)
		if o != nil {
			out = append(out, o)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &Preprocess{ops: out, raw: ops}, nil
}

// Ops returns the ops as validated (defaults filled in), for provenance.
func (p *Preprocess) Ops() []any { return p.raw }

// Output is the statically known output of the ops for input in (nil:
// unknown): width, height and channels where they can be known before
// seeing an image (0 where not), 8-bit pixels. For example resize with both
// sizes or conform fix the size, grayscale fixes 1 channel, crop and fit
// need a known input size.
func (p *Preprocess) Output(in *sdk.ImageSpec) *sdk.ImageSpec {
	out := &sdk.ImageSpec{DType: sdk.Uint8, Min: 0, Max: 255}
	var s shape
	if in != nil {
		s = shape{in.Width, in.Height, in.Channels}
	}
	for _, o := range p.ops {
		s = o.shape(s)
	}
	out.Width, out.Height, out.Channels = s.w, s.h, s.c
	return out
}

// Apply runs the ops on the item's image. Seeded ops (noise) draw from
// it.Seed, so an item gets the same result in every run and whatever the
// worker or batch. The result may share pixels with it.Image when no op
// changes them; neither is modified.
func (p *Preprocess) Apply(it item.Item) (image.Image, error) {
	if it.Image == nil {
		return nil, fmt.Errorf("preprocess: %s has no image (a latent item?)", describe(&it))
	}
	return p.apply(it, it.Image, 0)
}

// ApplyItem returns it with its image, and each frame of a sequence item,
// preprocessed (frames get independent noise).
func (p *Preprocess) ApplyItem(it item.Item) (item.Item, error) {
	if len(it.Frames) > 0 {
		frames := make([]image.Image, len(it.Frames))
		for f, fr := range it.Frames {
			img, err := p.apply(it, fr, uint64(f))
			if err != nil {
				return it, err
			}
			frames[f] = img
		}
		it.Frames = frames
		it.Image = frames[len(frames)-1]
		return it, nil
	}
	img, err := p.Apply(it)
	if err != nil {
		return it, err
	}
	it.Image = img
	return it, nil
}

func (p *Preprocess) apply(it item.Item, img image.Image, frame uint64) (image.Image, error) {
	if img.Bounds().Empty() {
		return nil, fmt.Errorf("preprocess: %s: the image is empty (%dx%d)", describe(&it), img.Bounds().Dx(), img.Bounds().Dy())
	}
	for _, o := range p.ops {
		img = o.apply(img, it.Seed, uint64(o.index)<<32|frame)
		if img.Bounds().Empty() {
			return nil, fmt.Errorf("preprocess: %s: op [%d] %s produced an empty image", describe(&it), o.index, o.kind)
		}
	}
	return img, nil
}

func describe(it *item.Item) string {
	s := fmt.Sprintf("item %d", it.Index)
	if it.Name != "" {
		s += fmt.Sprintf(" %q", it.Name)
	}
	if it.Source != "" {
		s += " (" + it.Source + ")"
	}
	return s
}

func isGray(img image.Image) bool {
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		return true
	}
	return false
}

// keepGray wraps an imaging operation (which always returns NRGBA) so that a
// gray image stays one channel.
func keepGray(f func(image.Image) image.Image) func(image.Image, uint64, uint64) image.Image {
	return func(img image.Image, _, _ uint64) image.Image {
		out := f(img)
		if isGray(img) {
			return item.ToGray(out)
		}
		return out
	}
}

func same(s shape) shape { return s }

func parseOp(i int, raw any, consumer *sdk.ImageSpec) (*op, []*sdk.ParamError) {
	path := fmt.Sprintf("[%d]", i)
	if s, ok := raw.(string); ok { // "- grayscale"
		raw = map[string]any{s: nil}
	}
	m, ok := raw.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, []*sdk.ParamError{{Path: path, Msg: "expected a mapping with exactly one operation"}}
	}
	var kind string
	var args Values
	for k, v := range m {
		kind = k
		args, _ = v.(map[string]any)
	}
	a := &OpArgs{Values: args, Consumer: consumer, name: kind, path: path + "." + kind}
	def := lookupOp(kind)
	if def == nil {
		a.Bad("", "unknown operation %q", kind)
		return nil, a.errs
	}
	apply, shape := def.Build(a)
	if len(a.errs) > 0 {
		return nil, a.errs
	}
	if shape == nil {
		shape = same
	}
	return &op{index: i, kind: kind, apply: apply, shape: shape}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// resizedSize is imaging.Resize's output size; a 0 target keeps the aspect
// ratio, which needs the input size.
func resizedSize(sw, sh, w, h int) (int, int) {
	switch {
	case w > 0 && h > 0:
		return w, h
	case sw <= 0 || sh <= 0:
		return w, h // the other side is unknown (0)
	case w == 0:
		return int(math.Max(1, math.Floor(float64(h)*float64(sw)/float64(sh)+0.5))), h
	default:
		return w, int(math.Max(1, math.Floor(float64(w)*float64(sh)/float64(sw)+0.5)))
	}
}

// fitSize is imaging.Fit's output size (it only ever shrinks).
func fitSize(sw, sh, w, h int) (int, int) {
	if sw <= 0 || sh <= 0 {
		return 0, 0
	}
	if sw <= w && sh <= h {
		return sw, sh
	}
	src, box := float64(sw)/float64(sh), float64(w)/float64(h)
	if src > box {
		return resizedSize(sw, sh, w, int(float64(w)/src))
	}
	return resizedSize(sw, sh, int(float64(h)*src), h)
}

// rotatedSize is imaging.Rotate's output size.
func rotatedSize(w, h int, angle float64) (int, int) {
	if w <= 0 || h <= 0 {
		return 0, 0
	}
	angle -= math.Floor(angle/360) * 360
	switch angle {
	case 0, 180:
		return w, h
	case 90, 270:
		return h, w
	}
	sin, cos := math.Sincos(math.Pi * angle / 180)
	rot := func(x, y float64) (float64, float64) { return x*cos - y*sin, x*sin + y*cos }
	x1, y1 := rot(float64(w-1), 0)
	x2, y2 := rot(float64(w-1), float64(h-1))
	x3, y3 := rot(0, float64(h-1))
	minx, maxx := math.Min(x1, math.Min(x2, math.Min(x3, 0))), math.Max(x1, math.Max(x2, math.Max(x3, 0)))
	miny, maxy := math.Min(y1, math.Min(y2, math.Min(y3, 0))), math.Max(y1, math.Max(y2, math.Max(y3, 0)))
	nw, nh := maxx-minx+1, maxy-miny+1
	if nw-math.Floor(nw) > 0.1 {
		nw++
	}
	if nh-math.Floor(nh) > 0.1 {
		nh++
	}
	return int(nw), int(nh)
}

// conform brings img to the consumer's size and channels. mode fill scales
// and crops (centre), resize stretches, fit scales (up or down) to fit and
// pads with black, so all three give exactly the declared size.
// fitBox is where fit puts a w x h image in a cw x ch canvas: scaled to
// fit whole, centred.
func fitBox(w, h, cw, ch int) (x0, y0, nw, nh int) {
	s := math.Min(float64(cw)/float64(w), float64(ch)/float64(h))
	nw = min(cw, max(1, int(math.Round(float64(w)*s))))
	nh = min(ch, max(1, int(math.Round(float64(h)*s))))
	return (cw - nw) / 2, (ch - nh) / 2, nw, nh
}

func conform(img image.Image, c sdk.ImageSpec, mode string, filter imaging.ResampleFilter) image.Image {
	gray := isGray(img)
	sz := img.Bounds().Size()
	var out image.Image = img
	switch {
	case c.Width > 0 && c.Height > 0 && (sz.X != c.Width || sz.Y != c.Height):
		switch mode {
		case "resize":
			out = imaging.Resize(img, c.Width, c.Height, filter)
		case "fit":
			x0, y0, nw, nh := fitBox(sz.X, sz.Y, c.Width, c.Height)
			canvas := imaging.New(c.Width, c.Height, color.NRGBA{A: 255})
			out = imaging.Paste(canvas, imaging.Resize(img, nw, nh, filter), image.Pt(x0, y0))
		default:
			out = imaging.Fill(img, c.Width, c.Height, imaging.Center, filter)
		}
	case c.Width > 0 && c.Height == 0 && sz.X != c.Width, c.Height > 0 && c.Width == 0 && sz.Y != c.Height:
		out = imaging.Resize(img, c.Width, c.Height, filter)
	}
	if gray && out != img {
		out = item.ToGray(out)
	}
	if c.Channels > 0 {
		conv, err := item.ConvertChannels(out, c.Channels)
		if err == nil { // declared channels beyond 4 are left to ToTensor's error
			out = conv
		}
	}
	return out
}

// addNoise returns a noisy copy of img. Gaussian adds N(0, amount) on the
// [0, 1] scale to each colour channel; salt_pepper sets a fraction amount of
// the pixels to black or white (half each). Alpha is kept. The noise is drawn
// with a PCG generator and Box-Muller, whose outputs are fixed by their
// algorithms, so results are the same across Go releases.
func addNoise(img image.Image, typ string, amount float64, rng *rand.PCG) image.Image {
	uniform := func() float64 { return float64(rng.Uint64()>>11) / (1 << 53) } // [0, 1)
	var pix []uint8
	var stride, step, chans int
	var out image.Image
	b := img.Bounds()
	if isGray(img) {
		g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
		src := item.ToGray(img)
		for y := 0; y < b.Dy(); y++ {
			copy(g.Pix[y*g.Stride:(y+1)*g.Stride], src.Pix[y*src.Stride:])
		}
		pix, stride, step, chans, out = g.Pix, g.Stride, 1, 1, g
	} else {
		m := imaging.Clone(img)
		pix, stride, step, chans, out = m.Pix, m.Stride, 4, 3, m
	}
	w, h := b.Dx(), b.Dy()
	switch typ {
	case "salt_pepper":
		for y := 0; y < h; y++ {
			row := pix[y*stride:]
			for x := 0; x < w; x++ {
				if uniform() >= amount {
					continue
				}
				v := uint8(0)
				if rng.Uint64()&1 == 1 {
					v = 255
				}
				for c := 0; c < chans; c++ {
					row[x*step+c] = v
				}
			}
		}
	default:
		sd := amount * 255
		var spare float64
		haveSpare := false
		normal := func() float64 {
			if haveSpare {
				haveSpare = false
				return spare
			}
			u1 := (float64(rng.Uint64()>>11) + 1) / (1 << 53) // (0, 1]
			u2 := uniform()
			r := math.Sqrt(-2 * math.Log(u1))
			s, c := math.Sincos(2 * math.Pi * u2)
			spare, haveSpare = r*s, true
			return r * c
		}
		for y := 0; y < h; y++ {
			row := pix[y*stride:]
			for x := 0; x < w; x++ {
				for c := 0; c < chans; c++ {
					i := x*step + c
					v := math.Round(float64(row[i]) + normal()*sd)
					row[i] = uint8(math.Max(0, math.Min(255, v)))
				}
			}
		}
	}
	return out
}
