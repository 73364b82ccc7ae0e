package job

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// dataset is the items of one train data stage (a load stage, or a chain
// of preprocess stages starting at one), addressable by index: the load's
// entries are listed once (file names and labels; idx records keep their
// pixels), and images are decoded and preprocessed only when a batch asks
// for them, so a large folder is never held decoded in memory.
type dataset struct {
	stage   string // the stage named in train.input or train.eval
	loadID  string
	source  map[string]any // the load's parameters that say what it reads
	loader  *stages.Loader
	chain   []preStage // preprocess stages, load side first
	entries []stages.Entry
	spec    *sdk.ImageSpec // the preset's input contract (nil: natural)
	workers int
	labels  bool // some entry has a label
}

type preStage struct {
	id string
	p  *stages.Preprocess
}

// newDataset lists the items of stage id of p.
func newDataset(ctx context.Context, p *plan.Plan, id string, spec *sdk.ImageSpec, workers int) (*dataset, error) {
	d := &dataset{stage: id, spec: spec, workers: max(1, workers)}
	n := p.Stage(id)
	for n != nil && n.Kind == "preprocess" {
		pp, ok := n.Config.(*stages.Preprocess)
		if !ok {
			return nil, fmt.Errorf("stage %q: not a checked preprocess stage", n.ID)
		}
		d.chain = append([]preStage{{n.ID, pp}}, d.chain...)
		// The planner checked that training reads one chain of
		// preprocess stages (plan's trainData): each reads one stage.
		n = p.Stage(n.Inputs[0])
	}
	if n == nil || n.Kind != "load" {
		return nil, fmt.Errorf("stage %q: training data must come from a load stage", id)
	}
	lc, ok := n.Config.(*stages.LoadConfig)
	if !ok {
		return nil, fmt.Errorf("stage %q: not a checked load stage", n.ID)
	}
	params := map[string]any(lc.Values)
	l, err := lc.Open(p.BaseDir)
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", n.ID, err)
	}
	d.loader, d.loadID = l, n.ID
	d.source = map[string]any{}
	var what string
	for _, k := range []string{"dir", "glob", "list", "idx", "idx_labels", "labels", "limit"} {
		dir, _ := params["dir"].(string)
		if v, ok := params[k]; ok && v != "" && v != 0 && (k != "glob" || dir != "") {
			d.source[k] = v
		}
		if k == "dir" || k == "list" || k == "idx" {
			if s := stages.Values(params).String(k); s != "" {
				what = fmt.Sprintf("%s %q", k, s)
			}
		}
	}
	err = l.Enumerate(ctx, func(e stages.Entry) error {
		d.entries = append(d.entries, e)
		d.labels = d.labels || e.Label >= 0
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", n.ID, err)
	}
	if len(d.entries) == 0 {
		return nil, fmt.Errorf("stage %q: %s holds no images", n.ID, what)
	}
	return d, nil
}

// Len is the number of items.
func (d *dataset) Len() int { return len(d.entries) }

// batch decodes and preprocesses the items at idx (on d.workers
// goroutines) and packs them in the preset's tensor contract, with labels
// and per-item seeds derived from seed. Seeded preprocess ops (noise) draw
// from (seed, stage id, item index), as in a run, with seed varied per
// epoch by the caller.
func (d *dataset) batch(ctx context.Context, idx []int, seed uint64) (*sdk.Batch, error) {
	items := make([]item.Item, len(idx))
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < min(d.workers, len(idx)); w++ {
		wg.Go(func() {
			for k := range work {
				items[k], errs[k] = d.item(d.entries[idx[k]], seed)
			}
		})
	}
	for k := range idx {
		if ctx.Err() != nil {
			break
		}
		work <- k
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	t, err := item.ToTensor(items, d.spec)
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", d.stage, err)
	}
	b := &sdk.Batch{Tensor: t, Seeds: make([]uint64, len(items))}
	for k, it := range items {
		b.Seeds[k] = run.DeriveSeed(seed, "train", it.Index)
	}
	if d.labels {
		b.Labels = make([]int, len(items))
		for k, it := range items {
			b.Labels[k] = it.Label
		}
	}
	return b, nil
}

func (d *dataset) item(e stages.Entry, seed uint64) (item.Item, error) {
	it, err := d.loader.Item(e)
	if err != nil {
		return it, fmt.Errorf("stage %q: item %d %q: %w", d.loadID, e.Index, e.Name, err)
	}
	for _, ps := range d.chain {
		it.Seed = run.DeriveSeed(seed, ps.id, it.Index)
		if it, err = ps.p.ApplyItem(it); err != nil {
			return it, fmt.Errorf("stage %q: %w", ps.id, err)
		}
	}
	return it, nil
}

// order returns the item indices of one epoch: load order, or a shuffle
// derived from (seed, epoch) alone. The shuffle is Fisher-Yates over a PCG
// stream with a multiply-shift bound, spelled out here so that the order
// never changes with the Go version.
func order(n int, shuffle bool, seed uint64, epoch int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if !shuffle {
		return idx
	}
	r := rand.NewPCG(seed, 0x7261696e^uint64(epoch)) // "rain", to differ from other streams
	for i := n - 1; i > 0; i-- {
		j, _ := bits.Mul64(r.Uint64(), uint64(i+1))
		idx[i], idx[j] = idx[j], idx[i]
	}
	return idx
}

// stepsPerEpoch is the number of batches of an epoch (the last one may be
// smaller).
func stepsPerEpoch(items, batch int) int { return (items + batch - 1) / batch }

// feed streams the training batches from a position on, prefetching a
// couple of batches on a goroutine so that decoding overlaps the plugin's
// step. Next hands them out in order and counts them; feed stops at ctx's
// end or after the last epoch.
type feed struct {
	ch   chan feedBatch
	stop context.CancelFunc
	done chan struct{}

	mu     sync.Mutex
	step   int // batches handed out, from the start of training
	items  int // items handed out by this process
	failed error
}

type feedBatch struct {
	b   *sdk.Batch
	err error
}

// ahead is how many batches are prepared before the plugin asks.
const ahead = 2

// newFeed starts producing batches at global step start.
func newFeed(ctx context.Context, d *dataset, batch, epochs int, shuffle bool, seed uint64, start int) *feed {
	ctx, cancel := context.WithCancel(ctx)
	f := &feed{ch: make(chan feedBatch, ahead), stop: cancel, done: make(chan struct{}), step: start}
	per := stepsPerEpoch(d.Len(), batch)
	go func() {
		defer close(f.done)
		defer close(f.ch)
		for e := start / per; e < epochs; e++ {
			idx := order(d.Len(), shuffle, seed, e)
			es := epochSeed(seed, e)
			first := 0
			if e == start/per {
				first = start % per
			}
			for s := first; s < per; s++ {
				b, err := d.batch(ctx, idx[s*batch:min((s+1)*batch, len(idx))], es)
				select {
				case f.ch <- feedBatch{b, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}
	}()
	return f
}

// epochSeed is the seed of one epoch's per-item randomness, so noise
// augmentation differs between epochs yet is reproducible.
func epochSeed(seed uint64, epoch int) uint64 { return run.DeriveSeed(seed, "train-epoch", epoch) }

// Next is the plugin's data source (client.Client.Train's next).
func (f *feed) Next(ctx context.Context) (*sdk.Batch, error) {
	select {
	case fb, ok := <-f.ch:
		if !ok {
			return nil, io.EOF
		}
		if fb.err != nil {
			f.mu.Lock()
			f.failed = fb.err
			f.mu.Unlock()
			return nil, fb.err
		}
		f.mu.Lock()
		f.step++
		f.items += fb.b.Len()
		f.mu.Unlock()
		return fb.b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// position returns the batches handed out from the start of training, and
// the items handed out by this process.
func (f *feed) position() (step, items int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.step, f.items
}

// close stops the producer and waits for it.
func (f *feed) close() {
	f.stop()
	for range f.ch {
	}
	<-f.done
}

// evalSource hands out the held-out data in load order, one pass at a
// time: io.EOF ends a pass, and the next call starts another. Its items
// get the same seeds in every pass.
type evalSource struct {
	d     *dataset
	batch int
	seed  uint64

	mu  sync.Mutex
	pos int
}

// Eval is sdk.TrainRequest.Eval.
func (e *evalSource) Eval(ctx context.Context) (*sdk.Batch, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pos >= e.d.Len() {
		e.pos = 0
		return nil, io.EOF
	}
	end := min(e.pos+e.batch, e.d.Len())
	idx := make([]int, 0, end-e.pos)
	for i := e.pos; i < end; i++ {
		idx = append(idx, i)
	}
	b, err := e.d.batch(ctx, idx, e.seed)
	if err != nil {
		return nil, err
	}
	e.pos = end
	return b, nil
}
