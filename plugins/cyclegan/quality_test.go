package cyclegan

import (
	"context"
	"flag"
	"image"
	"io/fs"
	"math"
	"testing"

	"github.com/genpipe/genpipe/eval/digits"
	"github.com/genpipe/genpipe/internal/typeset"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
	"github.com/hashicorp/go-hclog"
)

// cycleWeights measures a CycleGAN weights file (a training's output)
// instead of the shipped one:
//
//	go test ./plugins/cyclegan -run TestCycleQuality -v -weights examples/train/weights/typeset-mnist.safetensors
var cycleWeights = flag.String("weights", "", "typeset-mnist weights to measure instead of the shipped ones")

// cycleCustom measures -weights of another architecture (a training of
// the custom cyclegan preset on the same data, e.g. a generator of
// smaller reach) through the custom preset's two directions.
var cycleCustom = flag.Bool("custom", false, "with -weights: the weights are a custom cyclegan preset's (architecture from the file)")

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
	checkLevelIn(t, cycleLevels, name, got)
}

// checkLevelIn is checkLevel with the measure read from levels.
func checkLevelIn(t *testing.T, levels map[string]cycleLevel, name string, got float64) {
	t.Helper()
	l := levels[name]
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
	unit, scale := "%", 100.0
	if l.bar > 1 {
		unit, scale = "x", 1 // a ratio, not a fraction
	}
	t.Logf("%s: %.2f %s %s the issue's bar %.2f %s", name, scale*got, unit, verdict, scale*l.bar, unit)
	if !ok {
		limit, what := l.floor, "the shipped weights' floor"
		if *cycleBars {
			limit, what = l.bar, "the issue's bar"
		}
		t.Errorf("%s: %.2f %s is beyond %s %.2f %s", name, scale*got, unit, what, scale*limit, unit)
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
		var set sdk.Params
		if *cycleCustom {
			set = sdk.Params{"direction": map[string]string{"typeset2mnist": "a2b", "mnist2typeset": "b2a"}[preset]}
			preset = "cyclegan"
		}
		params, _ := sdk.CheckParams(TranslateParams, set, "")
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

// pixWeights measures an edges2mnist weights file instead of the shipped one.
var pixWeights = flag.String("pix-weights", "", "edges2mnist weights to measure instead of the shipped ones")

// pixLevels are edges2mnist's measures (see cycleLevels): labels kept on
// the edge maps of MNIST test digits, and the Frechet distance of the
// translations to MNIST training digits as a multiple of the distance of
// the same real test digits. The shipped edges2mnist (7,500 steps of 16)
// measured 98.47 % and 1.55x (2-core EPYC, Go 1.26.8): its floors are the
// bars.
var pixLevels = map[string]cycleLevel{
	"edges2mnist kept":     {bar: 0.98, floor: 0.98},
	"edges2mnist fd ratio": {bar: 2, floor: 2, below: true},
}

// TestPixQuality measures edges2mnist against the translate issue's bars:
// on the Canny edge maps (sigma 1, as examples/train/edges2mnist.yaml
// trains on) of the 10,000 MNIST test digits, the classifier reads the
// source digit on >= 98 % of translations, and their Frechet distance to
// 10,000 MNIST training digits is within 2x of the real test digits'.
func TestPixQuality(t *testing.T) {
	if testing.Short() {
		t.Skip("translates and classifies thousands of digits")
	}
	p := findPreset("edges2mnist")
	if _, err := fs.Stat(shipped, p.weightsFile()); err != nil && *pixWeights == "" {
		t.Skip("no shipped edges2mnist weights yet; measure a candidate with -pix-weights FILE")
	}
	clf, err := digits.Load()
	if err != nil {
		t.Fatal(err)
	}
	trainX, _, err := digits.ReadMNIST("../../examples/data/mnist", "train")
	if err != nil {
		t.Fatal(err)
	}
	_, ref, err := clf.Classify(trainX[:10000*digits.Pixels], 10000)
	if err != nil {
		t.Fatal(err)
	}
	testX, testY, err := digits.ReadMNIST("../../examples/data/mnist", "t10k")
	if err != nil {
		t.Fatal(err)
	}
	const n = 10000
	x := testX[:n*digits.Pixels]
	edgeX := make([]float32, len(x))
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, Size, Size))
		for j := range digits.Pixels {
			img.Pix[j] = uint8(math.Round(float64(x[i*digits.Pixels+j]) * 255))
		}
		e := stages.EdgeMap(img, "canny", 1, 0.08, 0.2)
		for j, v := range e.Pix {
			edgeX[i*digits.Pixels+j] = float32(v) / 255
		}
	}
	params, _ := sdk.CheckParams(TranslateParams, nil, "")
	md, err := New().Load(context.Background(), sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: "edges2mnist", Params: params, Weights: *pixWeights, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	y := translateAll(t, md, edgeX, n)
	probs, feats, err := clf.Classify(y, n)
	if err != nil {
		t.Fatal(err)
	}
	realProbs, realFeats, err := clf.Classify(x, n)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := digits.FrechetDistance(feats, ref)
	if err != nil {
		t.Fatal(err)
	}
	fdReal, err := digits.FrechetDistance(realFeats, ref)
	if err != nil {
		t.Fatal(err)
	}
	kept := digits.LabelAgreement(probs, testY[:n])
	t.Logf("edges2mnist on %d MNIST test edge maps: %.1f %% of labels kept (the real digits read %.1f %%); Frechet distance to 10,000 training digits %.1f (the real digits' %.1f, ratio %.2f)",
		n, 100*kept, 100*digits.LabelAgreement(realProbs, testY[:n]), fd, fdReal, fd/fdReal)
	checkLevelIn(t, pixLevels, "edges2mnist kept", kept)
	checkLevelIn(t, pixLevels, "edges2mnist fd ratio", fd/fdReal)
}
