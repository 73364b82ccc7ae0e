package queue

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/genpipe/genpipe/pipeline/blobstore"
	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/lock"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/spec"
)

// Worker pulls items of the queue's jobs and runs them.
type Worker struct {
	Q    *Queue
	Host *pluginhost.Host
	// Name identifies the worker in records and logs.
	Name string
	// Batch is the number of items pulled and run at a time.
	Batch int
	// Allow lists the folders (absolute) and blob URL prefixes
	// (s3://bucket/prefix?endpoint=...) under which the worker reads and
	// writes; a job that names a path or URL outside them is refused. A
	// URL is under an allowed one when scheme, bucket and query (endpoint,
	// region, ...) are the same and its prefix is the allowed one or below
	// it: the query must match, or a job could send the worker's
	// credentials to a server of its choosing.
	Allow []string
	// Lock is the worker's own lock (nil: none). A job whose lock differs
	// is refused; with none, the worker refuses jobs that carry a lock.
	Lock *lock.File
	// Logf reports what the worker does.
	Logf func(format string, args ...any)
	// Idle is how long the worker waits when no job has work (default 1s).
	Idle time.Duration
	// Once makes Run return when no job has work instead of waiting.
	Once bool

	mu      sync.Mutex
	plans   map[string]*plan.Plan
	models  map[string]*job.Models
	refused map[string]bool
}

// Run pulls and runs items until ctx ends (or, with Once, until no job has
// work).
func (w *Worker) Run(ctx context.Context) error {
	if w.Batch <= 0 {
		w.Batch = 64
	}
	if w.Idle <= 0 {
		w.Idle = time.Second
	}
	if w.Logf == nil {
		w.Logf = func(string, ...any) {}
	}
	w.plans, w.refused, w.models = map[string]*plan.Plan{}, map[string]bool{}, map[string]*job.Models{}
	defer func() {
		for _, m := range w.models {
			m.Close()
		}
	}()
	for ctx.Err() == nil {
		ids, err := w.Q.Jobs(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			w.Logf("worker %s: %v (retrying)", w.Name, err)
			sleep(ctx, w.Idle)
			continue
		}
		worked := false
		for _, id := range ids {
			n, err := w.runJob(ctx, id)
			if err != nil && ctx.Err() == nil {
				w.Logf("worker %s: job %s: %v", w.Name, id, err)
			}
			worked = worked || n > 0
		}
		if !worked {
			if w.Once {
				return nil
			}
			sleep(ctx, w.Idle)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// runJob runs batches of the job's items until none is left; it returns
// how many items it handled.
func (w *Worker) runJob(ctx context.Context, id string) (int, error) {
	if w.refused[id] {
		return 0, nil
	}
	j, err := w.Q.Job(ctx, id)
	if err != nil {
		return 0, err
	}
	st, err := w.Q.Status(ctx, id)
	if err != nil {
		return 0, err
	}
	if st.Finished() || st.Pending == 0 && st.InFlight == 0 {
		return 0, nil
	}
	p, err := w.plan(ctx, j)
	if err != nil {
		w.refused[id] = true
		w.Logf("worker %s: refusing job %s: %v", w.Name, id, err)
		return 0, w.Q.record(ctx, "refused", Record{Item: Item{Job: id, Stage: "job"}, Worker: w.Name, Reasons: []string{err.Error()}, Time: time.Now().UTC()})
	}
	c, err := w.Q.consumer(ctx, j)
	if err != nil {
		return 0, err
	}
	w.mu.Lock()
	if w.models[id] == nil {
		w.models[id] = &job.Models{}
	}
	w.mu.Unlock()
	// Two batches in flight: one writes its outputs and settles its
	// messages while the next is read and computed, as the stages of a
	// plain run overlap.
	const inFlight = 2
	sem := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	handled := 0
	for ctx.Err() == nil {
		sem <- struct{}{}
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop {
			<-sem
			break
		}
		batch, err := c.Fetch(w.Batch, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			<-sem
			mu.Lock()
			firstErr = cmp.Or(firstErr, err)
			mu.Unlock()
			break
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			<-sem
			break
		}
		handled += len(msgs)
		wg.Go(func() {
			defer func() { <-sem }()
			if err := w.runBatch(ctx, j, p, msgs); err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return handled, firstErr
}

// runBatch runs the items of msgs through the job's stages and settles each
// message: done items are recorded and acknowledged after their outputs are
// written; failed ones go back for redelivery, or to the dead letters on
// their last delivery.
func (w *Worker) runBatch(ctx context.Context, j *Job, p *plan.Plan, msgs []jetstream.Msg) error {
	items := make([]Item, len(msgs))
	want := map[int]bool{}
	for i, m := range msgs {
		if err := json.Unmarshal(m.Data(), &items[i]); err != nil || items[i].Stage != j.Source {
			// Not ours to understand: it can never succeed.
			_ = m.Term()
			continue
		}
		want[items[i].Index] = true
	}
	// Signs of life while the batch runs, so a slow batch is not
	// redelivered to another worker.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(max(j.AckWait/3, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
			case <-stop:
				return
			}
		}
	})
	failed := w.runItems(ctx, j, p, want)
	if len(failed) > 1 {
		// A call fails as a whole (a plugin that dies on one item fails
		// its whole batch): run each failed item alone, so one poison
		// item does not take its batch-mates to the dead letters.
		for index := range failed {
			if ctx.Err() != nil {
				break
			}
			alone := w.runItems(ctx, j, p, map[int]bool{index: true})
			if reasons, bad := alone[index]; bad {
				failed[index] = reasons
			} else {
				delete(failed, index)
			}
		}
	}
	close(stop)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err() // unacknowledged: redelivered after the ack wait
	}
	now := time.Now().UTC()
	var done []Record
	var doneMsgs []jetstream.Msg
	for i, m := range msgs {
		it := items[i]
		if !want[it.Index] {
			continue
		}
		if reasons, bad := failed[it.Index]; bad {
			md, _ := m.Metadata()
			if md != nil && int(md.NumDelivered) >= j.MaxDeliver {
				rec := Record{Item: it, Worker: w.Name, Deliveries: int(md.NumDelivered), Reasons: reasons, Time: now}
				if err := w.Q.record(ctx, "dead", rec); err != nil {
					return err
				}
				_ = m.Term()
				continue
			}
			_ = m.NakWithDelay(time.Second)
			continue
		}
		md, _ := m.Metadata()
		deliveries := 1
		if md != nil {
			deliveries = int(md.NumDelivered)
		}
		done = append(done, Record{Item: it, Worker: w.Name, Deliveries: deliveries, Time: now})
		doneMsgs = append(doneMsgs, m)
	}
	// The done records of the batch go out together, and the items are
	// acknowledged once the server has stored them: one round trip per
	// batch, not two per item. A lost ack only means a redelivery, which
	// finds the outputs written and does no work.
	if err := w.Q.recordAll(ctx, "done", done); err != nil {
		return err
	}
	for i, m := range doneMsgs {
		if err := m.Ack(); err != nil && !errors.Is(err, context.Canceled) {
			w.Logf("worker %s: ack %s: %v", w.Name, done[i].Key(), err)
		}
	}
	return nil
}

// plan checks and plans a job once per worker: the lock, the plugins it
// may start, the folders it may touch, and the pipeline itself.
func (w *Worker) plan(ctx context.Context, j *Job) (*plan.Plan, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if p, ok := w.plans[j.ID]; ok {
		return p, nil
	}
	if err := w.checkLock(j); err != nil {
		return nil, err
	}
	file := filepath.Join(j.Dir, j.File)
	s, errs := spec.Parse(file, j.YAML, j.Sets)
	if s == nil {
		return nil, errs
	}
	for _, pl := range s.Plugins {
		if pl.Path != "" {
			return nil, fmt.Errorf("the job names a plugin executable (plugins.%s.path %q): a worker runs only the plugins installed on it", pl.Name, pl.Path)
		}
	}
	seed := j.Seed
	p, perrs := job.Check(ctx, w.Host, file, j.YAML, j.Sets, &seed)
	if len(perrs) > 0 {
		return nil, perrs
	}
	if err := CheckQueueable(p); err != nil {
		return nil, err
	}
	if err := w.checkPaths(p); err != nil {
		return nil, err
	}
	w.plans[j.ID] = p
	return p, nil
}

// checkLock compares the job's lock with the worker's own.
func (w *Worker) checkLock(j *Job) error {
	switch {
	case w.Lock == nil && len(j.Lock) == 0:
		return nil
	case w.Lock == nil:
		return fmt.Errorf("the job carries a lock but this worker was started without one (--lock)")
	case len(j.Lock) == 0:
		return fmt.Errorf("this worker runs only locked jobs (its --lock) and the job carries no lock")
	}
	jl, err := lock.Decode("the job's lock", j.Lock)
	if err != nil {
		return err
	}
	// The same checksums both ways (names and locations aside).
	diffs := append(lock.Diff(w.Lock, jl), lock.Diff(jl, w.Lock)...)
	if len(diffs) > 0 {
		return fmt.Errorf("the job's lock differs from this worker's: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// checkPaths refuses a job that reads or writes outside the worker's
// allowed folders and URL prefixes.
func (w *Worker) checkPaths(p *plan.Plan) error {
	if len(w.Allow) == 0 {
		return nil
	}
	for _, path := range Paths(p) {
		if !under(path, w.Allow) {
			return fmt.Errorf("the job touches %s, outside the folders this worker may use (%s)", path, strings.Join(w.Allow, ", "))
		}
	}
	return nil
}

func under(path string, roots []string) bool {
	if blobstore.IsBlob(path) {
		loc, err := blobstore.Parse(path)
		if err != nil {
			return false
		}
		for _, r := range roots {
			if !blobstore.IsBlob(r) {
				continue
			}
			if root, err := blobstore.Parse(r); err == nil && loc.Under(root) {
				return true
			}
		}
		return false
	}
	path = filepath.Clean(path)
	for _, r := range roots {
		if blobstore.IsBlob(r) {
			continue
		}
		r = filepath.Clean(r)
		if path == r || strings.HasPrefix(path, r+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// runItems runs the job's stages on the source items in want and returns
// the reasons of those that failed.
func (w *Worker) runItems(ctx context.Context, j *Job, p *plan.Plan, want map[int]bool) map[int][]string {
	w.mu.Lock()
	ms := w.models[j.ID]
	w.mu.Unlock()
	last := -1
	for index := range want {
		last = max(last, index)
	}
	res, err := job.Run(ctx, p, w.Host, job.Options{
		OnError:    run.Skip,
		Select:     func(stage string, index int) bool { return stage == j.Source && want[index] },
		SelectLast: func(string) int { return last },
		Models:     ms,
	})
	failed := map[int][]string{}
	if err != nil {
		for index := range want {
			failed[index] = []string{err.Error()}
		}
		return failed
	}
	for _, f := range res.Failures {
		failed[f.Index] = append(failed[f.Index], f.String())
	}
	return failed
}
