package job

import (
	"context"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"path/filepath"
	"sync"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// dataset is the items of one train data stage (a load stage, or a chain
// of stages that starts at one: preprocess, encode, translate, denoise),
// addressable by index: the load's entries are listed once (file names
// and labels; idx records keep their pixels), and the executor decodes,
// preprocesses and runs the chain's models on them as a run does, a
// batch ahead of the batch being packed (see stream), so a large folder
// is never held decoded in memory.
type dataset struct {
	stage   string // the stage named in train.input or train.eval
	loadID  string
	source  map[string]any // the load's parameters that say what it reads
	loader  *stages.Loader
	chain   []chainStage // the stages after the load, load side first
	entries []stages.Entry
	spec    *sdk.ImageSpec // the preset's input contract (nil: natural)
	// latent is the preset's latent data (nil: it trains on images): the
	// chain's items are then latents of this space, packed as float32
	// N x Dim.
	latent  *sdk.LatentSpec
	workers int
	labels  bool // some entry has a label
	// window is the fewest items the stream must let ahead of the reader
	// for the chain's model stages to fill their batches.
	window int
}

// chainStage is one stage of a dataset's chain after its load: a
// preprocess stage (pre) or a model stage (model, a template task whose
// Map calls the model loaded once for the whole training).
type chainStage struct {
	id    string
	kind  string
	pre   *stages.Preprocess
	model *run.Task
}

// newDataset lists the items of stage id of p; the model stages of its
// chain are loaded through models.
func newDataset(ctx context.Context, p *plan.Plan, id string, spec *sdk.ImageSpec, workers int, models *trainModels) (*dataset, error) {
	d := &dataset{stage: id, spec: spec, workers: max(1, workers)}
	if tr := p.Train; tr != nil && tr.PresetSpec != nil {
		d.latent = tr.PresetSpec.LatentData
	}
	n := p.Stage(id)
	for n != nil && n.Kind != "load" {
		cs := chainStage{id: n.ID, kind: string(n.Kind)}
		switch {
		case n.Kind == "preprocess":
			pp, ok := n.Config.(*stages.Preprocess)
			if !ok {
				return nil, fmt.Errorf("stage %q: not a checked preprocess stage", n.ID)
			}
			cs.pre = pp
		case n.Model != nil && len(n.Inputs) == 1:
			if models == nil {
				return nil, fmt.Errorf("stage %q: a model stage in training data needs its model loaded", n.ID)
			}
			t, err := models.task(ctx, n)
			if err != nil {
				return nil, fmt.Errorf("stage %q: %w", n.ID, err)
			}
			cs.model = t
			d.window = max(d.window, max(t.Batch, 1)*max(t.Workers, 1))
		default:
			return nil, fmt.Errorf("stage %q: a %s stage cannot feed training", n.ID, n.Kind)
		}
		d.chain = append([]chainStage{cs}, d.chain...)
		// The planner checked that training reads one chain of stages
		// (plan's trainData): each reads one stage.
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
	for _, k := range []string{"dir", "glob", "list", "idx", "idx_labels", "typeset", "labels", "limit"} {
		dir, _ := params["dir"].(string)
		if v, ok := params[k]; ok && v != nil && v != "" && v != 0 && (k != "glob" || dir != "") {
			d.source[k] = v
		}
		if k == "typeset" && params["typeset"] != nil {
			what = "typeset"
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

// trainModels loads the models of the model stages in a training's data
// chains, once for the whole training (every epoch's executor run, the
// held-out passes and the other roles share them), as a run's builder
// does, and closes them when the training ends.
type trainModels struct {
	b     *builder
	tasks map[string]*run.Task // by stage id
}

func newTrainModels(p *plan.Plan, m *pluginhost.Host) *trainModels {
	return &trainModels{
		b:     &builder{plan: p, m: m, opt: Options{ModelWorkers: 2}, mu: &sync.Mutex{}, hashes: map[string]string{}},
		tasks: map[string]*run.Task{},
	}
}

// task returns the template task of model stage pn, loading its model the
// first time.
func (tm *trainModels) task(ctx context.Context, pn *plan.Stage) (*run.Task, error) {
	if t, ok := tm.tasks[pn.ID]; ok {
		return t, nil
	}
	t, err := tm.b.modelNode(ctx, pn)
	if err != nil {
		return nil, err
	}
	tm.tasks[pn.ID] = t
	return t, nil
}

// close unloads the models (the host closes the plugins).
func (tm *trainModels) close() { tm.b.close() }

// Len is the number of items.
func (d *dataset) Len() int { return len(d.entries) }

// models lists the model stages of the chain, load side first, for the
// record in the weights' metadata (nil: none).
func (d *dataset) models() []map[string]any {
	var out []map[string]any
	for _, cs := range d.chain {
		if cs.model == nil {
			continue
		}
		if mm, ok := cs.model.Map.(*modelMap); ok {
			m := map[string]any{"stage": cs.id, "kind": cs.kind, "model": mm.step.Plugin, "version": mm.step.Version}
			if mm.step.Preset != "" {
				m["preset"] = mm.step.Preset
			}
			if mm.step.Weights != "" {
				m["weights"] = filepath.Base(mm.step.Weights)
			}
			if len(mm.step.Params) > 0 {
				m["params"] = map[string]any(mm.step.Params)
			}
			out = append(out, m)
		}
	}
	return out
}

// stream reads the items idx of d, in that order, through the executor:
// the load stage's [stages.Decode], then the chain's stages (preprocess
// as [stages.PreprocessMap] on d.workers workers, model stages through
// their loaded models), as a run does, with seeded stages (noise, a
// model's per-item seed) drawing from (seed, stage id, item index), so
// that an item's result depends neither on its position nor on the items
// beside it. At most window items (more when a model stage batches more)
// are in flight ahead of the reader.
func (d *dataset) stream(ctx context.Context, idx []int, seed uint64, window int) *stream {
	ctx, cancel := context.WithCancel(ctx)
	// A model stage waits for a full batch (or the end): a window below
	// its batch would wait on the reader, who waits on it.
	o := run.NewOrdered(max(window, d.window))
	load := &run.Task{ID: d.loadID, Kind: "load", Workers: d.workers,
		Source: o.Source(stages.EntrySource{Entries: d.entries, Order: idx}),
		Map:    stages.Decode{L: d.loader, Stage: d.loadID}}
	tasks := []*run.Task{load}
	for _, cs := range d.chain {
		prev := tasks[len(tasks)-1:]
		if cs.model != nil {
			// A fresh task per run (the executor owns its wiring), sharing
			// the loaded model.
			m := cs.model
			tasks = append(tasks, &run.Task{ID: cs.id, Kind: cs.kind, Inputs: prev, Map: m.Map, Batch: m.Batch, Workers: m.Workers})
			continue
		}
		tasks = append(tasks, &run.Task{ID: cs.id, Kind: "preprocess", Workers: d.workers,
			Inputs: prev, Map: stages.PreprocessMap{P: cs.pre, Stage: cs.id}})
	}
	tasks = append(tasks, &run.Task{ID: "train", Kind: "train", Inputs: tasks[len(tasks)-1:], Sink: o.Sink()})
	s := &stream{d: d, o: o, seed: seed, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		res, err := run.Execute(ctx, tasks, run.Options{Seed: seed, Overwrite: true})
		switch {
		case err != nil:
		case res.Interrupted:
			err = ctx.Err()
		case len(res.Failures) > 0:
			err = d.failure(res.Failures[0])
		}
		o.Finish(err)
	}()
	return s
}

// failure is the error of an item that failed to load, preprocess or go
// through a model.
func (d *dataset) failure(f run.Failure) error {
	if f.Stage == d.loadID {
		return fmt.Errorf("stage %q: item %d %q: %w", f.Stage, f.Index, f.Item, f.Err)
	}
	return fmt.Errorf("stage %q: %w", f.Stage, f.Err)
}

// pack makes the batch tensor of items: the preset's image contract, or,
// for a preset whose data are latents, the items' latents as float32
// N x Dim with the space set, exactly as the encoder made them.
func (d *dataset) pack(items []item.Item) (*sdk.Tensor, error) {
	if d.latent == nil {
		return item.ToTensor(items, d.spec)
	}
	want := d.latent
	parts := make([]*sdk.Tensor, len(items))
	for i := range items {
		it := &items[i]
		l := it.Latent
		switch {
		case l == nil:
			return nil, fmt.Errorf("item %d %q has no latent: the preset trains on latents of space %q", it.Index, it.Name, want.Space)
		case l.DType != sdk.Float32:
			return nil, fmt.Errorf("item %d %q: latent of dtype %s, expected float32", it.Index, it.Name, l.DType)
		case len(l.Shape) != 2 || l.Shape[0] != 1 || l.Shape[1] != want.Dim || l.Space != want.Space:
			return nil, fmt.Errorf("item %d %q: latent %v of space %q, expected [1 %d] of space %q", it.Index, it.Name, l.Shape, l.Space, want.Dim, want.Space)
		}
		parts[i] = l
	}
	return sdk.Concat(parts...)
}

// stream is the items of a dataset in a given order, read by the executor.
type stream struct {
	d *dataset
	// sources are the files of the items of the last batch.
	sources []string
	o       *run.Ordered
	seed    uint64
	cancel  context.CancelFunc
	done    chan struct{}
}

// batch takes the next n items and packs them in the preset's tensor
// contract (see pack), with labels and per-item seeds derived from the
// stream's seed.
func (s *stream) batch(ctx context.Context, n int) (*sdk.Batch, error) {
	items := make([]item.Item, 0, n)
	for len(items) < n {
		it, err := s.o.Next(ctx)
		if err == io.EOF {
			err = fmt.Errorf("stage %q: the items ended after %d of a batch of %d", s.d.stage, len(items), n)
		}
		if err != nil {
			return nil, err
		}
		items = append(items, it)
	}
	s.sources = s.sources[:0]
	for _, it := range items {
		s.sources = append(s.sources, it.Source)
	}
	t, err := s.d.pack(items)
	if err != nil {
		return nil, fmt.Errorf("stage %q: %w", s.d.stage, err)
	}
	b := &sdk.Batch{Tensor: t, Seeds: make([]uint64, len(items))}
	for k, it := range items {
		b.Seeds[k] = run.DeriveSeed(s.seed, "train", it.Index)
	}
	if s.d.labels {
		b.Labels = make([]int, len(items))
		for k, it := range items {
			b.Labels[k] = it.Label
		}
	}
	return b, nil
}

// close stops the executor and waits for it.
func (s *stream) close() {
	s.cancel()
	<-s.done
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
// couple of batches on a goroutine (an executor run per epoch) so that
// decoding overlaps the plugin's step. Next hands them out in order and counts them; feed stops at ctx's
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

// newFeed starts producing batches at global step start, with the
// batches of the other roles (if any) in each batch's Inputs.
func newFeed(ctx context.Context, d *dataset, roles []*roleData, batch, epochs int, shuffle bool, seed uint64, start int) *feed {
	ctx, cancel := context.WithCancel(ctx)
	f := &feed{ch: make(chan feedBatch, ahead), stop: cancel, done: make(chan struct{}), step: start}
	per := stepsPerEpoch(d.Len(), batch)
	var others []*roleFeed
	for _, r := range roles {
		others = append(others, newRoleFeed(ctx, r, shuffle, itemsBefore(start, d.Len(), batch), batch))
	}
	go func() {
		defer close(f.done)
		defer close(f.ch)
		defer func() {
			for _, o := range others {
				o.close()
			}
		}()
		for e := start / per; e < epochs; e++ {
			first := 0
			if e == start/per {
				first = start % per
			}
			// One executor run per epoch (from the resumed batch on),
			// decoding at most a batch ahead of the batch being packed.
			idx := order(d.Len(), shuffle, seed, e)[first*batch:]
			s := d.stream(ctx, idx, epochSeed(seed, e), batch)
			for k := 0; k < len(idx); k += batch {
				b, err := s.batch(ctx, min(batch, len(idx)-k))
				if err == nil && len(others) > 0 {
					err = addRoles(ctx, b, s.sources, others)
				}
				select {
				case f.ch <- feedBatch{b, err}:
				case <-ctx.Done():
					s.close()
					return
				}
				if err != nil {
					s.close()
					return
				}
			}
			s.close()
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
	ctx   context.Context // the training's, which the passes' executor runs under
	d     *dataset
	batch int
	seed  uint64

	mu  sync.Mutex
	pos int
	s   *stream // the pass under way from pos, if any
	// sources are the files of the last batch's items.
	sources []string
}

// Eval is sdk.TrainRequest.Eval.
func (e *evalSource) Eval(ctx context.Context) (*sdk.Batch, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pos >= e.d.Len() {
		e.pos = 0
		e.stop()
		return nil, io.EOF
	}
	if e.s == nil {
		e.s = e.d.stream(e.ctx, order(e.d.Len(), false, 0, 0)[e.pos:], e.seed, e.batch)
	}
	n := min(e.batch, e.d.Len()-e.pos)
	b, err := e.s.batch(ctx, n)
	if err != nil {
		e.stop() // a later call reads this batch again
		return nil, err
	}
	e.sources = append(e.sources[:0], e.s.sources...)
	e.pos += n
	return b, nil
}

// stop ends the pass's executor, if one runs.
func (e *evalSource) stop() {
	if e.s != nil {
		e.s.close()
		e.s = nil
	}
}

// close ends the pass under way.
func (e *evalSource) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stop()
}
