package stages

import (
	"fmt"
	"image"
	"math"

	"github.com/disintegration/imaging"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/sdk"
)

// The conform modes of a model stage. They are the modes of the preprocess
// op conform (and named for the preprocess ops fit, fill and resize), so a
// stage's key and an explicit preprocess step read the same.
const (
	ConformFit    = "fit"
	ConformFill   = "fill"
	ConformResize = "resize"
	ConformOff    = "off"
)

// ConformParam is the host key conform of the model stages that read
// images (encode, translate, denoise).
//
// fit is the default because it keeps the whole image: a digit or a glyph
// near the edge of a larger picture is scaled in, not cut off as fill
// would, nor distorted as resize would, and the black padding is the
// background MNIST-like models were trained on.
var ConformParam = sdk.Param{
	Name: "conform", Type: sdk.String, Default: ConformFit,
	Enum: []string{ConformFit, ConformFill, ConformResize, ConformOff},
	Doc: "how the host brings each input to the size and channels the preset declares before the call: " +
		"fit scales the whole image into that size and pads with black, fill scales and crops the centre, " +
		"resize stretches, off resizes nothing (validate then wants an input of known, matching size); " +
		"in every mode colour becomes gray by luminance, gray is replicated to colour, alpha is composited on black; " +
		"items already of the declared size are passed untouched (float pixels stay float)",
}

// RestoreParam is the host key restore of the stages whose output is an
// image made from their input (translate, denoise): batch users want each
// output at the size of the file it came from, not the model's.
var RestoreParam = sdk.Param{
	Name: "restore", Type: sdk.Bool, Default: false,
	Doc: "size each output back to its input's size when conform resized the input: " +
		"with fit the padding is cropped off first, with resize the output is stretched back; " +
		"fill cannot be undone (it cut the borders off) and conform off resizes nothing, so both refuse restore",
}

// Conformer brings the items a model stage reads to the input its preset
// declares. A nil *Conformer passes items through.
type Conformer struct {
	mode  string
	want  sdk.ImageSpec
	stage string
	// restore sizes outputs back to their inputs (see [Conformer.Restore]).
	restore bool
}

// NewConformer returns the conformer of a model stage with conform mode
// mode whose preset declares input want; nil when there is nothing to do
// (mode off, no declared input, or one that fixes no size).
func NewConformer(stage, mode string, want *sdk.ImageSpec) *Conformer {
	if mode == ConformOff || want == nil || want.Width == 0 && want.Height == 0 {
		// Channels alone need no conformer: item.ToTensor converts them
		// (by the same rules) and keeps float pixels float where it can.
		return nil
	}
	return &Conformer{mode: orDefault(mode, ConformFit), want: *want, stage: stage}
}

// WithRestore returns c that also sizes outputs back to their inputs
// (mode fit or resize; the planner refuses restore with the others).
func (c *Conformer) WithRestore() *Conformer {
	if c == nil || c.mode == ConformFill {
		return c
	}
	r := *c
	r.restore = true
	return &r
}

// Restores reports whether c sizes outputs back ([Conformer.Restore]).
func (c *Conformer) Restores() bool { return c != nil && c.restore }

// Restore returns out, the model's output for an input that was w x h
// before [Conformer.Item] resized it, at w x h again: under fit the part
// of out that the input's content became (the padding cut off) is scaled
// back, under resize all of out is. The output may be of another size than
// the conformed input (a preset that scales its input): the content box
// scales with it. out's pixels become 8-bit (a float tensor is quantised as
// a save would quantise it).
func (c *Conformer) Restore(out item.Item, w, h int) (item.Item, error) {
	if !c.Restores() {
		return out, nil
	}
	px, err := out.WithPixels()
	if err != nil {
		return out, err
	}
	if px.Image == nil || px.Image.Bounds().Empty() {
		return out, fmt.Errorf("restore: %s has no pixels to resize", describe(&out))
	}
	osz := px.Image.Bounds().Size()
	box := image.Rect(0, 0, osz.X, osz.Y)
	if c.mode == ConformFit && c.want.Width > 0 && c.want.Height > 0 {
		// The same arithmetic as conform's fit, in the conformed canvas,
		// then scaled to the output's size.
		x0, y0, nw, nh := fitBox(w, h, c.want.Width, c.want.Height)
		sx, sy := float64(osz.X)/float64(c.want.Width), float64(osz.Y)/float64(c.want.Height)
		box = image.Rect(int(math.Round(float64(x0)*sx)), int(math.Round(float64(y0)*sy)),
			int(math.Round(float64(x0+nw)*sx)), int(math.Round(float64(y0+nh)*sy))).Intersect(box)
		if box.Empty() {
			box = image.Rect(0, 0, osz.X, osz.Y)
		}
	}
	back := func(img image.Image) image.Image {
		gray := isGray(img)
		var r image.Image = imaging.Resize(imaging.Crop(img, box.Add(img.Bounds().Min)), w, h, imaging.Lanczos)
		if gray {
			r = item.ToGray(r)
		}
		return r
	}
	if len(px.Frames) > 0 {
		frames := make([]image.Image, len(px.Frames))
		for i, f := range px.Frames {
			frames[i] = back(f)
		}
		px.Frames, px.Image = frames, frames[len(frames)-1]
	} else {
		px.Image = back(px.Image)
	}
	return px.With(item.Step{Stage: c.stage, Kind: "restore", Seed: out.Seed, Params: map[string]any{
		"mode": c.mode, "from": fmt.Sprintf("%dx%d", osz.X, osz.Y), "to": fmt.Sprintf("%dx%d", w, h),
	}}), nil
}

// Item returns it at the declared size. An item already of that size is
// returned as it is (its channels are converted at the tensor boundary by
// item.ToTensor, which keeps float pixels float); any other gets its 8-bit
// pixels, every frame of a sequence, resized by the mode and converted to
// the declared channels, and a provenance step that says so.
func (c *Conformer) Item(it item.Item) (item.Item, error) {
	if c == nil {
		return it, nil
	}
	_, h, w, ok := it.Shape()
	if !ok || (c.want.Width == 0 || w == c.want.Width) && (c.want.Height == 0 || h == c.want.Height) {
		return it, nil // latents, or nothing to resize: ToTensor reports or converts
	}
	px, err := it.WithPixels()
	if err != nil {
		return it, err
	}
	if px.Image == nil || px.Image.Bounds().Empty() {
		return it, fmt.Errorf("conform: %s has no pixels to resize", describe(&it))
	}
	if len(px.Frames) > 0 {
		// A new slice: fan-out branches share the item's frames.
		frames := make([]image.Image, len(px.Frames))
		for i, f := range px.Frames {
			frames[i] = conform(f, c.want, c.mode, imaging.Lanczos)
		}
		px.Frames, px.Image = frames, frames[len(frames)-1]
	} else {
		px.Image = conform(px.Image, c.want, c.mode, imaging.Lanczos)
	}
	sz := px.Image.Bounds().Size()
	return px.With(item.Step{Stage: c.stage, Kind: "conform", Seed: it.Seed, Params: map[string]any{
		"mode": c.mode, "from": fmt.Sprintf("%dx%d", w, h), "to": fmt.Sprintf("%dx%dx%d", sz.X, sz.Y, item.Channels(px.Image)),
	}}), nil
}
