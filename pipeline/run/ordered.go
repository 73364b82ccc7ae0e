package run

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/genpipe/genpipe/pipeline/item"
)

// Ordered hands out the items of a job in the order its source emitted
// them, however the workers reorder them, for a consumer that needs that
// order (training reads batches in a fixed order). [Ordered.Source] wraps
// the job's source: it emits an item only while fewer than window items are
// emitted and not yet taken, so the job holds at most window items and the
// buffer of [Ordered.Sink] never grows past that. [Ordered.Next] takes the
// items in order; [Ordered.Finish] records the job's end.
//
// Every emitted item must reach the sink or fail the job: use it with the
// Stop policy, without shards, and with Overwrite (the sink never reports an
// item done). The items' Index values must be distinct; they need not
// increase.
type Ordered struct {
	slots   chan struct{}
	arrived chan struct{}

	mu       sync.Mutex
	emitted  int               // items emitted
	taken    int               // items handed out by Next
	pos      map[int]int       // emission position by item Index, until the item arrives
	buf      map[int]item.Item // arrived items by emission position
	finished bool
	err      error
}

// NewOrdered returns an Ordered holding at most window items (<= 0: 1).
func NewOrdered(window int) *Ordered {
	return &Ordered{
		slots:   make(chan struct{}, max(window, 1)),
		arrived: make(chan struct{}, 1),
		pos:     map[int]int{},
		buf:     map[int]item.Item{},
	}
}

// Source wraps s: its items are numbered in emission order, and emitting
// waits while the window is full.
func (o *Ordered) Source(s Source) Source { return orderedSource{o, s} }

type orderedSource struct {
	o *Ordered
	s Source
}

func (w orderedSource) Items(ctx context.Context, emit func(item.Item) error) error {
	o := w.o
	return w.s.Items(ctx, func(it item.Item) error {
		select {
		case o.slots <- struct{}{}:
		case <-ctx.Done():
			return ErrStopped
		}
		o.mu.Lock()
		if _, dup := o.pos[it.Index]; dup {
			o.mu.Unlock()
			return fmt.Errorf("run: ordered: item index %d emitted twice", it.Index)
		}
		o.pos[it.Index] = o.emitted
		o.emitted++
		o.mu.Unlock()
		return emit(it)
	})
}

// Sink collects the items for Next. Its Close does nothing: Finish
// records the end of the job.
func (o *Ordered) Sink() Sink { return orderedSink{o} }

type orderedSink struct{ o *Ordered }

func (orderedSink) Done(item.Item) bool { return false }
func (orderedSink) Close() error        { return nil }

func (s orderedSink) Write(_ context.Context, it item.Item) error {
	o := s.o
	o.mu.Lock()
	p, ok := o.pos[it.Index]
	if !ok {
		o.mu.Unlock()
		return fmt.Errorf("run: ordered: item index %d was not emitted by the ordered source", it.Index)
	}
	delete(o.pos, it.Index)
	o.buf[p] = it
	o.mu.Unlock()
	o.signal()
	return nil
}

func (o *Ordered) signal() {
	select {
	case o.arrived <- struct{}{}:
	default:
	}
}

// Finish records that the job ended, with err (nil: every emitted item was
// written). Next then returns err, or io.EOF, once it has handed out every
// item that arrived in order.
func (o *Ordered) Finish(err error) {
	o.mu.Lock()
	o.finished, o.err = true, err
	o.mu.Unlock()
	o.signal()
}

// Next returns the next item in emission order, waiting for it; io.EOF
// after the last one. Only one goroutine may call Next.
func (o *Ordered) Next(ctx context.Context) (item.Item, error) {
	for {
		o.mu.Lock()
		it, ok := o.buf[o.taken]
		if ok {
			delete(o.buf, o.taken)
			o.taken++
			o.mu.Unlock()
			<-o.slots // a slot is always held for an emitted item
			return it, nil
		}
		finished, err := o.finished, o.err
		if finished && err == nil && o.taken < o.emitted {
			err = fmt.Errorf("run: ordered: the job ended before item %d of %d arrived", o.taken, o.emitted)
		}
		o.mu.Unlock()
		if finished {
			if err == nil {
				err = io.EOF
			}
			return item.Item{}, err
		}
		select {
		case <-o.arrived:
		case <-ctx.Done():
			return item.Item{}, ctx.Err()
		}
	}
}
