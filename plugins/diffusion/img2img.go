package diffusion

import (
	"context"
	"fmt"
	"image/color"
	"math"
	"slices"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/sdk"
)

// labelParams choose what a stage that reads images conditions on.
var labelParams = []sdk.Param{
	{Name: "label", Type: sdk.Int, Default: -1, Min: sdk.Bound(-1), Max: sdk.Bound(9),
		Doc: "condition every item on this label; -1: on the item's own label when it has one (a labelled load), else none"},
	{Name: "unconditional", Type: sdk.Bool, Default: false, Doc: "ignore the items' labels (and label)"},
}

// DenoiseParams are the denoise capability's parameters.
var DenoiseParams = append(append([]sdk.Param{
	{Name: "sigma", Type: sdk.Float, Default: 0.0, Min: sdk.Bound(0), Max: sdk.Bound(10),
		Doc: "standard deviation of the Gaussian noise on the input, in pixel units (0-1 images); 0: estimate it per image from the finest wavelet detail (Donoho's median absolute deviation)"},
	{Name: "clipped", Type: sdk.String, Default: "auto", Enum: []string{"auto", "yes", "no"},
		Doc: "whether the noisy image was clipped to [0, 1] (as any 8-bit image is): a clipped pixel at 0 or 1 no longer holds Gaussian noise, so it is given back a draw from the noise's clipped-off tail before denoising (exact where the clean pixel is 0 or 1, as most of a digit's are); auto: yes when over 5 % of an image's pixels are exactly 0 or 1"},
	{Name: "mode", Type: sdk.String, Default: "mean", Enum: []string{"mean", "sample"},
		Doc: "mean: the one-step posterior-mean estimate E[clean | noisy] (least squared error, a little blurry); sample: run the reverse process from the noise level down (a sharp, plausible clean image; it may differ from the original in detail)"},
}, samplingParams...), labelParams...)

// TranslateParams are the translate capability's parameters: image to
// image by SDEdit, or inpainting of a box.
var TranslateParams = append(append([]sdk.Param{
	{Name: "strength", Type: sdk.Float, Default: 0.6, Min: sdk.Bound(0), Max: sdk.Bound(1),
		Doc: "SDEdit (Meng et al. 2022): how far the input is noised before the reverse process runs, as a fraction of the 1000 steps: near 0 keeps the input, near 1 keeps little of it; inpainting: ignored (the box starts from pure noise)"},
	{Name: "box", Type: sdk.List, Elem: &sdk.Param{Type: sdk.Int, Min: sdk.Bound(0), Max: sdk.Bound(Size)},
		Doc: "inpaint instead: [x0, y0, x1, y1], the pixel rectangle (x1, y1 exclusive) to regenerate, the rest kept (RePaint, Lugmayr et al. 2022)"},
	{Name: "mask", Type: sdk.String, Format: sdk.FormatImage,
		Doc: "inpaint instead: a mask image the size of the stage's input images, whose light pixels (gray level at least half) are regenerated and dark ones kept (RePaint, Lugmayr et al. 2022); not with box"},
	{Name: "resample", Type: sdk.Int, Default: 5, Min: sdk.Bound(1), Max: sdk.Bound(50),
		Doc: "inpainting: times each step is redone after re-noising, so the new region agrees with the kept one (RePaint's U; 1: none)"},
}, samplingParams...), labelParams...)

var (
	_ sdk.Denoiser   = (*model)(nil)
	_ sdk.Translator = (*model)(nil)
)

// conditions returns the labels the stage's parameters ask for.
func (md *model) conditions(b *sdk.Batch) ([]int, error) {
	n := b.Len()
	out := make([]int, n)
	for i := range out {
		out[i] = -1
	}
	if md.params.Bool("unconditional") || md.m.Arch.Classes == 0 {
		return out, nil
	}
	if l := md.params.Int("label"); l >= 0 {
		if l >= md.m.Arch.Classes {
			return nil, fmt.Errorf("label %d out of range 0-%d", l, md.m.Arch.Classes-1)
		}
		for i := range out {
			out[i] = l
		}
		return out, nil
	}
	// Items' own labels: a label the model does not know (say, a folder
	// index beyond 9) conditions on nothing rather than failing the item.
	for i := 0; i < n && i < len(b.Labels); i++ {
		if l := b.Labels[i]; l >= 0 && l < md.m.Arch.Classes {
			out[i] = l
		}
	}
	return out, nil
}

// images checks a batch against the preset and returns it in model units.
func (md *model) images(b *sdk.Batch) ([]float32, error) {
	x := make([]float32, b.Len()*md.m.Arch.per())
	return x, md.m.data(b, x)
}

// itemRNGs are one generator per item, from the items' seeds.
func itemRNGs(b *sdk.Batch) []*nn.RNG {
	rngs := make([]*nn.RNG, b.Len())
	for i := range rngs {
		seed := uint64(i)
		if i < len(b.Seeds) {
			seed = b.Seeds[i]
		}
		rngs[i] = nn.NewRNG(seed)
	}
	return rngs
}

// EstimateSigma estimates the standard deviation of additive Gaussian
// noise on an image (h×w values in [0, 1]) as the median absolute value
// of its finest diagonal Haar detail over 0.6745 (Donoho and Johnstone
// 1994): the detail of an image of flat regions and edges is mostly zero,
// and that of white noise has the noise's deviation.
func EstimateSigma(img []float32, h, w int) float64 {
	var d []float64
	for y := 0; y+1 < h; y += 2 {
		for x := 0; x+1 < w; x += 2 {
			a, b := img[y*w+x], img[y*w+x+1]
			c, e := img[(y+1)*w+x], img[(y+1)*w+x+1]
			d = append(d, math.Abs(float64(a-b-c+e))/2)
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2] / 0.6745
}

// Denoise removes Gaussian noise of the given (or estimated) deviation:
// the noisy image, scaled by √ᾱ_t, is the forward process at the step t
// whose noise-to-signal ratio matches, so the model's noise prediction
// there gives the posterior mean (mode mean), or the start of a reverse
// process (mode sample).
func (md *model) Denoise(ctx context.Context, b *sdk.Batch) (*sdk.Tensor, error) {
	a := md.m.Arch
	if a.Kind != UNet {
		return nil, fmt.Errorf("preset %s denoises latents only as part of generation", md.preset.name)
	}
	x, err := md.images(b)
	if err != nil {
		return nil, err
	}
	labels, err := md.conditions(b)
	if err != nil {
		return nil, err
	}
	n, per := b.Len(), a.per()
	sched := md.s.sched
	steps := make([]int, n)
	rngs := itemRNGs(b)
	for i := range steps {
		sigma := md.params.Float("sigma")
		if sigma == 0 {
			px := make([]float32, per)
			for j := range px {
				px[j] = (x[i*per+j] + 1) / 2
			}
			sigma = EstimateSigma(px, a.Size, a.Size*a.Ch)
		}
		md.unclip(x[i*per:(i+1)*per], 2*sigma, rngs[i])
		// Pixel units [0, 1] to model units [-1, 1]: twice the deviation.
		steps[i] = sched.StepForSigma(max(2*sigma, 1e-4))
		sa := float32(math.Sqrt(sched.AlphaBar[steps[i]]))
		for j := i * per; j < (i+1)*per; j++ {
			x[j] *= sa
		}
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	if md.params.String("mode") == "mean" {
		out := make([]float32, n*per)
		// Items at the same step share a graph run.
		for _, t := range uniqueInts(steps) {
			var idx []int
			for i, s := range steps {
				if s == t {
					idx = append(idx, i)
				}
			}
			xs, ls := gather(x, idx, per), make([]int, len(idx))
			for k, i := range idx {
				ls[k] = labels[i]
			}
			eps := make([]float32, len(xs))
			if err := md.s.eps(eps, xs, t, ls, 1); err != nil {
				return nil, err
			}
			ab := sched.AlphaBar[t]
			sa, sb := math.Sqrt(ab), math.Sqrt(1-ab)
			for k, i := range idx {
				for j := 0; j < per; j++ {
					v := (float64(xs[k*per+j]) - sb*float64(eps[k*per+j])) / sa
					out[i*per+j] = float32(max(-1, min(1, v)))
				}
			}
		}
		return toImages(out, n, a), nil
	}
	out := make([]float32, n*per)
	for _, t := range uniqueInts(steps) {
		var idx []int
		for i, s := range steps {
			if s == t {
				idx = append(idx, i)
			}
		}
		ls, rs := make([]int, len(idx)), make([]*nn.RNG, len(idx))
		for k, i := range idx {
			ls[k], rs[k] = labels[i], rngs[i]
		}
		y, _, err := md.s.Run(ctx, gather(x, idx, per), ls, rs, md.sampling(t))
		if err != nil {
			return nil, err
		}
		for k, i := range idx {
			copy(out[i*per:(i+1)*per], y[k*per:(k+1)*per])
		}
	}
	return toImages(out, n, a), nil
}

// unclip gives the pixels of an image (model units, -1 and 1 the clip
// bounds) that sit exactly on a bound a draw from the tail of the noise
// (deviation sd, model units) that clipping cut off: -1 - sd·|n| and
// 1 + sd·|n|, so the image holds Gaussian noise again where the clean
// pixel is at the bound.
func (md *model) unclip(x []float32, sd float64, rng *nn.RNG) {
	mode := md.params.String("clipped")
	if mode == "no" || sd == 0 {
		return
	}
	at := 0
	for _, v := range x {
		if v == -1 || v == 1 {
			at++
		}
	}
	if mode == "auto" && at*20 <= len(x) {
		return
	}
	z := make([]float32, len(x))
	rng.Normal(z, sd)
	for i, v := range x {
		switch v {
		case -1:
			x[i] = -1 - float32(math.Abs(float64(z[i])))
		case 1:
			x[i] = 1 + float32(math.Abs(float64(z[i])))
		}
	}
}

func uniqueInts(v []int) []int {
	u := slices.Clone(v)
	slices.Sort(u)
	return slices.Compact(u)
}

// gather copies the items idx (per values each) of x into a new slice.
func gather(x []float32, idx []int, per int) []float32 {
	out := make([]float32, 0, len(idx)*per)
	for _, i := range idx {
		out = append(out, x[i*per:(i+1)*per]...)
	}
	return out
}

// Translate is image-to-image: SDEdit (noise the input to strength, then
// run the reverse process, toward a label if one is given), or, with box,
// inpainting.
func (md *model) Translate(ctx context.Context, b *sdk.Batch) (*sdk.Tensor, error) {
	a := md.m.Arch
	if a.Kind != UNet {
		return nil, fmt.Errorf("preset %s translates no images", md.preset.name)
	}
	x0, err := md.images(b)
	if err != nil {
		return nil, err
	}
	labels, err := md.conditions(b)
	if err != nil {
		return nil, err
	}
	if md.params.Has("box") || md.params.Has("mask") {
		mask, err := md.inpaintMask()
		if err != nil {
			return nil, err
		}
		return md.inpaint(ctx, b, x0, labels, mask)
	}
	n, per := b.Len(), a.per()
	from := int(math.Round(md.params.Float("strength") * (T - 1)))
	if from == 0 && md.params.Float("strength") == 0 {
		return toImages(x0, n, a), nil
	}
	rngs := itemRNGs(b)
	ab := md.s.sched.AlphaBar[from]
	sa, sb := float32(math.Sqrt(ab)), float32(math.Sqrt(1-ab))
	z := make([]float32, per)
	x := make([]float32, n*per)
	temp := md.params.Float("temperature")
	for i := 0; i < n; i++ {
		rngs[i].Normal(z, temp)
		for j := 0; j < per; j++ {
			x[i*per+j] = sa*x0[i*per+j] + sb*z[j]
		}
	}
	md.mu.Lock()
	defer md.mu.Unlock()
	out, _, err := md.s.Run(ctx, x, labels, rngs, md.sampling(from))
	if err != nil {
		return nil, err
	}
	return toImages(out, n, a), nil
}

// inpaint regenerates the box and keeps the rest: after every step the
// kept pixels are replaced by the input noised to the step reached, and
// each step is redone resample times after re-noising its result back
// (RePaint), so the box's content agrees with its surroundings.
func (md *model) inpaint(ctx context.Context, b *sdk.Batch, x0 []float32, labels []int, mask []bool) (*sdk.Tensor, error) {
	a := md.m.Arch
	n, per := b.Len(), a.per()
	rngs := itemRNGs(b)
	temp := md.params.Float("temperature")
	x := make([]float32, n*per)
	for i := 0; i < n; i++ {
		rngs[i].Normal(x[i*per:(i+1)*per], temp)
	}
	sched := md.s.sched
	z := make([]float32, per)
	// keep puts the known pixels, noised to step t (-1: clean), into x.
	keep := func(x []float32, t int) {
		ab := sched.alphaBar(t)
		sa, sb := float32(math.Sqrt(ab)), float32(math.Sqrt(1-ab))
		for i := 0; i < n; i++ {
			if t >= 0 {
				rngs[i].Normal(z, temp)
			}
			for j := 0; j < per; j++ {
				if !mask[j] {
					v := sa * x0[i*per+j]
					if t >= 0 {
						v += sb * z[j]
					}
					x[i*per+j] = v
				}
			}
		}
	}
	sp := md.sampling(T - 1)
	ts := sched.Timesteps(T-1, sp.Steps, Linear)
	md.mu.Lock()
	defer md.mu.Unlock()
	keep(x, ts[0])
	resample := md.params.Int("resample")
	for i, t := range ts {
		next := -1
		if i+1 < len(ts) {
			next = ts[i+1]
		}
		for u := 0; u < resample; u++ {
			// One step t -> next of the chosen sampler (DDIM/DDPM update:
			// a one-step process from t whose only step is t).
			step := sp
			step.From, step.Steps, step.Spacing = t, 1, Linear
			y, _, err := md.s.stepTo(ctx, x, labels, rngs, step, next)
			if err != nil {
				return nil, err
			}
			copy(x, y)
			keep(x, next)
			if u+1 == resample || next < 0 {
				break
			}
			// Re-noise next -> t: q(x_t | x_next).
			r := sched.alphaBar(t) / sched.alphaBar(next)
			sr, sn := float32(math.Sqrt(r)), float32(math.Sqrt(1-r))
			for it := 0; it < n; it++ {
				rngs[it].Normal(z, temp)
				for j := 0; j < per; j++ {
					x[it*per+j] = sr*x[it*per+j] + sn*z[j]
				}
			}
		}
	}
	return toImages(x, n, a), nil
}

// inpaintMask is the region to regenerate (true) per value of an item,
// from the box or the mask image.
func (md *model) inpaintMask() ([]bool, error) {
	a := md.m.Arch
	mask := make([]bool, a.per())
	if md.params.Has("box") && md.params.Has("mask") {
		return nil, fmt.Errorf("give box or mask, not both")
	}
	if md.params.Has("box") {
		box := md.params.Ints("box")
		if len(box) != 4 || box[0] >= box[2] || box[1] >= box[3] || box[2] > a.Size || box[3] > a.Size {
			return nil, fmt.Errorf("box %v: want [x0, y0, x1, y1] with x0 < x1 <= %d and y0 < y1 <= %d", box, a.Size, a.Size)
		}
		for c := 0; c < a.Ch; c++ {
			for y := box[1]; y < box[3]; y++ {
				for x := box[0]; x < box[2]; x++ {
					mask[(c*a.Size+y)*a.Size+x] = true
				}
			}
		}
		return mask, nil
	}
	img, err := sdk.DecodeImageParam(md.params.String("mask"))
	if err != nil {
		return nil, fmt.Errorf("mask: %w", err)
	}
	r := img.Bounds()
	if r.Dx() != a.Size || r.Dy() != a.Size {
		return nil, fmt.Errorf("mask: image is %dx%d (WxH), expected %dx%d", r.Dx(), r.Dy(), a.Size, a.Size)
	}
	some := false
	for y := 0; y < a.Size; y++ {
		for x := 0; x < a.Size; x++ {
			g := color.GrayModel.Convert(img.At(r.Min.X+x, r.Min.Y+y)).(color.Gray)
			if g.Y >= 128 {
				some = true
				for c := 0; c < a.Ch; c++ {
					mask[(c*a.Size+y)*a.Size+x] = true
				}
			}
		}
	}
	if !some {
		return nil, fmt.Errorf("mask: no pixel is light (gray level at least 128): nothing to inpaint")
	}
	return mask, nil
}
