package run

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/item"
)

// countSource emits n items; it records the peak number of items emitted but
// not yet written, to check that memory is bounded by the channels.
type countSource struct {
	n       int
	emitted atomic.Int64
}

func (s *countSource) Items(ctx context.Context, emit func(item.Item) error) error {
	for i := 0; i < s.n; i++ {
		if err := emit(item.Item{Index: i, Name: fmt.Sprintf("%05d", i), Label: -1}); err != nil {
			return err
		}
		s.emitted.Add(1)
	}
	return nil
}

// seedMap records each item's seed as its label; failOn makes items fail.
type seedMap struct {
	failOn  map[int]bool
	panicOn int
}

func (m *seedMap) Map(ctx context.Context, in []item.Item) ([]item.Item, []error) {
	errs := make([]error, len(in))
	out := make([]item.Item, len(in))
	for i, it := range in {
		if m.panicOn > 0 && it.Index == m.panicOn {
			panic("boom")
		}
		if m.failOn[it.Index] {
			errs[i] = fmt.Errorf("bad item %d", it.Index)
		}
		it.Name = fmt.Sprintf("%s-%x", it.Name, it.Seed)
		out[i] = it
	}
	return out, errs
}

type memSink struct {
	mu      sync.Mutex
	written map[int]string
	done    map[int]bool
	closed  bool
	src     *countSource
	peak    int64
}

func newSink() *memSink { return &memSink{written: map[int]string{}, done: map[int]bool{}} }

func (s *memSink) Done(it item.Item) bool { s.mu.Lock(); defer s.mu.Unlock(); return s.done[it.Index] }
func (s *memSink) Write(ctx context.Context, it item.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.written[it.Index]; dup {
		return fmt.Errorf("item %d written twice", it.Index)
	}
	s.written[it.Index] = it.Name
	if s.src != nil {
		if inflight := s.src.emitted.Load() - int64(len(s.written)); inflight > s.peak {
			s.peak = inflight
		}
	}
	return nil
}
func (s *memSink) Close() error { s.closed = true; return nil }

func chain(n int, m Mapper, sink Sink, batch, workers int) ([]*Task, *countSource) {
	src := &countSource{n: n}
	a := &Task{ID: "src", Kind: "load", Source: src, Workers: workers}
	b := &Task{ID: "model", Kind: "translate", Inputs: []*Task{a}, Map: m, Batch: batch, Workers: workers}
	c := &Task{ID: "out", Kind: "save", Inputs: []*Task{b}, Sink: sink, Workers: workers}
	return []*Task{a, b, c}, src
}

func TestResultsIndependentOfBatchAndWorkers(t *testing.T) {
	var ref map[int]string
	for _, bw := range [][2]int{{1, 1}, {7, 2}, {16, 4}, {100, 3}} {
		sink := newSink()
		nodes, _ := chain(200, &seedMap{}, sink, bw[0], bw[1])
		res, err := Execute(context.Background(), nodes, Options{Seed: 42})
		if err != nil || len(res.Failures) != 0 {
			t.Fatalf("batch %d workers %d: err %v failures %v", bw[0], bw[1], err, res.Failures)
		}
		if len(sink.written) != 200 || !sink.closed || res.Written != 200 {
			t.Fatalf("batch %d: wrote %d (res %d), closed %v", bw[0], len(sink.written), res.Written, sink.closed)
		}
		if ref == nil {
			ref = sink.written
			continue
		}
		for i, name := range ref {
			if sink.written[i] != name {
				t.Fatalf("batch %d workers %d: item %d is %q, want %q", bw[0], bw[1], i, sink.written[i], name)
			}
		}
	}
	if DeriveSeed(42, "model", 3) == DeriveSeed(42, "other", 3) || DeriveSeed(42, "model", 3) == DeriveSeed(43, "model", 3) {
		t.Fatal("seeds must depend on stage id and pipeline seed")
	}
}

func TestShardsPartitionTheJob(t *testing.T) {
	seen := map[int]int{}
	for i := 0; i < 3; i++ {
		sink := newSink()
		nodes, _ := chain(100, &seedMap{}, sink, 8, 2)
		if _, err := Execute(context.Background(), nodes, Options{ShardIndex: i, ShardCount: 3}); err != nil {
			t.Fatal(err)
		}
		for idx := range sink.written {
			seen[idx]++
		}
	}
	for i := 0; i < 100; i++ {
		if seen[i] != 1 {
			t.Fatalf("item %d processed %d times across shards", i, seen[i])
		}
	}
}

func TestResumeSkipsDoneItems(t *testing.T) {
	sink := newSink()
	for i := 0; i < 50; i += 2 {
		sink.done[i] = true
	}
	nodes, _ := chain(50, &seedMap{}, sink, 4, 2)
	res, err := Execute(context.Background(), nodes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped != 25 || res.Written != 25 {
		t.Fatalf("skipped %d written %d, want 25 and 25", res.Skipped, res.Written)
	}
	sink2 := newSink()
	sink2.done = sink.done
	nodes, _ = chain(50, &seedMap{}, sink2, 4, 2)
	if res, _ = Execute(context.Background(), nodes, Options{Overwrite: true}); res.Written != 50 {
		t.Fatalf("overwrite wrote %d, want 50", res.Written)
	}
}

func TestErrorPolicies(t *testing.T) {
	fail := map[int]bool{3: true, 17: true, 40: true}
	sink := newSink()
	nodes, _ := chain(60, &seedMap{failOn: fail, panicOn: 25}, sink, 1, 2)
	res, err := Execute(context.Background(), nodes, Options{OnError: Skip})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, f := range res.Failures {
		got = append(got, f.Index)
		if f.Stage != "model" {
			t.Errorf("failure at stage %q, want model", f.Stage)
		}
	}
	if fmt.Sprint(got) != "[3 17 25 40]" {
		t.Fatalf("failures %v, want [3 17 25 40]", got)
	}
	if !strings.Contains(res.Failures[2].Err.Error(), "panic: boom") {
		t.Errorf("panic not reported: %v", res.Failures[2].Err)
	}
	if len(sink.written) != 56 || !sink.closed {
		t.Fatalf("skip policy wrote %d items (closed %v), want 56", len(sink.written), sink.closed)
	}

	sink = newSink()
	nodes, _ = chain(1000, &seedMap{failOn: map[int]bool{5: true}}, sink, 1, 1)
	res, err = Execute(context.Background(), nodes, Options{OnError: Stop})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Stopped || len(res.Failures) != 1 || res.Failures[0].Index != 5 {
		t.Fatalf("stop policy: stopped %v failures %v", res.Stopped, res.Failures)
	}
	if len(sink.written) >= 1000 || sink.closed {
		t.Fatalf("stop policy went on: wrote %d, closed %v", len(sink.written), sink.closed)
	}
}

func TestMemoryBoundedByChannels(t *testing.T) {
	sink := newSink()
	nodes, src := chain(20000, &seedMap{}, sink, 16, 2)
	sink.src = src
	if _, err := Execute(context.Background(), nodes, Options{Buffer: 4}); err != nil {
		t.Fatal(err)
	}
	// Channels of 4, batches of 16 on 2 workers, a few items per goroutine:
	// far below the 20000 items of the job.
	if sink.peak > 200 {
		t.Fatalf("peak items in flight %d: the executor does not apply backpressure", sink.peak)
	}
}

func TestFanOutAndFanIn(t *testing.T) {
	srcA := &countSource{n: 10}
	srcB := &countSource{n: 5}
	a := &Task{ID: "a", Source: srcA}
	b := &Task{ID: "b", Source: srcB}
	m := &Task{ID: "m", Inputs: []*Task{a, b}, Map: &seedMap{}}
	s2 := newSink()
	// Items of the two sources share indices: collect into lists instead.
	var mu sync.Mutex
	var names []string
	s1w := &funcSink{write: func(it item.Item) { mu.Lock(); names = append(names, it.Name); mu.Unlock() }}
	n1 := &Task{ID: "s1", Inputs: []*Task{m}, Sink: s1w}
	n2 := &Task{ID: "s2", Inputs: []*Task{a}, Sink: s2}
	res, err := Execute(context.Background(), []*Task{a, b, m, n1, n2}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 15 || len(s2.written) != 10 || res.Written != 25 {
		t.Fatalf("fan-in got %d, fan-out got %d, written %d", len(names), len(s2.written), res.Written)
	}
}

type funcSink struct{ write func(item.Item) }

func (s *funcSink) Done(item.Item) bool                         { return false }
func (s *funcSink) Write(_ context.Context, it item.Item) error { s.write(it); return nil }
func (s *funcSink) Close() error                                { return nil }

type blockingMap struct{ started chan struct{} }

func (m *blockingMap) Map(ctx context.Context, in []item.Item) ([]item.Item, []error) {
	select {
	case m.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	errs := make([]error, len(in))
	for i := range errs {
		errs[i] = ctx.Err()
	}
	return in, errs
}

func TestCancellationStopsCleanly(t *testing.T) {
	sink := newSink()
	bm := &blockingMap{started: make(chan struct{}, 1)}
	nodes, _ := chain(1000, bm, sink, 4, 2)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-bm.started; cancel() }()
	res, err := Execute(ctx, nodes, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || len(res.Failures) != 0 || sink.closed || len(sink.written) != 0 {
		t.Fatalf("interrupted %v failures %d closed %v written %d", res.Interrupted, len(res.Failures), sink.closed, len(sink.written))
	}
}

type errSource struct{}

func (errSource) Items(ctx context.Context, emit func(item.Item) error) error {
	if err := emit(item.Item{Index: 0}); err != nil {
		return err
	}
	return errors.New("listing failed")
}

func TestSourceErrorEndsJob(t *testing.T) {
	a := &Task{ID: "a", Source: errSource{}}
	s := &Task{ID: "s", Inputs: []*Task{a}, Sink: newSink()}
	_, err := Execute(context.Background(), []*Task{a, s}, Options{})
	if err == nil || !strings.Contains(err.Error(), `stage "a": listing failed`) {
		t.Fatalf("err = %v", err)
	}
}

// countedSource is a countSource that can count its items; its listing
// waits for the job's first event (2 s at most), so a total that comes
// only at the end of the listing cannot be first.
type countedSource struct {
	countSource
	started  chan struct{}
	waitedIn bool // the listing began without an event before it
}

func (s *countedSource) CountItems(context.Context) (int, error) { return s.n, nil }

func (s *countedSource) Items(ctx context.Context, emit func(item.Item) error) error {
	select {
	case <-s.started:
	case <-time.After(2 * time.Second):
		s.waitedIn = true
	}
	return s.countSource.Items(ctx, emit)
}

// TestTotalFirst checks that a source that can count reports its total
// (its shard's share) before any item, and the listed total at the end.
func TestTotalFirst(t *testing.T) {
	for _, tc := range []struct{ shard, shards, want int }{{0, 1, 10}, {1, 3, 3}, {0, 3, 4}, {12, 20, 0}} {
		t.Run(fmt.Sprintf("%d/%d", tc.shard, tc.shards), func(t *testing.T) {
			src := &countedSource{countSource: countSource{n: 10}, started: make(chan struct{})}
			srcTask := &Task{ID: "src", Source: src}
			sink := &Task{ID: "out", Inputs: []*Task{srcTask}, Sink: newSink()}
			var events []Event
			once := sync.Once{}
			res, err := Execute(context.Background(), []*Task{srcTask, sink}, Options{
				ShardIndex: tc.shard, ShardCount: tc.shards,
				Progress: func(ev Event) {
					events = append(events, ev)
					once.Do(func() { close(src.started) })
				},
			})
			if err != nil || res.Written != tc.want {
				t.Fatalf("wrote %d, err %v; want %d", res.Written, err, tc.want)
			}
			if src.waitedIn {
				t.Error("no event before the listing began: the total waited for the listing")
			}
			if ev := events[0]; ev.Type != "total" || ev.Stage != "src" || ev.Total != tc.want {
				t.Errorf("first event %+v, want a total of %d", ev, tc.want)
			}
			var last Event
			for _, ev := range events {
				if ev.Type == "total" {
					last = ev
				}
			}
			if last.Total != tc.want {
				t.Errorf("last total %d, want %d", last.Total, tc.want)
			}
		})
	}
}

// TestKeepDropsAndCounts: a map stage's Keep drops items before its Map
// sees them and a sink's before it writes them; dropped items are
// counted, reported as "drop" events, and are not failures; an error of
// the filter fails the item.
func TestKeepDropsAndCounts(t *testing.T) {
	nodes, _ := chain(20, &seedMap{}, newSink(), 4, 2)
	sink := nodes[2].Sink.(*memSink)
	var mapped atomic.Int64
	nodes[1].Keep = func(it item.Item) (bool, error) { mapped.Add(1); return it.Index%2 == 0, nil }
	nodes[2].Keep = func(it item.Item) (bool, error) {
		if it.Index == 18 {
			return false, errors.New("no score")
		}
		return it.Index%4 == 0, nil
	}
	drops := 0
	res, err := Execute(context.Background(), nodes, Options{OnError: Skip, Progress: func(ev Event) {
		if ev.Type == "drop" {
			drops++
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	// 10 odd items dropped at the map, 4 more (2, 6, 10, 14) at the sink;
	// item 18 failed; 0, 4, 8, 12, 16 written.
	if res.Dropped != 14 || drops != 14 || len(res.Failures) != 1 || res.Failures[0].Index != 18 || len(sink.written) != 5 {
		t.Errorf("dropped %d (%d events), failures %v, written %v", res.Dropped, drops, res.Failures, sink.written)
	}
	if mapped.Load() != 20 {
		t.Errorf("the map stage's keep saw %d items, want 20", mapped.Load())
	}
}
