package job

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/sdk"
)

// A preset that trains on several streams (sdk.Preset.TrainInputs) gets,
// beside each batch of its first role, a batch of every other role in
// sdk.Batch.Inputs. Each other role is a roleFeed: an endless sequence of
// its items, epoch after epoch of its own, read from a position derived
// from the global step so that a resumed run continues exactly.
//
// A paired role (pix2pix's target) uses the first role's order seed and has
// its count and names (checked when the data is opened), so its sequence is
// the first role's, item for item. An unpaired role (CycleGAN's domain B)
// draws its order from a seed of its own (the run's seed and the role's
// name), and its epochs are as long as its own count, so no item of A
// travels with a fixed partner: a CycleGAN never sees a pair.

// roleData is one other role's data.
type roleData struct {
	name   string
	paired bool
	d      *dataset
	// seed orders the role's epochs: the run's seed for a paired role (the
	// first role's order), a seed of the role's own otherwise.
	seed uint64
}

// roleSeed is the order seed of an unpaired role.
func roleSeed(seed uint64, role string) uint64 { return run.DeriveSeed(seed, "train-role:"+role, 0) }

// openRoles lists the data of the preset's roles after the first, for the
// training (eval false) or held-out data, and checks that paired roles
// match the first role's items.
func openRoles(ctx context.Context, p *plan.Plan, first *dataset, eval bool, workers int, models *trainModels) ([]*roleData, error) {
	tr := p.Train
	var out []*roleData
	for _, r := range tr.Roles[1:] {
		id, key := r.Input, "train.inputs."+r.Name
		if eval {
			id, key = r.Eval, "train.eval_inputs."+r.Name
		}
		spec := r.Image
		if spec == nil && tr.PresetSpec != nil {
			spec = tr.PresetSpec.Input
		}
		d, err := newDataset(ctx, p, id, spec, workers, models)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		rd := &roleData{name: r.Name, paired: r.Paired, d: d, seed: roleSeed(p.Seed, r.Name)}
		if r.Paired {
			rd.seed = p.Seed
			if err := checkPaired(first, d); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
		}
		out = append(out, rd)
	}
	return out, nil
}

// checkPaired checks that two datasets list the same images: the same
// count and, item by item, the same names.
func checkPaired(a, b *dataset) error {
	n := min(a.Len(), b.Len())
	for i := range n {
		if x, y := a.entries[i].Name, b.entries[i].Name; x != y {
			return fmt.Errorf("item %d of stage %q is %q (%s), of stage %q %q (%s): paired stages must list the same names in the same order",
				i, a.stage, x, a.entries[i].Source, b.stage, y, b.entries[i].Source)
		}
	}
	if a.Len() != b.Len() {
		// The first unmatched file is the longer side's first extra one.
		long, short := a, b
		if b.Len() > a.Len() {
			long, short = b, a
		}
		e := long.entries[n]
		return fmt.Errorf("stage %q has %d images, paired with stage %q's %d: %q (%s) has no pair in stage %q",
			b.stage, b.Len(), a.stage, a.Len(), e.Name, e.Source, short.stage)
	}
	return nil
}

// roleFeed hands out one other role's items in batches.
type roleFeed struct {
	r       *roleData
	shuffle bool
	ctx     context.Context // the producer's, which the streams run under
	window  int
	pos     int // items handed out from the start of training
	s       *stream
	left    int // items left in s's epoch
}

func newRoleFeed(ctx context.Context, r *roleData, shuffle bool, pos, window int) *roleFeed {
	return &roleFeed{r: r, shuffle: shuffle, ctx: ctx, pos: pos, window: window}
}

// next returns the role's next n items (crossing into its next epoch when
// its items run out).
func (f *roleFeed) next(ctx context.Context, n int) (*sdk.Batch, []string, error) {
	var parts []*sdk.Batch
	var sources []string
	for got := 0; got < n; {
		if f.s == nil || f.left == 0 {
			f.close()
			e, off := f.pos/f.r.d.Len(), f.pos%f.r.d.Len()
			idx := order(f.r.d.Len(), f.shuffle, f.r.seed, e)[off:]
			f.s = f.r.d.stream(f.ctx, idx, epochSeed(f.r.seed, e), f.window)
			f.left = len(idx)
		}
		k := min(n-got, f.left)
		b, err := f.s.batch(ctx, k)
		if err != nil {
			f.close()
			return nil, nil, err
		}
		parts = append(parts, b)
		sources = append(sources, f.s.sources...)
		got, f.left, f.pos = got+k, f.left-k, f.pos+k
	}
	b, err := joinBatches(parts)
	return b, sources, err
}

func (f *roleFeed) close() {
	if f.s != nil {
		f.s.close()
		f.s = nil
	}
}

// joinBatches concatenates batches of one role.
func joinBatches(parts []*sdk.Batch) (*sdk.Batch, error) {
	if len(parts) == 1 {
		return parts[0], nil
	}
	ts := make([]*sdk.Tensor, len(parts))
	out := &sdk.Batch{}
	labels := true
	for i, p := range parts {
		ts[i] = p.Tensor
		out.Seeds = append(out.Seeds, p.Seeds...)
		labels = labels && p.Labels != nil
		out.Labels = append(out.Labels, p.Labels...)
	}
	if !labels {
		out.Labels = nil
	}
	t, err := sdk.Concat(ts...)
	if err != nil {
		return nil, err
	}
	out.Tensor = t
	return out, nil
}

// addRoles fills b.Inputs with the other roles' next len(b) items, and
// checks a paired role's sizes against the first role's (sources are the
// first role's files, to name them).
func addRoles(ctx context.Context, b *sdk.Batch, sources []string, roles []*roleFeed) error {
	for _, f := range roles {
		o, osrc, err := f.next(ctx, b.Len())
		if err != nil {
			return fmt.Errorf("role %s: %w", f.r.name, err)
		}
		if f.r.paired && !sameDims(o.Shape[1:], b.Shape[1:]) {
			a, c := "", ""
			if len(sources) > 0 && len(osrc) > 0 {
				a, c = sources[0], osrc[0]
			}
			return fmt.Errorf("role %s: %s is %v, its pair %s is %v: paired images must have one height and width (conform both stages)", f.r.name, c, o.Shape[1:], a, b.Shape[1:])
		}
		if b.Inputs == nil {
			b.Inputs = map[string]*sdk.Batch{}
		}
		b.Inputs[f.r.name] = o
	}
	return nil
}

func sameDims(a, b []int) bool {
	// Height and width must agree; channels may differ (an edge map, gray,
	// paired with its colour photo), as the preset declares per role.
	if len(a) < 2 || len(b) < 2 {
		return len(a) == len(b)
	}
	return slices.Equal(a[len(a)-2:], b[len(b)-2:])
}

// itemsBefore is the number of items of the first role handed out before
// global step step: whole epochs of items, then full batches (only an
// epoch's last batch is short).
func itemsBefore(step, items, batch int) int {
	per := stepsPerEpoch(items, batch)
	return step/per*items + step%per*batch
}

// evalRoles gives the held-out batches of the other roles: each pass
// starts every role at its first item, in load order (paired roles match
// the first role item for item; unpaired ones wrap around if shorter).
type evalRoles struct {
	ctx    context.Context
	roles  []*roleData
	window int
	feeds  []*roleFeed
}

func (e *evalRoles) wrap(first func(context.Context) (*sdk.Batch, error), sources func() []string) func(context.Context) (*sdk.Batch, error) {
	return func(ctx context.Context) (*sdk.Batch, error) {
		if e.feeds == nil {
			for _, r := range e.roles {
				e.feeds = append(e.feeds, newRoleFeed(e.ctx, r, false, 0, e.window))
			}
		}
		b, err := first(ctx)
		if err == io.EOF {
			e.close()
			return nil, err
		}
		if err != nil {
			return nil, err
		}
		if err := addRoles(ctx, b, sources(), e.feeds); err != nil {
			return nil, err
		}
		return b, nil
	}
}

// close ends the pass: the next starts every role at its first item.
func (e *evalRoles) close() {
	for _, f := range e.feeds {
		f.close()
	}
	e.feeds = nil
}
