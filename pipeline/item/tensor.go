package item

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"

	"github.com/disintegration/imaging"

	"github.com/genpipe/genpipe/sdk"
)

// ErrMixedShapes is wrapped by [ToTensor] when the items of one batch differ
// in size or channels and the spec leaves that dimension open ("any"). One
// tensor cannot hold them, so the caller sends smaller batches (one item per
// batch always works); see [SameShape].
var ErrMixedShapes = errors.New("items of the batch differ in shape")

// SameSize reports whether all items' images have the same width and height.
// Items without pixels are ignored.
func SameSize(items []Item) bool {
	var first image.Point
	seen := false
	for i := range items {
		_, h, w, ok := items[i].Shape()
		if !ok {
			continue
		}
		sz := image.Pt(w, h)
		if !seen {
			first, seen = sz, true
		} else if sz != first {
			return false
		}
	}
	return true
}

// SameShape reports whether [ToTensor] can put items into one tensor for
// spec: the dimensions spec leaves open (0) must agree between the items.
// Dimensions spec fixes are not checked here (a mismatch is an error of the
// item, not of the batch).
func SameShape(items []Item, spec *sdk.ImageSpec) bool {
	if spec == nil || spec.Width == 0 || spec.Height == 0 {
		if !SameSize(items) {
			return false
		}
	}
	if spec == nil || spec.Channels == 0 {
		c := -1
		for i := range items {
			n, _, _, ok := items[i].Shape()
			if !ok {
				continue
			}
			if c < 0 {
				c = n
			} else if n != c {
				return false
			}
		}
	}
	return true
}

// Channels is the natural channel count of img when a spec leaves channels
// open: 1 for gray images (*image.Gray, *image.Gray16), 3 for everything
// else. Alpha is never counted: whether an image has transparency is a
// property of its pixels, and a batch's shape must not depend on pixels.
func Channels(img image.Image) int {
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		return 1
	}
	return 3
}

// ValueRange returns the value range of spec for dtype: spec's Min and Max
// for float32, defaulting to [0, 1] when both are zero, and always [0, 255]
// for uint8 (pixels are never rescaled inside a byte).
func ValueRange(spec *sdk.ImageSpec, dt sdk.DType) (lo, hi float32, err error) {
	if dt == sdk.Uint8 {
		return 0, 255, nil
	}
	if spec == nil || spec.Min == 0 && spec.Max == 0 {
		return 0, 1, nil
	}
	if !(spec.Min < spec.Max) || math.IsInf(float64(spec.Min), 0) || math.IsInf(float64(spec.Max), 0) {
		return 0, 0, fmt.Errorf("value range [%v, %v] is empty or unbounded", spec.Min, spec.Max)
	}
	return spec.Min, spec.Max, nil
}

func specDType(spec *sdk.ImageSpec) sdk.DType {
	if spec == nil || spec.DType == 0 {
		return sdk.Uint8
	}
	return spec.DType
}

// describe names an item in error messages.
func describe(it *Item) string {
	s := fmt.Sprintf("item %d", it.Index)
	if it.Name != "" {
		s += fmt.Sprintf(" %q", it.Name)
	}
	if it.Source != "" {
		s += " (" + it.Source + ")"
	}
	return s
}

// ToTensor packs the items' images into one NCHW tensor following spec
// (nil: uint8, natural channels, any size). Channels are converted when
// spec.Channels is set (gray is replicated, colour becomes luminance, alpha
// is composited on black unless a fourth channel keeps it); values are mapped
// from [0, 255] to the spec's range for float32. Sizes spec fixes must match
// exactly (conform them in a preprocess stage); sizes it leaves open must
// agree between the items, else the error wraps [ErrMixedShapes]. A sequence
// item contributes its Image (the last frame).
//
// An item whose pixels are a float Tensor goes to a float32 spec with the
// same channels by a range remap (clamped to its range, never rounded to 8
// bits); to a uint8 spec, or one with other channels, it goes as the 8-bit
// image [Item.WithPixels] makes, exactly as an image item.
func ToTensor(items []Item, spec *sdk.ImageSpec) (*sdk.Tensor, error) {
	if len(items) == 0 {
		return nil, errors.New("item: to tensor: empty batch")
	}
	dt := specDType(spec)
	if dt.Size() == 0 {
		return nil, fmt.Errorf("item: to tensor: unsupported dtype %s", dt)
	}
	lo, hi, err := ValueRange(spec, dt)
	if err != nil {
		return nil, fmt.Errorf("item: to tensor: %w", err)
	}
	var want sdk.ImageSpec
	if spec != nil {
		want = *spec
	}
	for i := range items {
		if items[i].Image == nil && items[i].Tensor == nil {
			return nil, fmt.Errorf("item: to tensor: %s has no image (a latent item?)", describe(&items[i]))
		}
	}
	c := want.Channels
	if c == 0 {
		c, _, _, _ = items[0].Shape()
	}
	if c < 1 || c > 4 {
		return nil, fmt.Errorf("item: to tensor: %d channels requested, expected 1 to 4", c)
	}
	// Float pixels that cannot go as floats go as 8-bit images; the
	// caller's slice is left alone.
	copied := false
	for i := range items {
		t := items[i].Tensor
		if t == nil || dt == sdk.Float32 && t.DType == sdk.Float32 && len(t.Shape) == 4 && t.Shape[1] == c {
			continue
		}
		if !copied {
			items, copied = append([]Item(nil), items...), true
		}
		if items[i], err = items[i].WithPixels(); err != nil {
			return nil, fmt.Errorf("item: to tensor: %w", err)
		}
	}
	first := &items[0]
	_, fh, fw, _ := first.Shape()
	sz := image.Pt(fw, fh)
	h, w := want.Height, want.Width
	if h == 0 {
		h = sz.Y
	}
	if w == 0 {
		w = sz.X
	}
	for i := range items {
		it := &items[i]
		n, gh, gw, _ := it.Shape()
		got := image.Pt(gw, gh)
		if want.Width != 0 && got.X != w || want.Height != 0 && got.Y != h {
			return nil, fmt.Errorf("item: to tensor: %s is %dx%d, expected %s (add a conform or resize step)",
				describe(it), got.X, got.Y, specSize(&want))
		}
		if got.X != w || got.Y != h {
			return nil, fmt.Errorf("item: to tensor: %w: %s is %dx%d, %s is %dx%d",
				ErrMixedShapes, describe(first), sz.X, sz.Y, describe(it), got.X, got.Y)
		}
		if want.Channels == 0 {
			if n != c {
				return nil, fmt.Errorf("item: to tensor: %w: %s has %d channels, %s has %d channels",
					ErrMixedShapes, describe(first), c, describe(it), n)
			}
		}
	}
	plane := w * h
	per := c * plane
	t := sdk.NewTensor(dt, len(items), c, h, w)
	buf := make([]uint8, per)
	rng := hi - lo
	for n := range items {
		if src := items[n].Tensor; src != nil {
			r := items[n].Range
			remap(t.Data[n*per*4:(n+1)*per*4], src.Data, r[0], r[1], lo, hi)
			continue
		}
		planes(items[n].Image, c, buf)
		switch dt {
		case sdk.Uint8:
			copy(t.Data[n*per:], buf)
		case sdk.Float32:
			out := t.Data[n*per*4:]
			for i, v := range buf {
				binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(float32(v)*rng/255+lo))
			}
		}
	}
	return t, nil
}

// planes writes img as c planes of 8-bit values (CHW) into dst.
func planes(img image.Image, c int, dst []uint8) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	plane := w * h
	if c == 1 {
		g := ToGray(img)
		for y := 0; y < h; y++ {
			copy(dst[y*w:(y+1)*w], g.Pix[y*g.Stride:])
		}
		return
	}
	if g, ok := img.(*image.Gray); ok {
		for y := 0; y < h; y++ {
			row := g.Pix[(y)*g.Stride:]
			for x := 0; x < w; x++ {
				v := row[x]
				i := y*w + x
				switch c {
				case 2:
					dst[i], dst[plane+i] = v, 255
				default:
					dst[i], dst[plane+i], dst[2*plane+i] = v, v, v
					if c == 4 {
						dst[3*plane+i] = 255
					}
				}
			}
		}
		return
	}
	m := toNRGBA(img)
	for y := 0; y < h; y++ {
		row := m.Pix[y*m.Stride:]
		for x := 0; x < w; x++ {
			p := row[4*x : 4*x+4 : 4*x+4]
			i := y*w + x
			switch c {
			case 2:
				dst[i], dst[plane+i] = luma(p[0], p[1], p[2], 255), p[3]
			case 3:
				a := uint32(p[3])
				dst[i] = uint8((uint32(p[0])*a + 127) / 255)
				dst[plane+i] = uint8((uint32(p[1])*a + 127) / 255)
				dst[2*plane+i] = uint8((uint32(p[2])*a + 127) / 255)
			case 4:
				dst[i], dst[plane+i], dst[2*plane+i], dst[3*plane+i] = p[0], p[1], p[2], p[3]
			}
		}
	}
}

// luma is the luminance of a non-premultiplied colour composited on black,
// with the weights of color.GrayModel, so it agrees with the standard library.
func luma(r, g, b, a uint8) uint8 {
	cr, cg, cb, _ := color.NRGBA{r, g, b, a}.RGBA()
	return uint8((19595*cr + 38470*cg + 7471*cb + 1<<15) >> 24)
}

// toNRGBA returns img as an *image.NRGBA whose bounds start at (0, 0),
// without copying when it already is one.
func toNRGBA(img image.Image) *image.NRGBA {
	if m, ok := img.(*image.NRGBA); ok && m.Rect.Min == (image.Point{}) {
		return m
	}
	return imaging.Clone(img)
}

// ToGray converts img to one gray channel: luminance with alpha composited
// on black (as color.GrayModel does). The result's bounds start at (0, 0);
// a *image.Gray that already does is returned as is.
func ToGray(img image.Image) *image.Gray {
	b := img.Bounds()
	switch m := img.(type) {
	case *image.Gray:
		if b.Min == (image.Point{}) {
			return m
		}
	case *image.NRGBA:
		g := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
		for y := 0; y < b.Dy(); y++ {
			src := m.Pix[m.PixOffset(b.Min.X, b.Min.Y+y):]
			dst := g.Pix[y*g.Stride:]
			for x := 0; x < b.Dx(); x++ {
				dst[x] = luma(src[4*x], src[4*x+1], src[4*x+2], src[4*x+3])
			}
		}
		return g
	}
	return ToGray(toNRGBA(img))
}

// ConvertChannels returns img with c channels, converted as [ToTensor]
// does: 1 gives an *image.Gray; 3 an opaque *image.NRGBA (alpha composited
// on black); 2 and 4 an *image.NRGBA that keeps alpha (gray for 2). Bounds
// start at (0, 0). An image that already has c channels is returned as is.
func ConvertChannels(img image.Image, c int) (image.Image, error) {
	switch c {
	case 1:
		return ToGray(img), nil
	case 2, 3, 4:
	default:
		return nil, fmt.Errorf("item: convert channels: %d channels requested, expected 1 to 4", c)
	}
	if c == 3 && Channels(img) == 3 && opaque(img) && img.Bounds().Min == (image.Point{}) {
		return img, nil
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	buf := make([]uint8, c*w*h)
	planes(img, c, buf)
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	fillNRGBA(m, buf, c, w, h)
	return m, nil
}

func opaque(img image.Image) bool {
	if o, ok := img.(interface{ Opaque() bool }); ok {
		return o.Opaque()
	}
	return false
}

// fillNRGBA sets m from c planes of 8-bit values (CHW).
func fillNRGBA(m *image.NRGBA, buf []uint8, c, w, h int) {
	plane := w * h
	for y := 0; y < h; y++ {
		row := m.Pix[y*m.Stride:]
		for x := 0; x < w; x++ {
			i := y*w + x
			p := row[4*x : 4*x+4 : 4*x+4]
			switch c {
			case 2:
				p[0], p[1], p[2], p[3] = buf[i], buf[i], buf[i], buf[plane+i]
			case 3:
				p[0], p[1], p[2], p[3] = buf[i], buf[plane+i], buf[2*plane+i], 255
			case 4:
				p[0], p[1], p[2], p[3] = buf[i], buf[plane+i], buf[2*plane+i], buf[3*plane+i]
			}
		}
	}
}

// FromTensor unpacks an image tensor: NCHW gives one image per item, NTCHW a
// sequence of T frames per item. Values are mapped from the spec's range
// (nil spec or zero range: [0, 255] for uint8, [0, 1] for float32) back to
// 8 bits, rounded and clamped (NaN becomes 0). One channel gives
// *image.Gray; 2 (gray and alpha), 3 and 4 give *image.NRGBA. Dimensions and
// dtype that spec fixes must match the tensor.
func FromTensor(t *sdk.Tensor, spec *sdk.ImageSpec) ([][]image.Image, error) {
	d, err := imageDims(t, spec)
	if err != nil {
		return nil, err
	}
	lo, hi, err := ValueRange(spec, t.DType)
	if err != nil {
		return nil, fmt.Errorf("item: from tensor: %w", err)
	}
	n, frames, c, h, w := d.n, d.frames, d.c, d.h, d.w
	per := c * h * w
	buf := make([]uint8, per)
	scale := 255 / (hi - lo)
	out := make([][]image.Image, n)
	for i := 0; i < n; i++ {
		out[i] = make([]image.Image, frames)
		for f := 0; f < frames; f++ {
			k := (i*frames + f) * per
			switch t.DType {
			case sdk.Uint8:
				copy(buf, t.Data[k:k+per])
			case sdk.Float32:
				src := t.Data[4*k:]
				for j := range buf {
					v := math.Float32frombits(binary.LittleEndian.Uint32(src[4*j:]))
					buf[j] = to8((v - lo) * scale)
				}
			default:
				return nil, fmt.Errorf("item: from tensor: unsupported dtype %s", t.DType)
			}
			if c == 1 {
				g := image.NewGray(image.Rect(0, 0, w, h))
				copy(g.Pix, buf)
				out[i][f] = g
				continue
			}
			m := image.NewNRGBA(image.Rect(0, 0, w, h))
			fillNRGBA(m, buf, c, w, h)
			out[i][f] = m
		}
	}
	return out, nil
}

// dims are the dimensions of an image tensor (frames is 1 for NCHW).
type dims struct{ n, frames, c, h, w int }

// imageDims checks that t is an image tensor (NCHW or NTCHW, 1 to 4
// channels, no latent space) that agrees with what spec fixes.
func imageDims(t *sdk.Tensor, spec *sdk.ImageSpec) (dims, error) {
	if t == nil {
		return dims{}, errors.New("item: from tensor: no tensor")
	}
	if err := t.Check(); err != nil {
		return dims{}, fmt.Errorf("item: from tensor: %w", err)
	}
	var d dims
	switch len(t.Shape) {
	case 4:
		d = dims{t.Shape[0], 1, t.Shape[1], t.Shape[2], t.Shape[3]}
	case 5:
		d = dims{t.Shape[0], t.Shape[1], t.Shape[2], t.Shape[3], t.Shape[4]}
	default:
		return dims{}, fmt.Errorf("item: from tensor: shape %v, expected NCHW or NTCHW", t.Shape)
	}
	if d.c < 1 || d.c > 4 {
		return dims{}, fmt.Errorf("item: from tensor: shape %v has %d channels, expected 1 to 4", t.Shape, d.c)
	}
	if t.Space != "" {
		return dims{}, fmt.Errorf("item: from tensor: got a latent of space %q, expected images", t.Space)
	}
	if spec != nil {
		if spec.DType != 0 && spec.DType != t.DType {
			return dims{}, fmt.Errorf("item: from tensor: dtype %s, expected %s", t.DType, spec.DType)
		}
		if spec.Channels != 0 && spec.Channels != d.c || spec.Height != 0 && spec.Height != d.h || spec.Width != 0 && spec.Width != d.w {
			return dims{}, fmt.Errorf("item: from tensor: items are %dx%dx%d (CxHxW), expected %s",
				d.c, d.h, d.w, specShape(spec))
		}
	}
	return d, nil
}

func to8(v float32) uint8 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= 255:
		return 255
	}
	return uint8(v + 0.5)
}

func specShape(s *sdk.ImageSpec) string {
	d := func(v int) string {
		if v == 0 {
			return "*"
		}
		return fmt.Sprint(v)
	}
	return d(s.Channels) + "x" + d(s.Height) + "x" + d(s.Width)
}

func specSize(s *sdk.ImageSpec) string {
	d := func(v int) string {
		if v == 0 {
			return "*"
		}
		return fmt.Sprint(v)
	}
	return d(s.Width) + "x" + d(s.Height)
}
