//go:build slow

package digits

import "testing"

// TestReferenceDistancesFull recomputes all reference distances exactly as
// train-digits does, including the one over all 60,000 training digits
// (~25 s): go test -tags slow ./eval/digits/
func TestReferenceDistancesFull(t *testing.T) {
	x, _ := testDigits(t)
	trainX, _, err := ReadMNIST(mnistDir, "train")
	if err != nil {
		t.Fatal(err)
	}
	c := classifier(t)
	got, err := ReferenceDistances(c, trainX, x)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Errorf("%d reference distances, want 8", len(got))
	}
	checkReferences(t, c, got)
}
