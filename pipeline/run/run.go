package run

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/genpipe/genpipe/pipeline/item"
)

// Policy says what a job does when an item fails.
type Policy int

// Error policies. Either way the Result lists every failed item.
const (
	// Stop ends the job at the first failure (the default).
	Stop Policy = iota
	// Skip drops the failed item and goes on.
	Skip
)

// Options configure a job.
type Options struct {
	// Seed is the pipeline seed from which per-item seeds are derived.
	Seed uint64
	// ShardIndex and ShardCount select the items with
	// Index % ShardCount == ShardIndex (ShardCount <= 1: all items).
	ShardIndex, ShardCount int
	// Select, when set, keeps only the source items it returns true for
	// (by source stage id and item index): a queue worker runs the items
	// of the messages it pulled.
	Select func(stage string, index int) bool
	// SelectLast, with Select, is the highest index Select accepts for a
	// source stage: sources list in increasing index order, so the listing
	// stops past it instead of running to the end for every batch.
	SelectLast func(stage string) int
	// OnError is the error policy.
	OnError Policy
	// Overwrite rewrites outputs that already exist; otherwise items whose
	// outputs all exist are skipped at their source (resume).
	Overwrite bool
	// Progress, when set, receives events; it is never called concurrently.
	Progress func(Event)
	// Buffer is the capacity of each channel between stages (<= 0: 8).
	// Memory stays bounded by it, not by the number of items.
	Buffer int
}

// Event is a progress event.
type Event struct {
	Time time.Time `json:"time"`
	// Type is one of "item" (an item passed a stage), "fail", "skip" (outputs
	// already exist), "drop" (the stage's keep filtered the item out),
	// "total" (a source finished listing), "stage-done".
	Type  string `json:"type"`
	Stage string `json:"stage"`
	Kind  string `json:"kind"`
	Item  string `json:"item,omitempty"`
	// Source is the item's source file, if any, so that a "fail" event
	// names the file to look at.
	Source string `json:"source,omitempty"`
	// Done, Failed and Skipped count this stage's items so far.
	Done    int `json:"done"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped,omitempty"`
	Dropped int `json:"dropped,omitempty"`
	// Total is the number of items of a source, in this shard, for Type
	// "total". A source that can count its items ([Counter]) reports the
	// count as soon as it is known, before its first item when the count
	// is quick; every source reports the number it listed when its
	// listing ends. Items a resume skips are in the total: they come as
	// "skip" events.
	Total int    `json:"total,omitempty"`
	Error string `json:"error,omitempty"`
	// Sink is true for stages that write outputs.
	Sink bool `json:"sink,omitempty"`
}

// Failure is one failed item.
type Failure struct {
	Stage  string
	Index  int
	Item   string
	Source string
	Err    error
}

func (f Failure) String() string {
	name := f.Item
	if f.Source != "" {
		name = f.Source
	}
	return fmt.Sprintf("stage %q: item %d (%s): %v", f.Stage, f.Index, name, f.Err)
}

// Result summarises a job.
type Result struct {
	// Written counts the files written: what a [FileCounter] sink reports,
	// else one per item and sink. Unchanged counts files [FileCounter]
	// sinks left as they were. Skipped counts items skipped at a sink
	// because their outputs existed already, once per item and sink (for
	// a save of images: the image files kept).
	Written, Unchanged, Skipped int
	// Dropped counts the items a stage's Keep filtered out.
	Dropped int
	// Failures lists every failed item, ordered by stage then index.
	Failures []Failure
	// Interrupted is true when the context was cancelled before the end.
	Interrupted bool
	// Stopped is true when the Stop policy ended the job early.
	Stopped bool
}

// ErrStopped is returned by emit when the job is stopping.
var ErrStopped = errors.New("job stopping")

type job struct {
	opt    Options
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	res      Result
	counts   map[*Task]*Event
	stopped  bool
	progress func(Event)
	// sourceErr holds job-level errors of sources (set by their goroutines,
	// read after all goroutines end).
	sourceErr map[*Task]error
	// listed marks the sources whose listing ended: a count arriving
	// later is stale.
	listed map[*Task]bool
}

// Execute executes the graph. nodes must be in topological order (inputs before
// consumers). It returns when every item has been written or failed, or the
// job stopped; the error is non-nil only for failures of the job itself
// (a source that cannot list, a sink that cannot finish), not of items.
func Execute(ctx context.Context, nodes []*Task, opt Options) (*Result, error) {
	if opt.Buffer <= 0 {
		opt.Buffer = 8
	}
	if opt.ShardCount > 1 && (opt.ShardIndex < 0 || opt.ShardIndex >= opt.ShardCount) {
		return nil, fmt.Errorf("run: shard %d/%d out of range", opt.ShardIndex, opt.ShardCount)
	}
	pos := map[*Task]int{}
	for i, n := range nodes {
		for _, in := range n.Inputs {
			p, ok := pos[in]
			if !ok || p >= i {
				return nil, fmt.Errorf("run: stage %q: input %q is not before it", n.ID, in.ID)
			}
			if in.Sink != nil {
				return nil, fmt.Errorf("run: stage %q: input %q is a sink", n.ID, in.ID)
			}
		}
		if n.Source == nil && len(n.Inputs) == 0 {
			return nil, fmt.Errorf("run: stage %q has neither a source nor inputs", n.ID)
		}
		pos[n] = i
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	j := &job{opt: opt, ctx: jctx, cancel: cancel, counts: map[*Task]*Event{}, progress: opt.Progress, sourceErr: map[*Task]error{}, listed: map[*Task]bool{}}
	for _, n := range nodes {
		j.counts[n] = &Event{Stage: n.ID, Kind: n.Kind, Sink: n.Sink != nil}
	}

	// One output channel per (producer, consumer) edge.
	outs := map[*Task][]chan item.Item{}
	ins := map[*Task][]chan item.Item{}
	for _, n := range nodes {
		for _, in := range n.Inputs {
			ch := make(chan item.Item, opt.Buffer)
			outs[in] = append(outs[in], ch)
			ins[n] = append(ins[n], ch)
		}
	}
	sinksOf := reachableSinks(nodes)

	var wg sync.WaitGroup
	for _, n := range nodes {
		n := n
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				for _, ch := range outs[n] {
					close(ch)
				}
			}()
			var in <-chan item.Item
			if n.Source != nil {
				in = j.source(n, sinksOf[n])
			} else {
				in = j.merge(ins[n])
			}
			if n.Sink != nil {
				j.sink(n, in)
				return
			}
			j.process(n, in, outs[n])
		}()
	}
	wg.Wait()

	var jobErr error
	interrupted := ctx.Err() != nil
	if !interrupted && !j.stopped {
		for _, n := range nodes {
			if n.Sink == nil {
				continue
			}
			if err := n.Sink.Close(); err != nil {
				jobErr = errors.Join(jobErr, fmt.Errorf("stage %q: %w", n.ID, err))
			}
		}
	}
	for _, n := range nodes {
		if fc, ok := n.Sink.(FileCounter); ok {
			w, u := fc.Files()
			j.res.Written += w
			j.res.Unchanged += u
		}
	}
	for _, n := range nodes {
		if err := j.sourceErr[n]; err != nil {
			jobErr = errors.Join(jobErr, err)
		}
	}
	res := j.res
	res.Interrupted = interrupted
	res.Stopped = j.stopped && !interrupted
	order := map[string]int{}
	for i, n := range nodes {
		order[n.ID] = i
	}
	sort.SliceStable(res.Failures, func(a, b int) bool {
		fa, fb := res.Failures[a], res.Failures[b]
		if order[fa.Stage] != order[fb.Stage] {
			return order[fa.Stage] < order[fb.Stage]
		}
		return fa.Index < fb.Index
	})
	return &res, jobErr
}
