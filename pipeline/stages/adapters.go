package stages

import (
	"context"
	"fmt"
	"strconv"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/run"
)

// The adapters between the host stages and the executor: each host config
// makes its executor stage here.

// Task makes the load stage: the listing (cheap, in order) is its source,
// decoding runs on the workers.
func (c *LoadConfig) Task(env Env) (*run.Task, error) {
	l, err := c.Open(env.BaseDir)
	if err != nil {
		return nil, err
	}
	return &run.Task{Source: LoadSource{l}, Map: Decode{l, env.ID}, Workers: env.Workers}, nil
}

// Task makes the preprocess stage.
func (p *Preprocess) Task(env Env) (*run.Task, error) {
	return &run.Task{Map: PreprocessMap{p, env.ID}, Workers: env.Workers}, nil
}

// LoadSource lists a loader's files (cheaply, in order); [Decode] reads
// them on workers.
type LoadSource struct{ L *Loader }

// Items emits one item per entry, its image not yet decoded.
func (s LoadSource) Items(ctx context.Context, emit func(item.Item) error) error {
	return s.L.Enumerate(ctx, func(e Entry) error { return emit(listed(e)) })
}

// CountItems counts the loader's entries without listing them (see
// [Loader.Count]).
func (s LoadSource) CountItems(ctx context.Context) (int, error) { return s.L.Count(ctx) }

var _ run.Counter = LoadSource{}

// listed is the item of an entry, its image not yet decoded.
func listed(e Entry) item.Item {
	return item.Item{Index: e.Index, Name: e.Name, Source: e.Source, Label: e.Label, Raw: e}
}

// EntrySource emits entries a [Loader] listed earlier, Entries[i] for each
// i of Order in turn (e.g. one epoch's shuffle of a training set), for
// [Decode] to read. Items keep their entry's Index, so their seeds do not
// depend on the order.
type EntrySource struct {
	Entries []Entry
	Order   []int
}

// Items emits the entries in Order.
func (s EntrySource) Items(ctx context.Context, emit func(item.Item) error) error {
	for _, i := range s.Order {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(listed(s.Entries[i])); err != nil {
			return err
		}
	}
	return nil
}

// CountItems is the number of entries Items emits.
func (s EntrySource) CountItems(context.Context) (int, error) { return len(s.Order), nil }

var _ run.Counter = EntrySource{}

// Decode decodes the items a [LoadSource] listed.
type Decode struct {
	L     *Loader
	Stage string
}

// Map decodes each item's image.
func (d Decode) Map(_ context.Context, in []item.Item) ([]item.Item, []error) {
	return perItem(in, func(it item.Item) (item.Item, error) {
		e, ok := it.Raw.(Entry)
		if !ok {
			return it, fmt.Errorf("load: item %s was not listed by this stage", it.Name)
		}
		img, err := d.L.Decode(e)
		if err != nil {
			return it, err
		}
		it.Image, it.Raw = img, nil
		return it.With(item.Step{Stage: d.Stage, Kind: "load"}), nil
	})
}

// PreprocessMap applies a preprocess stage to items.
type PreprocessMap struct {
	P     *Preprocess
	Stage string
}

// Map preprocesses each item and records the step.
func (p PreprocessMap) Map(_ context.Context, in []item.Item) ([]item.Item, []error) {
	return perItem(in, func(it item.Item) (item.Item, error) {
		px, err := it.WithPixels()
		if err != nil {
			return it, err
		}
		out, err := p.P.ApplyItem(px)
		if err != nil {
			return it, err
		}
		return out.With(item.Step{Stage: p.Stage, Kind: "preprocess", Seed: it.Seed, Params: map[string]any{"ops": p.P.raw}}), nil
	})
}

// perItem applies fn to each item, collecting per-item errors.
func perItem(in []item.Item, fn func(item.Item) (item.Item, error)) ([]item.Item, []error) {
	out := make([]item.Item, len(in))
	errs := make([]error, len(in))
	for i, it := range in {
		out[i], errs[i] = fn(it)
	}
	return out, errs
}

// SaveSink writes items with a [Saver].
type SaveSink struct{ S *Saver }

// Done reports whether the item's outputs exist.
func (s SaveSink) Done(it item.Item) bool { return s.S.Done(it) }

// Write saves the item.
func (s SaveSink) Write(ctx context.Context, it item.Item) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	it, err := it.WithPixels()
	if err != nil {
		return err
	}
	return s.S.Write(it)
}

// Close writes the grid and animation.
func (s SaveSink) Close() error { return s.S.Close() }

// Files returns the files written and left unchanged (see [Saver.Files]).
func (s SaveSink) Files() (written, unchanged int) { return s.S.Files() }

var _ run.FileCounter = SaveSink{}

// CountSource makes the items of a generate stage with count: names are
// the zero-padded index, labels follow Labels (cycled) or, with Classes
// above 0, every class in turn (index modulo Classes) or, with Random,
// a class drawn per item.
type CountSource struct {
	Count   int
	Labels  []int
	Classes int
	// Random draws item i's label uniformly from Classes with a seed
	// derived from (Seed, Stage, i), so a label does not depend on the
	// batch, shard or worker that generates the item.
	Random bool
	Seed   uint64
	Stage  string
}

// CountItems is the number of items: generate knows it from the start.
func (s CountSource) CountItems(context.Context) (int, error) { return s.Count, nil }

var _ run.Counter = CountSource{}

// Items emits the Count items.
func (s CountSource) Items(ctx context.Context, emit func(item.Item) error) error {
	width := max(5, len(strconv.Itoa(s.Count-1)))
	for i := 0; i < s.Count; i++ {
		label := -1
		switch {
		case len(s.Labels) > 0:
			label = s.Labels[i%len(s.Labels)]
		case s.Random && s.Classes > 0:
			label = int(run.DeriveSeed(s.Seed, s.Stage+"/label", i) % uint64(s.Classes))
		case s.Classes > 0:
			label = i % s.Classes
		}
		if err := emit(item.Item{Index: i, Name: fmt.Sprintf("%0*d", width, i), Label: label}); err != nil {
			return err
		}
	}
	return nil
}
