package plan

import (
	"context"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
)

// scorer is a flow-like plugin: encode and translate attach scores.
var scorer = &sdk.Description{
	Name: "scorer", Version: "0.1.0",
	Capabilities: []sdk.CapabilitySpec{
		{Name: sdk.CapTranslate, Scores: []sdk.ScoreSpec{{Name: "bpd"}, {Name: "ll"}}},
		{Name: sdk.CapEncode, Scores: []sdk.ScoreSpec{{Name: "bpd"}}},
	},
	Presets: []sdk.Preset{
		{Name: "p", Default: true, Capabilities: []sdk.Capability{sdk.CapTranslate, sdk.CapEncode},
			Input: img(1, 28, 28), Output: img(1, 28, 28), Latent: &sdk.LatentSpec{Space: "scorer/p", Dim: 4}},
	},
}

type scorerDescriber struct{ fakeDescriber }

func (d *scorerDescriber) Describe(ctx context.Context, model, path, sha string) (*sdk.Description, error) {
	if model == "scorer" {
		return scorer, nil
	}
	return d.fakeDescriber.Describe(ctx, model, path, sha)
}

func (d *scorerDescriber) Known() []string { return append(d.fakeDescriber.Known(), "scorer") }

func buildScored(t *testing.T, src string) (*Plan, []string) {
	t.Helper()
	s, errs := spec.Parse("p.yaml", []byte(src), nil)
	if s == nil {
		t.Fatal(errs)
	}
	p, perrs := Build(context.Background(), s, &scorerDescriber{}, Options{SkipFiles: true})
	errs = append(errs, perrs...)
	errs.Sort()
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	return p, lines
}

const hintScorers = `scores come from model stages: encode with model "scorer" (bpd); translate with model "scorer" (bpd, ll)`

// TestKeepValidate: keep: must name a score that a model stage on every
// path before the stage attaches; errors point at the score's value.
func TestKeepValidate(t *testing.T) {
	head := "version: 1\nname: k\nstages:\n  - id: in\n    load: {dir: x}\n"
	for _, tt := range []struct {
		name, src string
		want      []string
	}{
		{"kept", head + "  - id: f\n    translate: {model: scorer}\n  - id: out\n    keep: {score: bpd, above: 2}\n    save: {dir: o}\n", nil},
		{"kept two stages on", head + "  - id: f\n    translate: {model: scorer}\n  - id: g\n    translate: {model: edges}\n  - id: out\n    keep: {score: ll, below: -3}\n    save: {dir: o}\n", nil},
		{"on the model stage itself", head + "  - id: f\n    keep: {score: bpd, above: 2}\n    translate: {model: scorer}\n  - id: out\n    save: {dir: o}\n",
			[]string{`p.yaml:7:19: stage "f": keep: no stage before it attaches score "bpd" (its items carry no scores) (` + hintScorers + `)`}},
		{"misspelt", head + "  - id: f\n    translate: {model: scorer}\n  - id: out\n    keep: {score: bits, above: 2}\n    save: {dir: o}\n",
			[]string{`p.yaml:9:19: stage "out": keep: no stage before it attaches score "bits" (its items carry bpd, ll) (` + hintScorers + `)`}},
		{"encode has no ll", head + "  - id: f\n    encode: {model: scorer}\n  - id: g\n    input: f\n    keep: {score: ll, above: 2}\n    generate: {model: vae}\n",
			[]string{`p.yaml:10:19: stage "g": keep: no stage before it attaches score "ll" (its items carry bpd) (` + hintScorers + `)`}},
		{"one branch lacks it", head + "  - id: f\n    translate: {model: scorer}\n  - id: out\n    input: [f, in]\n    keep: {score: bpd, above: 2}\n    save: {dir: o, name: \"{stage}/{name}\"}\n",
			[]string{`p.yaml:10:19: stage "out": keep: no stage before it attaches score "bpd" (its items carry no scores) (` + hintScorers + `)`}},
		{"on a source", "version: 1\nname: k\nstages:\n  - id: in\n    keep: {score: bpd, above: 2}\n    load: {dir: x}\n  - id: out\n    save: {dir: o}\n",
			[]string{`p.yaml:5:5: stage "in": keep: a load stage of its own reads no items (keep: filters the items a stage reads; put it on a later stage)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, got := buildScored(t, tt.src)
			// Other errors of a file (the fake vae decodes another space)
			// are not this test's business.
			var keep []string
			for _, l := range got {
				if strings.Contains(l, "keep:") {
					keep = append(keep, l)
				}
			}
			if strings.Join(keep, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(keep, "\n"), strings.Join(tt.want, "\n"))
			}
			if tt.want == nil && len(got) == 0 {
				if st := p.Stage("out"); st == nil || st.Keep == nil {
					t.Errorf("the plan's stage out has no keep")
				}
			}
		})
	}
}

// TestKeepRefusedInTrainingChain: a training's data chain maps every item
// to one, so a keep: in it is an error at the keep: key.
func TestKeepRefusedInTrainingChain(t *testing.T) {
	src := "version: 1\nname: k\nstages:\n  - id: in\n    load: {dir: x}\n  - id: f\n    translate: {model: scorer}\n  - id: g\n    keep: {score: bpd, below: 3}\n    translate: {model: edges}\ntrain:\n  model: trainonly\n  input: g\n  output: w.bin\n"
	_, got := buildScored(t, src)
	want := `p.yaml:9:5: train.input: stage "g" has keep:, which a training's data chain cannot apply (it maps every item to one) (keep the items with pipeline run and save, then train on that folder)`
	found := false
	for _, l := range got {
		found = found || l == want
	}
	if !found {
		t.Errorf("errors:\n%s\nwant among them:\n%s", strings.Join(got, "\n"), want)
	}
}
