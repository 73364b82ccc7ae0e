// Package typeset renders typeset digits framed like MNIST: white on black,
// the glyph fitted in a 20x20 box and centred by its centre of mass in a
// 28x28 field (LeCun et al.'s procedure for MNIST), with seeded jitter in
// size, stroke weight, slant and rotation. It is the translate family's
// domain A and the project's out-of-distribution digit set.
//
// A digit is a pure function of (seed, index): item i of a set does not
// depend on how many items were rendered before it, or in which order.
package typeset

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"

	"golang.org/x/image/draw"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gobolditalic"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomediumitalic"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/gomonobolditalic"
	"golang.org/x/image/font/gofont/gomonoitalic"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/gofont/gosmallcaps"
	"golang.org/x/image/font/gofont/gosmallcapsitalic"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// Size is the side of a rendered digit, and Box the side of the box its
// glyph is fitted in (MNIST's 28 and 20).
const (
	Size = 28
	Box  = 20
)

// oversample is the resolution factor the glyph is rasterised and
// thickened at before it is reduced to the 20x20 box: stroke-weight changes
// of a fraction of a pixel need sub-pixel resolution.
const oversample = 4

// builtin maps the names of the faces of golang.org/x/image/font/gofont to
// their TrueType data.
var builtin = map[string][]byte{
	"goregular":         goregular.TTF,
	"gobold":            gobold.TTF,
	"goitalic":          goitalic.TTF,
	"gobolditalic":      gobolditalic.TTF,
	"gomedium":          gomedium.TTF,
	"gomediumitalic":    gomediumitalic.TTF,
	"gomono":            gomono.TTF,
	"gomonobold":        gomonobold.TTF,
	"gomonoitalic":      gomonoitalic.TTF,
	"gomonobolditalic":  gomonobolditalic.TTF,
	"gosmallcaps":       gosmallcaps.TTF,
	"gosmallcapsitalic": gosmallcapsitalic.TTF,
}

// Faces lists the names of the built-in faces (every face of gofont), sorted.
func Faces() []string {
	out := make([]string, 0, len(builtin))
	for n := range builtin {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Range is a closed interval [Lo, Hi] a jitter value is drawn from
// uniformly. Lo == Hi fixes the value.
type Range struct{ Lo, Hi float64 }

func (r Range) draw(rng *rand.Rand) float64 {
	if r.Hi <= r.Lo {
		return r.Lo
	}
	return r.Lo + (r.Hi-r.Lo)*rng.Float64()
}

func (r Range) check(name string, lo, hi float64) error {
	if math.IsNaN(r.Lo) || math.IsNaN(r.Hi) || r.Lo > r.Hi {
		return fmt.Errorf("%s: [%g, %g] is not an interval (want low <= high)", name, r.Lo, r.Hi)
	}
	if r.Lo < lo || r.Hi > hi {
		return fmt.Errorf("%s: [%g, %g] is outside [%g, %g]", name, r.Lo, r.Hi, lo, hi)
	}
	return nil
}

// Jitter is how much digits vary. Each item draws every value uniformly
// from its range.
type Jitter struct {
	// Size is the glyph's longer side as a fraction of the 20-pixel box
	// (MNIST fills the box: 1).
	Size Range
	// Weight thickens (positive) or thins (negative) strokes by this many
	// pixels of the 28x28 image on each side.
	Weight Range
	// Slant shears the glyph: x moves right by Slant times the height
	// above the baseline (0.2 is a typical italic).
	Slant Range
	// Rotate turns the glyph by this many degrees, counter-clockwise.
	Rotate Range
}

// DefaultJitter is the jitter of the translate family's domain A: sizes,
// weights, slants and rotations around those of handwritten MNIST digits.
var DefaultJitter = Jitter{
	Size:   Range{0.85, 1},
	Weight: Range{-0.2, 0.6},
	Slant:  Range{-0.1, 0.25},
	Rotate: Range{-8, 8},
}

// Limits bounds each jitter field: beyond them a digit stops looking like
// a digit (thinned away, sheared flat) or leaves its 28x28 field.
var Limits = map[string]Range{
	"size":   {0.3, 1},
	"weight": {-1, 2},
	"slant":  {-0.6, 0.6},
	"rotate": {-45, 45},
}

// Fields returns the jitter's ranges by field name.
func (j *Jitter) Fields() map[string]*Range {
	return map[string]*Range{"size": &j.Size, "weight": &j.Weight, "slant": &j.Slant, "rotate": &j.Rotate}
}

// CheckField reports whether r is an interval within the limits of the
// named field.
func CheckField(name string, r Range) error {
	return r.check(name, Limits[name].Lo, Limits[name].Hi)
}

// Check reports every out-of-range or malformed jitter value.
func (j Jitter) Check() error {
	var errs []error
	for _, k := range []string{"size", "weight", "slant", "rotate"} {
		errs = append(errs, CheckField(k, *j.Fields()[k]))
	}
	return errors.Join(errs...)
}

// Face is a parsed font.
type Face struct {
	// Name is the built-in name, or the file the face was read from.
	Name string
	font *sfnt.Font
	mu   sync.Mutex // sfnt.Buffer is not safe for concurrent use
	buf  sfnt.Buffer
}

// LoadFace returns a built-in face by name (see [Faces]), or parses the
// TrueType or OpenType file at a path (a name with a "." or "/" is a path).
func LoadFace(name string) (*Face, error) {
	data, ok := builtin[name]
	if !ok {
		if !strings.ContainsAny(name, "./") {
			return nil, fmt.Errorf("typeset: unknown face %q (built-in faces: %s; or give a .ttf/.otf path)", name, strings.Join(Faces(), ", "))
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("typeset: %w", err)
		}
		data = b
	}
	f, err := sfnt.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("typeset: face %s: %w", name, err)
	}
	face := &Face{Name: name, font: f}
	for d := 0; d < 10; d++ {
		if _, err := face.segments(d); err != nil {
			return nil, err
		}
	}
	return face, nil
}

// segments returns the outline of digit d in font units, y down.
func (f *Face) segments(d int) (sfnt.Segments, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := rune('0' + d)
	gi, err := f.font.GlyphIndex(&f.buf, r)
	if err == nil && gi == 0 {
		err = errors.New("no glyph")
	}
	if err != nil {
		return nil, fmt.Errorf("typeset: face %s: digit %q: %w", f.Name, r, err)
	}
	upem := fixed.Int26_6(f.font.UnitsPerEm()) << 6
	segs, err := f.font.LoadGlyph(&f.buf, gi, upem, nil)
	if err != nil {
		return nil, fmt.Errorf("typeset: face %s: digit %q: %w", f.Name, r, err)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("typeset: face %s: digit %q has an empty outline", f.Name, r)
	}
	return append(sfnt.Segments(nil), segs...), nil
}

// Params are the drawn values of one digit.
type Params struct {
	Digit                       int
	Size, Weight, Slant, Rotate float64
}

// Render draws digit p.Digit of face f with the given parameters, framed
// like MNIST. The result is Size x Size, white (255) on black.
func Render(f *Face, p Params) (*image.Gray, error) {
	segs, err := f.segments(p.Digit)
	if err != nil {
		return nil, err
	}
	// The affine map: shear (slant), then rotate, both about the origin;
	// the bounding box of the mapped outline then sets scale and offset.
	th := p.Rotate * math.Pi / 180
	c, s := math.Cos(th), math.Sin(th)
	tf := func(pt fixed.Point26_6) (float64, float64) {
		x, y := float64(pt.X)/64, float64(pt.Y)/64
		x -= p.Slant * y // y is down: above the baseline y < 0 moves right
		// Counter-clockwise on screen, with y down.
		return c*x + s*y, -s*x + c*y
	}
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, sg := range segs {
		n := map[sfnt.SegmentOp]int{sfnt.SegmentOpMoveTo: 1, sfnt.SegmentOpLineTo: 1, sfnt.SegmentOpQuadTo: 2, sfnt.SegmentOpCubeTo: 3}[sg.Op]
		for i := 0; i < n; i++ {
			x, y := tf(sg.Args[i])
			minX, maxX = math.Min(minX, x), math.Max(maxX, x)
			minY, maxY = math.Min(minY, y), math.Max(maxY, y)
		}
	}
	// The control points bound the outline; the exact box is taken from
	// the raster below. Scale so the longer side is Size·Box pixels at the
	// oversampled resolution, before the stroke-weight change.
	side := p.Size * Box * oversample
	scale := side / math.Max(maxX-minX, maxY-minY)
	pad := int(math.Ceil(math.Max(p.Weight, 0)*oversample)) + 2
	w := int(math.Ceil((maxX-minX)*scale)) + 2*pad
	h := int(math.Ceil((maxY-minY)*scale)) + 2*pad
	z := vector.NewRasterizer(w, h)
	pt := func(a fixed.Point26_6) (float32, float32) {
		x, y := tf(a)
		return float32((x-minX)*scale + float64(pad)), float32((y-minY)*scale + float64(pad))
	}
	for _, sg := range segs {
		switch sg.Op {
		case sfnt.SegmentOpMoveTo:
			z.MoveTo(pt(sg.Args[0]))
		case sfnt.SegmentOpLineTo:
			z.LineTo(pt(sg.Args[0]))
		case sfnt.SegmentOpQuadTo:
			bx, by := pt(sg.Args[0])
			cx, cy := pt(sg.Args[1])
			z.QuadTo(bx, by, cx, cy)
		case sfnt.SegmentOpCubeTo:
			bx, by := pt(sg.Args[0])
			cx, cy := pt(sg.Args[1])
			dx, dy := pt(sg.Args[2])
			z.CubeTo(bx, by, cx, cy, dx, dy)
		}
	}
	mask := image.NewAlpha(image.Rect(0, 0, w, h))
	z.Draw(mask, mask.Bounds(), image.Opaque, image.Point{})
	cov := make([]float32, w*h)
	for i, a := range mask.Pix {
		cov[i] = float32(a) / 255
	}
	cov = morph(cov, w, h, p.Weight*oversample)
	return frame(cov, w, h)
}

// morph thickens (r > 0) or thins (r < 0) the coverage image by r pixels:
// the maximum (minimum) over a disc of radius |r|, with the disc's rim
// weighted by its fractional part so the weight varies continuously.
func morph(cov []float32, w, h int, r float64) []float32 {
	if math.Abs(r) < 1e-6 {
		return cov
	}
	grow := r > 0
	rad := math.Abs(r)
	ri := int(math.Ceil(rad))
	out := make([]float32, len(cov))
	at := func(x, y int) float32 {
		if x < 0 || y < 0 || x >= w || y >= h {
			return 0
		}
		return cov[y*w+x]
	}
	type off struct {
		dx, dy int
		wt     float32
	}
	var offs []off
	for dy := -ri; dy <= ri; dy++ {
		for dx := -ri; dx <= ri; dx++ {
			d := math.Hypot(float64(dx), float64(dy))
			if d > rad+0.5 {
				continue
			}
			// Full weight inside the disc, a linear fall-off over its rim.
			wt := float32(math.Min(1, rad+0.5-d))
			offs = append(offs, off{dx, dy, wt})
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := cov[y*w+x]
			for _, o := range offs {
				v := at(x+o.dx, y+o.dy)
				if grow {
					c = max(c, v*o.wt)
				} else {
					c = min(c, 1-(1-v)*o.wt)
				}
			}
			out[y*w+x] = c
		}
	}
	return out
}

// frame reduces the oversampled coverage to MNIST's framing: the inked
// bounding box scaled (aspect kept) so its longer side is at most Box
// pixels — the glyph's Size jitter already made it smaller or equal — and
// the result placed in a Size x Size field with its centre of mass at the
// centre.
func frame(cov []float32, w, h int) (*image.Gray, error) {
	x0, y0, x1, y1 := w, h, -1, -1
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if cov[y*w+x] > 1.0/255 {
				x0, y0 = min(x0, x), min(y0, y)
				x1, y1 = max(x1, x), max(y1, y)
			}
		}
	}
	if x1 < 0 {
		return nil, errors.New("typeset: the glyph has no ink (thinned away?)")
	}
	src := image.NewGray(image.Rect(0, 0, x1-x0+1, y1-y0+1))
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			src.Pix[(y-y0)*src.Stride+(x-x0)] = uint8(math.Round(float64(cov[y*w+x]) * 255))
		}
	}
	// After thickening the box may exceed Box·oversample; never upscale a
	// glyph the Size jitter made smaller.
	bw, bh := float64(src.Rect.Dx()), float64(src.Rect.Dy())
	k := math.Min(1.0/oversample, Box/math.Max(bw, bh))
	dw, dh := max(1, int(math.Round(bw*k))), max(1, int(math.Round(bh*k)))
	small := image.NewGray(image.Rect(0, 0, dw, dh))
	draw.CatmullRom.Scale(small, small.Rect, src, src.Rect, draw.Src, nil)
	var m, mx, my float64
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			v := float64(small.Pix[y*small.Stride+x])
			m += v
			mx += v * (float64(x) + 0.5)
			my += v * (float64(y) + 0.5)
		}
	}
	if m == 0 {
		return nil, errors.New("typeset: the glyph has no ink at 28x28")
	}
	// Integer placement, as MNIST: the centre of mass lands within half a
	// pixel of the field's centre.
	ox := int(math.Round(Size/2 - mx/m))
	oy := int(math.Round(Size/2 - my/m))
	out := image.NewGray(image.Rect(0, 0, Size, Size))
	for y := 0; y < dh; y++ {
		for x := 0; x < dw; x++ {
			tx, ty := x+ox, y+oy
			if tx >= 0 && ty >= 0 && tx < Size && ty < Size {
				out.Pix[ty*out.Stride+tx] = small.Pix[y*small.Stride+x]
			}
		}
	}
	return out, nil
}

// Set is a seeded, endless sequence of typeset digits over some faces.
type Set struct {
	Faces  []*Face
	Jitter Jitter
	Seed   uint64
}

// NewSet loads the named faces (built-in names or font file paths; none:
// every built-in face) and checks the jitter.
func NewSet(faces []string, j Jitter, seed uint64) (*Set, error) {
	if err := j.Check(); err != nil {
		return nil, fmt.Errorf("typeset: jitter %w", err)
	}
	if len(faces) == 0 {
		faces = Faces()
	}
	s := &Set{Jitter: j, Seed: seed}
	for _, n := range faces {
		f, err := LoadFace(n)
		if err != nil {
			return nil, err
		}
		s.Faces = append(s.Faces, f)
	}
	return s, nil
}

// Params returns the drawn parameters of item i and its face. Digits
// cycle 0..9 so every ten consecutive items hold each digit once; the
// face and the jitter are drawn from an RNG seeded by (Seed, i).
func (s *Set) Params(i int) (*Face, Params) {
	rng := rand.New(rand.NewPCG(s.Seed, uint64(i)^0x9e3779b97f4a7c15))
	f := s.Faces[rng.IntN(len(s.Faces))]
	j := s.Jitter
	return f, Params{
		Digit:  i % 10,
		Size:   j.Size.draw(rng),
		Weight: j.Weight.draw(rng),
		Slant:  j.Slant.draw(rng),
		Rotate: j.Rotate.draw(rng),
	}
}

// Item renders item i: the image and its label.
func (s *Set) Item(i int) (*image.Gray, int, error) {
	f, p := s.Params(i)
	img, err := Render(f, p)
	if err != nil {
		return nil, 0, fmt.Errorf("typeset: item %d (%s, %+v): %w", i, f.Name, p, err)
	}
	return img, p.Digit, nil
}
