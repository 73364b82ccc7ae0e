package job

import (
	"context"
	"errors"
	"fmt"
	"image"
	"slices"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// modelMap runs one model stage: items to tensors in the preset's declared
// contract, one plugin call per batch, tensors back to items (float32
// images stay float32 in the items, see item.Unpack).
type modelMap struct {
	kind   spec.Kind
	model  *pluginhost.Model
	preset *sdk.Preset
	step   item.Step
	// conform brings input items to the preset's declared size (nil:
	// items go as they come).
	conform *stages.Conformer
}

func (m *modelMap) Map(ctx context.Context, in []item.Item) ([]item.Item, []error) {
	out := make([]item.Item, len(in))
	errs := make([]error, len(in))
	idx := make([]int, 0, len(in))
	if m.conform != nil && m.needsImages() {
		in = slices.Clone(in) // the executor's slice stays as it was
	}
	// sizes[i] is input i's size before conform resized it (zero: it was
	// not resized), for restore.
	var sizes []image.Point
	if m.conform.Restores() {
		sizes = make([]image.Point, len(in))
	}
	for i := range in {
		if m.conform != nil && m.needsImages() {
			_, h, w, ok := in[i].Shape()
			before := in[i].Prov // Item adds a conform step exactly when it resizes
			if in[i], errs[i] = m.conform.Item(in[i]); errs[i] != nil {
				out[i] = in[i]
				continue
			}
			if sizes != nil && ok && len(in[i].Prov) != len(before) {
				sizes[i] = image.Pt(w, h)
			}
		}
		idx = append(idx, i)
	}
	if len(idx) > 0 {
		m.run(ctx, in, idx, out, errs)
	}
	for i, sz := range sizes {
		if errs[i] == nil && sz != (image.Point{}) {
			out[i], errs[i] = m.conform.Restore(out[i], sz.X, sz.Y)
		}
	}
	return out, errs
}

// run processes the items at positions idx. Items of different sizes go in
// separate calls (a tensor holds one shape). When a call fails, the batch is
// split in halves and retried, so one bad item (or one item that crashes
// the plugin) fails alone instead of taking its batch with it.
func (m *modelMap) run(ctx context.Context, in []item.Item, idx []int, out []item.Item, errs []error) {
	if m.needsImages() {
		groups := groupByShape(in, idx)
		if len(groups) > 1 {
			for _, g := range groups {
				m.run(ctx, in, g, out, errs)
			}
			return
		}
	}
	batch := make([]item.Item, len(idx))
	for k, i := range idx {
		batch[k] = in[i]
	}
	res, err := m.call(ctx, batch)
	if err == nil {
		for k, i := range idx {
			out[i] = res[k]
		}
		return
	}
	if len(idx) > 1 && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		h := len(idx) / 2
		m.run(ctx, in, idx[:h], out, errs)
		m.run(ctx, in, idx[h:], out, errs)
		return
	}
	for _, i := range idx {
		errs[i] = err
	}
}

func (m *modelMap) needsImages() bool {
	return m.kind != spec.Generate
}

// groupByShape splits positions into runs of items that can share a tensor.
func groupByShape(in []item.Item, idx []int) [][]int {
	type key struct{ w, h, c int }
	order := []key{}
	groups := map[key][]int{}
	for _, i := range idx {
		k := key{}
		if c, h, w, ok := in[i].Shape(); ok {
			k = key{w, h, c}
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	out := make([][]int, 0, len(order))
	for _, k := range order {
		out = append(out, groups[k])
	}
	return out
}

func seedsOf(items []item.Item) []uint64 {
	s := make([]uint64, len(items))
	for i, it := range items {
		s[i] = it.Seed
	}
	return s
}

func labelsOf(items []item.Item) []int {
	l := make([]int, len(items))
	any := false
	for i, it := range items {
		l[i] = it.Label
		any = any || it.Label >= 0
	}
	if !any {
		return nil
	}
	return l
}

// call makes one plugin call for a batch of same-shape items.
func (m *modelMap) call(ctx context.Context, items []item.Item) ([]item.Item, error) {
	var (
		t   *sdk.Tensor
		err error
	)
	switch m.kind {
	case spec.Generate:
		req := sdk.GenerateRequest{Seeds: seedsOf(items)}
		if m.preset != nil && m.preset.Classes > 0 {
			req.Labels = labelsOf(items)
		}
		if items[0].Latent != nil {
			parts := make([]*sdk.Tensor, len(items))
			for i, it := range items {
				if it.Latent == nil {
					return nil, fmt.Errorf("item %s has no latent to decode", it.Name)
				}
				parts[i] = it.Latent
			}
			if req.Latents, err = sdk.Concat(parts...); err != nil {
				return nil, err
			}
		}
		t, err = m.model.Generate(ctx, req)
	default:
		var want *sdk.ImageSpec
		if m.preset != nil {
			want = m.preset.Input
		}
		var in *sdk.Tensor
		if in, err = item.ToTensor(items, want); err != nil {
			return nil, err
		}
		b := &sdk.Batch{Tensor: in, Seeds: seedsOf(items), Labels: labelsOf(items)}
		switch m.kind {
		case spec.Encode:
			t, err = m.model.Encode(ctx, b)
		case spec.Translate:
			t, err = m.model.Translate(ctx, b)
		case spec.Denoise:
			t, err = m.model.Denoise(ctx, b)
		default:
			return nil, fmt.Errorf("stage kind %s is not a model capability", m.kind)
		}
	}
	if err != nil {
		return nil, err
	}
	if t.Len() != len(items) {
		return nil, fmt.Errorf("plugin returned %d items for %d", t.Len(), len(items))
	}
	for name, v := range t.Scores {
		if len(v) != len(items) {
			return nil, fmt.Errorf("plugin returned %d values of score %q for %d items", len(v), name, len(items))
		}
	}
	out := make([]item.Item, len(items))
	if m.emitsLatents() {
		for i, it := range items {
			lat := t.Slice(i, i+1)
			lat.Scores = nil // they travel in the item
			it.Latent, it.Image, it.Frames, it.Tensor = lat, nil, nil, nil
			out[i] = m.stamp(it, scoresOf(t, i))
		}
		return out, nil
	}
	var got *sdk.ImageSpec
	if m.preset != nil {
		got = m.preset.Output
	}
	// Float outputs stay float until a host stage or save needs pixels.
	if err := item.Unpack(items, t, got); err != nil {
		return nil, err
	}
	for i, it := range items {
		out[i] = m.stamp(it, scoresOf(t, i))
	}
	return out, nil
}

// scoresOf returns item i's scores in an answer (nil: none).
func scoresOf(t *sdk.Tensor, i int) map[string]float64 {
	if len(t.Scores) == 0 {
		return nil
	}
	s := make(map[string]float64, len(t.Scores))
	for name, v := range t.Scores {
		s[name] = v[i]
	}
	return s
}

// emitsLatents reports whether the stage's outputs are latents: encode's,
// and generate's when the preset's data are latents (latent diffusion).
// They stay the plugin's float32 vectors, never pixels.
func (m *modelMap) emitsLatents() bool {
	return m.kind == spec.Encode || m.kind == spec.Generate && m.preset != nil && m.preset.LatentData != nil
}

func (m *modelMap) stamp(it item.Item, scores map[string]float64) item.Item {
	st := m.step
	st.Seed = it.Seed
	st.Scores = scores
	return it.WithScores(scores).With(st)
}
