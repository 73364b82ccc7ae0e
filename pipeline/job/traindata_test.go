package job

import (
	"slices"
	"testing"
)

// TestOrder: each epoch's order is a permutation fixed by (seed, epoch)
// alone, different between epochs and seeds; without shuffle it is the
// load order.
func TestOrder(t *testing.T) {
	const n = 100
	a := order(n, true, 7, 0)
	if !slices.Equal(a, order(n, true, 7, 0)) {
		t.Fatal("the same seed and epoch gave two orders")
	}
	sorted := slices.Clone(a)
	slices.Sort(sorted)
	if !slices.Equal(sorted, order(n, false, 7, 0)) {
		t.Fatalf("not a permutation of 0..%d: %v", n-1, a)
	}
	if slices.Equal(a, sorted) || slices.Equal(a, order(n, true, 7, 1)) || slices.Equal(a, order(n, true, 8, 0)) {
		t.Error("the order does not change with the epoch and the seed")
	}
	if got := order(1, true, 7, 3); !slices.Equal(got, []int{0}) {
		t.Errorf("one item: %v", got)
	}
}
