package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/item"
)

// listSource emits the given indices in the given order.
type listSource []int

func (s listSource) Items(ctx context.Context, emit func(item.Item) error) error {
	for _, i := range s {
		if err := emit(item.Item{Index: i, Name: fmt.Sprint(i), Label: -1}); err != nil {
			return err
		}
	}
	return nil
}

// jitterMap sleeps a little at random, so workers finish out of order, and
// checks that the Ordered holds at most window items.
type jitterMap struct {
	o      *Ordered
	window int
	failOn int
	t      *testing.T
}

func (m jitterMap) Map(_ context.Context, in []item.Item) ([]item.Item, []error) {
	errs := make([]error, len(in))
	for i, it := range in {
		time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		m.o.mu.Lock()
		held := m.o.emitted - m.o.taken
		m.o.mu.Unlock()
		if held > m.window {
			m.t.Errorf("%d items held, window %d", held, m.window)
		}
		if it.Index == m.failOn {
			errs[i] = errors.New("bad item")
		}
	}
	return in, errs
}

func runOrdered(t *testing.T, order []int, window, failOn int) ([]int, error) {
	t.Helper()
	o := NewOrdered(window)
	src := &Task{ID: "src", Kind: "load", Source: o.Source(listSource(order)), Map: jitterMap{o, window, failOn, t}, Workers: 4}
	mid := &Task{ID: "mid", Kind: "preprocess", Inputs: []*Task{src}, Map: jitterMap{o, window, failOn, t}, Workers: 3}
	sink := &Task{ID: "out", Kind: "train", Inputs: []*Task{mid}, Sink: o.Sink(), Workers: 2}
	ctx := context.Background()
	go func() {
		res, err := Execute(ctx, []*Task{src, mid, sink}, Options{Seed: 1, Overwrite: true, Buffer: 2})
		if err == nil && len(res.Failures) > 0 {
			err = res.Failures[0].Err
		}
		o.Finish(err)
	}()
	var got []int
	for {
		it, err := o.Next(ctx)
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, it.Index)
	}
}

// TestOrdered: items come out in emission order (not index order), however
// workers reorder them, with at most window items held.
func TestOrdered(t *testing.T) {
	order := rand.New(rand.NewPCG(1, 2)).Perm(200)
	got, err := runOrdered(t, order, 5, -1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(order) {
		t.Fatalf("got %v\nwant %v", got, order)
	}
}

// TestOrderedFailure: a failed item ends Next with the job's error after
// the items before it.
func TestOrderedFailure(t *testing.T) {
	order := []int{5, 3, 9, 1, 7, 0, 2}
	got, err := runOrdered(t, order, 3, 1)
	if err == nil || !strings.Contains(err.Error(), "bad item") {
		t.Fatalf("error %v, want bad item", err)
	}
	if len(got) > 3 || fmt.Sprint(got) != fmt.Sprint(order[:len(got)]) {
		t.Fatalf("got %v before the failure, want a prefix of %v", got, order[:3])
	}
}
