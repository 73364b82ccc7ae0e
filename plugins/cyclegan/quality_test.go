package cyclegan

import (
	"context"
	"flag"
	"io/fs"
	"math"
	"testing"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/internal/typeset"
	"github.com/genpipe/genpipe/sdk"
	"github.com/hashicorp/go-hclog"
)

// cycleWeights measures a CycleGAN weights file (a training's output)
// instead of the shipped one:
//
//	go test ./plugins/cyclegan -run TestCycleQuality -v -weights examples/train/weights/typeset-mnist.safetensors
var cycleWeights = flag.String("weights", "", "typeset-mnist weights to measure instead of the shipped ones")

// cycleBars makes TestCycleQuality hold the weights to the translate
// issue's bars instead of the shipped weights' floors:
//
//	go test ./plugins/cyclegan -run TestCycleQuality -v -bars
var cycleBars = flag.Bool("bars", false, "fail below the translate issue's bars, not below the shipped weights' floors")

// cycleLevel is one measure of TestCycleQuality: the bar, and the
// floor the shipped weights must keep (their measured value less a margin
// for the platform's float differences), so a change that makes the
// shipped model worse fails even while the bar is out of reach.
type cycleLevel struct {
	bar, floor float64
	// below: lower is better (a distance ratio), so bar and floor are maxima.
	below bool
}

// cycleLevels are the measures, as fractions. The shipped typeset-mnist
// (6,000 steps of 8) measured 85.3 % / 85.0 % kept on unseen faces /
// jitter, distance ratios 15 % / 27 %, and 74.7 % kept by mnist2typeset
// (2-core EPYC, Go 1.26.8).
var cycleLevels = map[string]cycleLevel{
	"unseen faces kept":  {bar: 0.97, floor: 0.83},
	"unseen jitter kept": {bar: 0.97, floor: 0.83},
	"unseen faces fd":    {bar: 0.20, floor: 0.18, below: true},
	"unseen jitter fd":   {bar: 0.20, floor: 0.30, below: true},
	"mnist2typeset kept": {bar: 0.98, floor: 0.72},
}

// checkLevel reports got against measure name's bar, and fails below the
// floor (or below the bar with -bars).
func checkLevel(t *testing.T, name string, got float64) {
	t.Helper()
	l := cycleLevels[name]
	reached := got >= l.bar
	ok := got >= l.floor
	if l.below {
		reached, ok = got <= l.bar, got <= l.floor
	}
	if *cycleBars {
		ok = reached
	}
	verdict := "reaches"
	if !reached {
		verdict = "does not reach"
	}
	t.Logf("%s: %.1f %% %s the issue's bar %.0f %%", name, 100*got, verdict, 100*l.bar)
	if !ok {
		limit, what := l.floor, "the shipped weights' floor"
		if *cycleBars {
			limit, what = l.bar, "the issue's bar"
		}
		t.Errorf("%s: %.1f %% is beyond %s %.1f %%", name, 100*got, what, 100*limit)
	}
}

// heldOutTypeset are typeset digits the training never saw: faces it
// leaves out (examples/train/typeset2mnist.yaml trains on ten Go faces),
// and all faces with jitter beyond the training's ranges.
func heldOutTypeset(t *testing.T, n int) map[string][]float32 {
	t.Helper()
	wide := typeset.Jitter{Size: typeset.Range{Lo: 0.75, Hi: 1}, Weight: typeset.Range{Lo: -0.3, Hi: 0.9},
		Slant: typeset.Range{Lo: -0.2, Hi: 0.35}, Rotate: typeset.Range{Lo: -15, Hi: 15}}
	sets := map[string]struct {
		faces []string
		j     typeset.Jitter
	}{
		"unseen faces":  {[]string{"gomedium", "gomono"}, typeset.DefaultJitter},
		"unseen jitter": {nil, wide},
	}
	out := map[string][]float32{}
	for name, c := range sets {
		s, err := typeset.NewSet(c.faces, c.j, 9)
		if err != nil {
			t.Fatal(err)
		}
		x := make([]float32, n*digits.Pixels)
		for i := range n {
			img, _, err := s.Item(2_000_000 + i)
			if err != nil {
				t.Fatal(err)
			}
			for j, p := range img.Pix {
				x[i*digits.Pixels+j] = float32(p) / 255
			}
		}
		out[name] = x
	}
	return out
}

// translateAll runs a loaded direction over n digits in batches of 64.
func translateAll(t *testing.T, md sdk.Model, x []float32, n int) []float32 {
	t.Helper()
	tr := md.(sdk.Translator)
	out := make([]float32, 0, len(x))
	for i := 0; i < n; i += 64 {
		m := min(64, n-i)
		in := &sdk.Batch{Tensor: sdk.FromFloat32(x[i*digits.Pixels:(i+m)*digits.Pixels], m, 1, Size, Size), Seeds: make([]uint64, m)}
		y, err := tr.Translate(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, y.Float32s()...)
	}
	return out
}

// TestCycleQuality measures typeset2mnist and mnist2typeset with the MNIST
// classifier of eval/digits and reports them against the bars of the
// translate issue: on typeset digits the training never saw, the
// classifier reads the source digit on >= 97 % of translations, and their
// Frechet distance to MNIST test is at most 20 % of the untranslated
// inputs'; on MNIST test, mnist2typeset keeps >= 98 % of labels; the
// cycle's mean L1 is reported. It fails below the shipped weights' floors
// (cycleLevels), or below the bars with -bars.
func TestCycleQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("translates and classifies thousands of digits")
	}
	p := findPreset("typeset2mnist")
	if _, err := fs.Stat(shipped, p.weightsFile()); err != nil && *cycleWeights == "" {
		t.Skip("no shipped typeset-mnist weights yet (the training of examples/train/typeset2mnist.yaml is under way); measure a candidate with -weights FILE")
	}
	clf, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	testX, testY, err := digits.ReadMNIST("../../examples/data/mnist", "t10k")
	if err != nil {
		t.Fatal(err)
	}
	_, testFeats, err := clf.Classify(testX, len(testY))
	if err != nil {
		t.Fatal(err)
	}
	load := func(preset string) sdk.Model {
		params, _ := sdk.CheckParams(TranslateParams, nil, "")
		md, err := New().Load(context.Background(), sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: preset, Params: params, Weights: *cycleWeights, Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		return md
	}
	a2b, b2a := load("typeset2mnist"), load("mnist2typeset")
	const n = 1000
	labels := make([]int, n)
	for i := range labels {
		labels[i] = (2_000_000 + i) % 10
	}
	for name, x := range heldOutTypeset(t, n) {
		before, fb, err := clf.Classify(x, n)
		if err != nil {
			t.Fatal(err)
		}
		y := translateAll(t, a2b, x, n)
		after, fa, err := clf.Classify(y, n)
		if err != nil {
			t.Fatal(err)
		}
		fdBefore, err := digits.FrechetDistance(fb, testFeats)
		if err != nil {
			t.Fatal(err)
		}
		fdAfter, err := digits.FrechetDistance(fa, testFeats)
		if err != nil {
			t.Fatal(err)
		}
		kept := digits.LabelAgreement(after, labels)
		t.Logf("typeset2mnist, %s: labels read %.1f %% before, %.1f %% after; Frechet distance to MNIST test %.1f before, %.1f after (%.0f %%)",
			name, 100*digits.LabelAgreement(before, labels), 100*kept, fdBefore, fdAfter, 100*fdAfter/fdBefore)
		checkLevel(t, name+" kept", kept)
		checkLevel(t, name+" fd", fdAfter/fdBefore)
	}
	const m = 2000
	x := testX[:m*digits.Pixels]
	y := translateAll(t, b2a, x, m)
	probs, _, err := clf.Classify(y, m)
	if err != nil {
		t.Fatal(err)
	}
	kept := digits.LabelAgreement(probs, testY[:m])
	back := translateAll(t, a2b, y, m)
	l1 := 0.0
	for i := range x {
		l1 += math.Abs(float64(back[i] - x[i]))
	}
	t.Logf("mnist2typeset on %d MNIST test digits: %.1f %% of labels kept; cycle x -> F -> G mean L1 %.4f", m, 100*kept, l1/float64(len(x)))
	checkLevel(t, "mnist2typeset kept", kept)
}
