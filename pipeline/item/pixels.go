package item

import (
	"encoding/binary"
	"fmt"
	"image"
	"math"

	"github.com/genpipe/genpipe/sdk"
)

// WithPixels returns it with its pixels as 8-bit Image (and Frames): an
// item whose pixels are a float Tensor gets them quantised exactly as
// [FromTensor] quantises its model's output (mapped from Range, rounded,
// clamped, NaN to 0), and loses the Tensor, so only one representation stays
// alive. Any other item is returned as it is. Host stages (preprocess, save,
// grids) call it before they read Image or Frames.
func (it Item) WithPixels() (Item, error) {
	if it.Tensor == nil {
		return it, nil
	}
	imgs, err := FromTensor(it.Tensor, it.rangeSpec())
	if err != nil {
		return it, fmt.Errorf("item: %s: %w", describe(&it), err)
	}
	if len(imgs) != 1 {
		return it, fmt.Errorf("item: %s: its tensor holds %d images, expected 1", describe(&it), len(imgs))
	}
	it.setFrames(imgs[0])
	return it, nil
}

// setFrames makes frames (one image, or a sequence) the item's 8-bit
// pixels: Image is the last frame, Frames the sequence (nil for one image).
// The other forms of pixels (Tensor, Latent) are dropped.
func (it *Item) setFrames(frames []image.Image) {
	it.Image, it.Frames, it.Latent, it.Tensor, it.Range = frames[len(frames)-1], nil, nil, nil, [2]float32{}
	if len(frames) > 1 {
		it.Frames = frames
	}
}

func (it *Item) rangeSpec() *sdk.ImageSpec {
	return &sdk.ImageSpec{DType: it.Tensor.DType, Min: it.Range[0], Max: it.Range[1]}
}

// Shape returns the channels, height and width of the item's pixels, as a
// spec that leaves channels open gets them ([Channels]: 1 for gray, else 3),
// whether they are an Image or a float Tensor; ok is false for an item
// without pixels.
func (it *Item) Shape() (c, h, w int, ok bool) {
	switch {
	case it.Tensor != nil && len(it.Tensor.Shape) >= 3:
		r := len(it.Tensor.Shape)
		c, h, w = it.Tensor.Shape[r-3], it.Tensor.Shape[r-2], it.Tensor.Shape[r-1]
		if c != 1 {
			c = 3 // what the 8-bit image (NRGBA) of 2 or 4 channels counts as
		}
		return c, h, w, true
	case it.Image != nil:
		sz := it.Image.Bounds().Size()
		return Channels(it.Image), sz.Y, sz.X, true
	}
	return 0, 0, 0, false
}

// Unpack sets the pixels of each of items from its row of t, a model's
// image output (NCHW, or NTCHW for sequences), checked against spec as
// [FromTensor] checks it. A float32 image stays float: the item's Tensor is
// a copy of its row (so t can go) and Range spec's value range ([ValueRange]).
// A uint8 image, and every frame of a sequence, becomes 8-bit Image (and
// Frames) as [FromTensor] makes them. The items' Latent, Image, Frames and
// Tensor are replaced.
func Unpack(items []Item, t *sdk.Tensor, spec *sdk.ImageSpec) error {
	d, err := imageDims(t, spec)
	if err != nil {
		return err
	}
	if d.n != len(items) {
		return fmt.Errorf("item: from tensor: %d images for %d items", d.n, len(items))
	}
	if t.DType == sdk.Float32 && len(t.Shape) == 4 {
		lo, hi, err := ValueRange(spec, t.DType)
		if err != nil {
			return fmt.Errorf("item: from tensor: %w", err)
		}
		ib := t.ItemBytes()
		for i := range items {
			it := &items[i]
			it.Tensor = &sdk.Tensor{Shape: []int{1, d.c, d.h, d.w}, DType: sdk.Float32,
				Data: append([]byte(nil), t.Data[i*ib:(i+1)*ib]...)}
			it.Range = [2]float32{lo, hi}
			it.Image, it.Frames, it.Latent = nil, nil, nil
		}
		return nil
	}
	imgs, err := FromTensor(t, spec)
	if err != nil {
		return err
	}
	for i := range items {
		items[i].setFrames(imgs[i])
	}
	return nil
}

// remap writes the float32 values of src, in [lo0, hi0], to dst mapped
// linearly onto [lo1, hi1]. Values are clamped to [lo0, hi0] first (NaN
// becomes lo0), as quantising to 8 bits clamps them, so the consumer gets
// values in its declared range; equal ranges copy values in range exactly.
func remap(dst, src []byte, lo0, hi0, lo1, hi1 float32) {
	same := lo0 == lo1 && hi0 == hi1
	k := (float64(hi1) - float64(lo1)) / (float64(hi0) - float64(lo0))
	for i := 0; i+4 <= len(src) && i+4 <= len(dst); i += 4 {
		v := math.Float32frombits(binary.LittleEndian.Uint32(src[i:]))
		switch {
		case !(v >= lo0): // also NaN
			v = lo0
		case v > hi0:
			v = hi0
		}
		if !same {
			v = float32((float64(v)-float64(lo0))*k + float64(lo1))
			v = min(max(v, lo1), hi1)
		}
		binary.LittleEndian.PutUint32(dst[i:], math.Float32bits(v))
	}
}
