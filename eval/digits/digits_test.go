package digits

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"
)

const mnistDir = "../../examples/data/mnist"

var (
	testOnce   sync.Once
	testX      []float32
	testY      []int
	testErr    error
	loadOnce   sync.Once
	shipped    *Classifier
	shippedErr error
	outOnce    sync.Once
	testP      [][Classes]float64
	testF      [][]float64
	testOutErr error
	testOutDur time.Duration
)

// testOutputs classifies the 10,000 test digits once for every test that
// needs them (~3.5 s).
func testOutputs(t *testing.T) ([][Classes]float64, [][]float64) {
	t.Helper()
	x, _ := testDigits(t)
	c := classifier(t)
	outOnce.Do(func() {
		start := time.Now()
		testP, testF, testOutErr = c.Classify(x, len(x)/Pixels)
		testOutDur = time.Since(start)
	})
	if testOutErr != nil {
		t.Fatal(testOutErr)
	}
	return testP, testF
}

func testDigits(t *testing.T) ([]float32, []int) {
	t.Helper()
	testOnce.Do(func() { testX, testY, testErr = ReadMNIST(mnistDir, "t10k") })
	if testErr != nil {
		t.Fatal(testErr)
	}
	return testX, testY
}

func classifier(t *testing.T) *Classifier {
	t.Helper()
	loadOnce.Do(func() { shipped, shippedErr = Load() })
	if shippedErr != nil {
		t.Fatal(shippedErr)
	}
	return shipped
}

// TestEmbeddedAccuracy holds the embedded classifier to 99% on the 10,000
// test digits and checks that the accuracy recorded in its metadata is
// what the weights give.
func TestEmbeddedAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("classifies 10,000 digits (~3.5 s, far longer under -race)")
	}
	_, y := testDigits(t)
	c := classifier(t)
	probs, _ := testOutputs(t)
	acc := LabelAgreement(probs, y)
	t.Logf("test accuracy %.4f (%d digits in %v)", acc, len(y), testOutDur.Round(time.Millisecond))
	if acc < 0.99 {
		t.Errorf("test accuracy %.4f, want >= 0.99", acc)
	}
	// MNIST's classes are nearly balanced: a 99% classifier's predicted
	// classes must be spread like the labels.
	var labels [][Classes]float64
	for _, l := range y {
		labels = append(labels, onehot(l))
	}
	if hp, hl := ClassEntropy(probs), ClassEntropy(labels); math.Abs(hp-hl) > 0.005 || hl < 3.3 {
		t.Errorf("class entropy of the test predictions %.4f bits, of the labels %.4f", hp, hl)
	}
	// Accuracy must agree with the batched outputs above.
	if a, err := Accuracy(c, testX[:500*Pixels], y[:500]); err != nil || a != LabelAgreement(probs[:500], y[:500]) {
		t.Errorf("Accuracy on 500 digits: %v, %v; from Classify: %v", a, err, LabelAgreement(probs[:500], y[:500]))
	}
	rec, err := strconv.ParseFloat(c.Metadata()["test_accuracy"], 64)
	if err != nil {
		t.Fatalf("metadata test_accuracy: %v", err)
	}
	if math.Abs(rec-acc) > 0.5e-4 {
		t.Errorf("metadata records test accuracy %v, the weights give %.4f", rec, acc)
	}
}

// TestClassifyBatching checks that a digit's result does not depend on
// the call it came in (padding of the last batch, batch boundaries) and
// that the outputs are well-formed.
func TestClassifyBatching(t *testing.T) {
	x, _ := testDigits(t)
	c := classifier(t)
	const n = 70
	probs, feats, err := c.Classify(x[:n*Pixels], n)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != n || len(feats) != n {
		t.Fatalf("%d probabilities and %d feature vectors for %d digits", len(probs), len(feats), n)
	}
	for _, split := range []int{1, 5, 64, 69} {
		p1, f1, err := c.Classify(x[:split*Pixels], split)
		if err != nil {
			t.Fatal(err)
		}
		p2, f2, err := c.Classify(x[split*Pixels:n*Pixels], n-split)
		if err != nil {
			t.Fatal(err)
		}
		p1, f1 = append(p1, p2...), append(f1, f2...)
		for i := 0; i < n; i++ {
			for j := 0; j < Classes; j++ {
				if math.Abs(p1[i][j]-probs[i][j]) > 1e-6 {
					t.Fatalf("split at %d: digit %d class %d: %v in pieces, %v at once", split, i, j, p1[i][j], probs[i][j])
				}
			}
			for j := range f1[i] {
				if math.Abs(f1[i][j]-feats[i][j]) > 1e-4*(1+math.Abs(feats[i][j])) {
					t.Fatalf("split at %d: digit %d feature %d: %v in pieces, %v at once", split, i, j, f1[i][j], feats[i][j])
				}
			}
		}
	}
	for i := 0; i < n; i++ {
		var s float64
		for _, p := range probs[i] {
			s += p
		}
		if math.Abs(s-1) > 1e-9 {
			t.Errorf("digit %d: probabilities sum to %v", i, s)
		}
		if len(feats[i]) != FeatureDim {
			t.Fatalf("digit %d: %d features, want %d", i, len(feats[i]), FeatureDim)
		}
		for j, f := range feats[i] {
			if f < 0 {
				t.Errorf("digit %d feature %d is %v; ReLU features are >= 0", i, j, f)
			}
		}
	}
	if p, f, err := c.Classify(nil, 0); err != nil || len(p) != 0 || len(f) != 0 {
		t.Errorf("no digits: %d, %d, %v", len(p), len(f), err)
	}
}

func TestClassifyErrors(t *testing.T) {
	c := classifier(t)
	if _, _, err := c.Classify(make([]float32, 2*Pixels-1), 2); err == nil {
		t.Error("short input accepted")
	}
	bad := make([]float32, 3*Pixels)
	bad[2*Pixels+5] = float32(math.NaN())
	if _, _, err := c.Classify(bad, 3); err == nil {
		t.Error("NaN pixel accepted")
	}
}

// checkReferences compares computed reference distances with those
// recorded in the weights (and documented in the package comment), by
// name, and checks the order a reader relies on.
func checkReferences(t *testing.T, c *Classifier, got []Reference) {
	t.Helper()
	var rec []Reference
	if err := json.Unmarshal([]byte(c.Metadata()["reference_fd"]), &rec); err != nil {
		t.Fatalf("metadata reference_fd: %v", err)
	}
	recorded := map[string]float64{}
	for _, r := range rec {
		recorded[r.Name] = r.FD
	}
	byName := map[string]float64{}
	for _, r := range got {
		t.Logf("%-45s %10.3f", r.Name, r.FD)
		want, ok := recorded[r.Name]
		if !ok || math.Abs(want-r.FD) > 1e-6*(1+r.FD) {
			t.Errorf("%s: computed %v, recorded %v (present: %v)", r.Name, r.FD, want, ok)
		}
		byName[r.Name] = r.FD
	}
	// Same protocol (1,000 digits against the test set): real digits well
	// below every distorted set; bigger real sets lower still.
	real := byName["1,000 training digits"]
	for _, name := range []string{"1,000 blurred training digits", "1,000 training digits shifted by 2 px", "1,000 uniform-noise images", "1,000 training digits classified 0-4"} {
		if !(byName[name] > 2*real) {
			t.Errorf("%s: FD %v is not well above that of 1,000 real digits (%v)", name, byName[name], real)
		}
	}
	for name, fd := range byName {
		if (name == "60,000 training digits" || name == "test digits, even vs odd positions") && !(fd < real) {
			t.Errorf("%s: FD %v is not below that of 1,000 real digits (%v)", name, fd, real)
		}
	}
}

// TestReferenceDistances recomputes every reference distance but the one
// that needs all 60,000 training digits (see the slow build tag for that).
func TestReferenceDistances(t *testing.T) {
	if testing.Short() {
		t.Skip("classifies 13,000 digits (~4.5 s)")
	}
	_, test := testOutputs(t)
	trainX, _, err := ReadMNIST(mnistDir, "train")
	if err != nil {
		t.Fatal(err)
	}
	c := classifier(t)
	const n = 2500
	trainX = trainX[:n*Pixels]
	trainP, train, err := c.Classify(trainX, n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := references(c, test, trainX, trainP, train)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 7 {
		t.Errorf("%d reference distances from %d training digits, want all 8 but the 60,000-digit one", len(got), n)
	}
	checkReferences(t, c, got)
}
