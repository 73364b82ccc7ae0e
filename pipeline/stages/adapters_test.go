package stages

import (
	"context"
	"testing"

	"github.com/genpipe/genpipe/pipeline/item"
)

func countLabels(t *testing.T, s CountSource) []int {
	t.Helper()
	var out []int
	if err := s.Items(context.Background(), func(it item.Item) error {
		out = append(out, it.Label)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCountSourceRandomLabels: labels: random draws every class about
// equally often, the same labels for the same seed and stage (so a rerun
// or a shard regenerates the same items), others for another seed.
func TestCountSourceRandomLabels(t *testing.T) {
	s := CountSource{Count: 5000, Classes: 10, Random: true, Seed: 7, Stage: "digits"}
	a := countLabels(t, s)
	hist := make([]int, 10)
	for _, l := range a {
		if l < 0 || l >= 10 {
			t.Fatalf("label %d out of 0-9", l)
		}
		hist[l]++
	}
	for c, n := range hist {
		if n < 400 || n > 600 { // 500 expected; 4.7 standard deviations either side
			t.Errorf("class %d drawn %d times of 5000, want about 500 (histogram %v)", c, n, hist)
		}
	}
	if b := countLabels(t, s); !equalInts(a, b) {
		t.Error("the same seed and stage gave other labels")
	}
	s.Seed = 8
	if b := countLabels(t, s); equalInts(a, b) {
		t.Error("another seed gave the same labels")
	}
	each := countLabels(t, CountSource{Count: 20, Classes: 10})
	if each[13] != 3 {
		t.Errorf("each: item 13 has label %d, want 3", each[13])
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
