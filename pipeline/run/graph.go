// Package run is the streaming executor: it moves items through a graph of
// stages over bounded channels, batches model stages, runs host stages on a
// worker pool, derives per-item seeds, applies the error policy, shards,
// resumes, and reports progress. It knows stages only through the small
// interfaces below, so host stages and plugin stages look the same to it.
package run

import (
	"context"

	"github.com/genpipe/genpipe/pipeline/item"
)

// Source emits the items a stage starts from (a folder listing, idx records,
// or generate's count). Emitting must be cheap: heavy work (decoding, model
// calls) belongs in the task's Mapper, which runs on workers. Items must be
// emitted with increasing Index; emit blocks when downstream is full
// (backpressure) and returns an error when the job is stopping.
type Source interface {
	Items(ctx context.Context, emit func(item.Item) error) error
}

// Counter is implemented by sources that can count their items cheaply,
// without emitting them (a walk of a folder that reads no file, an idx
// header, generate's count), so that progress has a total from the start
// rather than once the listing, held back by the stages downstream, ends.
// CountItems runs concurrently with Items; it must hold no list of the items
// (a folder of millions of files is counted, not listed) and returns the
// number Items will emit, before any shard filter.
type Counter interface {
	CountItems(ctx context.Context) (int, error)
}

// Mapper transforms a batch of items. It returns one output per input; errs,
// when non-nil, has one entry per input and a non-nil entry marks that item
// as failed (its output is ignored). Mappers are called concurrently.
type Mapper interface {
	Map(ctx context.Context, in []item.Item) (out []item.Item, errs []error)
}

// Sink consumes items (save). Write is called concurrently.
type Sink interface {
	// Done reports whether the item's outputs already exist, so a rerun
	// skips it (unless the job overwrites).
	Done(it item.Item) bool
	// Write stores the item atomically.
	Write(ctx context.Context, it item.Item) error
	// Close finishes outputs that need every item (grids, animations).
	Close() error
}

// FileCounter is implemented by sinks that count the files they write, so
// that a job reports files, not items: a grid is one file for many items,
// and a rerun that finds its files as they were writes none. The executor
// asks after the sink's Close.
type FileCounter interface {
	// Files returns the number of files written and left unchanged.
	Files() (written, unchanged int)
}

// Task is one stage of the graph.
type Task struct {
	// ID is the stage id from the pipeline file; it names the stage in
	// errors and progress, and seeds its items.
	ID string
	// Kind is the stage kind (load, translate, ...), for progress and errors.
	Kind string
	// Inputs are the nodes whose items this task consumes (none for a source).
	Inputs []*Task
	// Source, when set, makes this a source task. Its items are then passed
	// through Map (if set) on workers, e.g. enumerate files then decode.
	Source Source
	// Map transforms items (nil: pass through).
	Map Mapper
	// Sink, when set, consumes the items; a sink task has no outputs.
	Sink Sink
	// Batch is the number of items per Map call (<= 0: 1).
	Batch int
	// Workers is the number of concurrent Map calls (<= 0: 1).
	Workers int
	// Keep, when set, filters the items the task reads before its Map or
	// Sink sees them: false drops the item (counted in Result.Dropped, not
	// a failure); an error fails it.
	Keep func(item.Item) (bool, error)
}
