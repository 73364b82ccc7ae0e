package run

import (
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/genpipe/genpipe/pipeline/item"
)

// reachableSinks maps each node to the sinks downstream of it.
func reachableSinks(nodes []*Task) map[*Task][]*Task {
	consumers := map[*Task][]*Task{}
	for _, n := range nodes {
		for _, in := range n.Inputs {
			consumers[in] = append(consumers[in], n)
		}
	}
	memo := map[*Task][]*Task{}
	var visit func(n *Task) []*Task
	visit = func(n *Task) []*Task {
		if s, ok := memo[n]; ok {
			return s
		}
		var out []*Task
		seen := map[*Task]bool{}
		if n.Sink != nil {
			out = append(out, n)
		}
		for _, c := range consumers[n] {
			for _, s := range visit(c) {
				if !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
		memo[n] = out
		return out
	}
	for _, n := range nodes {
		visit(n)
	}
	return memo
}

// event updates the counters of n and reports an event.
func (j *job) event(n *Task, typ string, it *item.Item, err error, total int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.eventLocked(n, typ, it, err, total)
}

// eventLocked is event with j.mu held.
func (j *job) eventLocked(n *Task, typ string, it *item.Item, err error, total int) {
	c := j.counts[n]
	switch typ {
	case "item":
		c.Done++
	case "fail":
		c.Failed++
	case "skip":
		c.Skipped++
	case "drop":
		c.Dropped++
	}
	if j.progress == nil {
		return
	}
	ev := *c
	ev.Time = time.Now()
	ev.Type = typ
	ev.Total = total
	if it != nil {
		ev.Item, ev.Source = it.Name, it.Source
	}
	if err != nil {
		ev.Error = err.Error()
	}
	j.progress(ev)
}

// fail records a failed item and applies the error policy.
func (j *job) fail(n *Task, it item.Item, err error) {
	j.mu.Lock()
	j.res.Failures = append(j.res.Failures, Failure{Stage: n.ID, Index: it.Index, Item: it.Name, Source: it.Source, Err: err})
	if j.opt.OnError == Stop && !j.stopped {
		j.stopped = true
		j.cancel()
	}
	j.mu.Unlock()
	j.event(n, "fail", &it, err, 0)
}

// send delivers it to every consumer channel; false when the job is stopping.
func (j *job) send(outs []chan item.Item, it item.Item) bool {
	for _, ch := range outs {
		select {
		case ch <- it:
		case <-j.ctx.Done():
			return false
		}
	}
	return true
}

// source runs n's Source, applies shard and resume filters, and returns the
// stream of items to process.
func (j *job) source(n *Task, sinks []*Task) <-chan item.Item {
	ch := make(chan item.Item, j.opt.Buffer)
	go func() {
		defer close(ch)
		defer func() {
			// However the listing ended, a count arriving now is stale,
			// and after the job has returned it must not report at all.
			j.mu.Lock()
			j.listed[n] = true
			j.mu.Unlock()
		}()
		if j.opt.Select == nil {
			j.count(n) // a selection's total is known only when listed
		}
		emitted := 0
		err := n.Source.Items(j.ctx, func(it item.Item) error {
			if j.ctx.Err() != nil {
				return ErrStopped
			}
			if j.opt.ShardCount > 1 && it.Index%j.opt.ShardCount != j.opt.ShardIndex {
				return nil
			}
			if j.opt.Select != nil && !j.opt.Select(n.ID, it.Index) {
				if j.opt.SelectLast != nil && it.Index > j.opt.SelectLast(n.ID) {
					return errSelectionDone
				}
				return nil
			}
			emitted++
			if !j.opt.Overwrite && len(sinks) > 0 && allDone(sinks, it) {
				j.mu.Lock()
				j.res.Skipped += len(sinks)
				j.mu.Unlock()
				j.event(n, "skip", &it, nil, 0)
				return nil
			}
			select {
			case ch <- it:
				return nil
			case <-j.ctx.Done():
				return ErrStopped
			}
		})
		if err == errSelectionDone {
			err = nil
		}
		if err != nil && err != ErrStopped && j.ctx.Err() == nil {
			j.mu.Lock()
			j.sourceErr[n] = fmt.Errorf("stage %q: %w", n.ID, err)
			j.stopped = true
			j.mu.Unlock()
			j.cancel()
			return
		}
		j.total(n, emitted, true)
	}()
	return ch
}

// countWait is how long a source waits for its count before it emits its
// first item: a count that quick (any folder on a local disk short of
// hundreds of thousands of files) gives progress its total in the first
// event; a slower one goes on alongside the job and reports when done.
const countWait = time.Second

// count starts counting n's items, if its source can, and waits up to
// countWait for the count.
func (j *job) count(n *Task) {
	c, ok := n.Source.(Counter)
	if !ok {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		k, err := c.CountItems(j.ctx)
		if err != nil {
			return // the listing reports what is wrong, with its total
		}
		j.total(n, j.shardShare(k), false)
	}()
	t := time.NewTimer(countWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-j.ctx.Done():
	}
}

// shardShare is the number of the indices 0..k-1 in this job's shard.
func (j *job) shardShare(k int) int {
	sc, si := j.opt.ShardCount, j.opt.ShardIndex
	if sc <= 1 {
		return k
	}
	if k <= si {
		return 0
	}
	return (k - si + sc - 1) / sc
}

// total reports a source's total: counted, or final when its listing
// ended (after which a count is stale and dropped).
func (j *job) total(n *Task, total int, final bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.listed[n] {
		return
	}
	j.listed[n] = final
	j.eventLocked(n, "total", nil, nil, total)
}

func allDone(sinks []*Task, it item.Item) bool {
	for _, s := range sinks {
		if !s.Sink.Done(it) {
			return false
		}
	}
	return true
}

// merge joins several input streams into one (fan-in).
func (j *job) merge(ins []chan item.Item) <-chan item.Item {
	if len(ins) == 1 {
		return ins[0]
	}
	out := make(chan item.Item, j.opt.Buffer)
	var wg sync.WaitGroup
	for _, in := range ins {
		in := in
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range in {
				select {
				case out <- it:
				case <-j.ctx.Done():
					for range in {
					}
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	return out
}

// process batches the stream, runs n.Map on workers and forwards results.
func (j *job) process(n *Task, in <-chan item.Item, outs []chan item.Item) {
	batch := max(n.Batch, 1)
	workers := max(n.Workers, 1)
	batches := make(chan []item.Item, workers)
	go func() {
		defer close(batches)
		var cur []item.Item
		for it := range in {
			if j.ctx.Err() != nil {
				continue // drain so producers can finish
			}
			if !j.keep(n, it) {
				continue
			}
			it.Seed = DeriveSeed(j.opt.Seed, n.ID, it.Index)
			cur = append(cur, it)
			if len(cur) == batch {
				batches <- cur
				cur = nil
			}
		}
		if len(cur) > 0 && j.ctx.Err() == nil {
			batches <- cur
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if j.ctx.Err() != nil {
					continue
				}
				out, errs := j.callMap(n, b)
				// Errors that arrive after the job began stopping come from
				// the cancellation, not from the items: drop them.
				stopping := j.ctx.Err() != nil
				for i, it := range b {
					if stopping {
						break
					}
					if errs[i] != nil {
						j.fail(n, it, errs[i])
						continue
					}
					o := out[i]
					j.event(n, "item", &o, nil, 0)
					if !j.send(outs, o) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	j.event(n, "stage-done", nil, nil, 0)
}

// keep applies n's Keep to an item it reads: false when the item goes no
// further (dropped, or failed when the filter cannot tell).
func (j *job) keep(n *Task, it item.Item) bool {
	if n.Keep == nil {
		return true
	}
	ok, err := n.Keep(it)
	if err != nil {
		j.fail(n, it, err)
		return false
	}
	if !ok {
		j.mu.Lock()
		j.res.Dropped++
		j.mu.Unlock()
		j.event(n, "drop", &it, nil, 0)
	}
	return ok
}

// callMap runs n.Map, turning a panic or a malformed answer into item errors.
func (j *job) callMap(n *Task, b []item.Item) (out []item.Item, errs []error) {
	errs = make([]error, len(b))
	if n.Map == nil {
		return b, errs
	}
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			out = nil
			for i := range errs {
				errs[i] = err
			}
		}
	}()
	o, e := n.Map.Map(j.ctx, b)
	if e != nil && len(e) != len(b) {
		err := fmt.Errorf("internal error: %d errors for %d items", len(e), len(b))
		for i := range errs {
			errs[i] = err
		}
		return nil, errs
	}
	copy(errs, e)
	if len(o) != len(b) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("internal error: %d outputs for %d items", len(o), len(b))
			}
		}
		return nil, errs
	}
	return o, errs
}

// sink writes items with a worker per CPU-bound share of the machine.
func (j *job) sink(n *Task, in <-chan item.Item) {
	workers := max(n.Workers, 1)
	_, counts := n.Sink.(FileCounter) // counted after Close
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range in {
				if j.ctx.Err() != nil {
					continue
				}
				if !j.keep(n, it) {
					continue
				}
				it.Seed = DeriveSeed(j.opt.Seed, n.ID, it.Index)
				if !j.opt.Overwrite && n.Sink.Done(it) {
					j.mu.Lock()
					j.res.Skipped++
					j.mu.Unlock()
					j.event(n, "skip", &it, nil, 0)
					continue
				}
				if err := j.write(n, it); err != nil {
					if j.ctx.Err() != nil {
						continue
					}
					j.fail(n, it, err)
					continue
				}
				if !counts {
					j.mu.Lock()
					j.res.Written++
					j.mu.Unlock()
				}
				j.event(n, "item", &it, nil, 0)
			}
		}()
	}
	wg.Wait()
	j.event(n, "stage-done", nil, nil, 0)
}

func (j *job) write(n *Task, it item.Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return n.Sink.Write(j.ctx, it)
}

// errSelectionDone ends a source's listing once it is past the last item
// a selection wants.
var errSelectionDone = errors.New("selection done")
