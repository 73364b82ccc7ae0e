package spec

import (
	"reflect"
	"strings"
	"testing"
)

const trainFile = `version: 1
name: t
seed: 5
stages:
  - id: digits
    load: {dir: x}
train:
  model: vae
  epochs: 3
  checkpoint: {every: 10}
  params:
    lr: 0.001
`

// TestTrainSection reads a train: section into plain values with the
// position of every key, as stage values are read.
func TestTrainSection(t *testing.T) {
	s, errs := Parse("p.yaml", []byte(trainFile), nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tr := s.Train
	if tr == nil || tr.Bad {
		t.Fatalf("train section: %+v", tr)
	}
	want := map[string]any{"model": "vae", "epochs": 3, "checkpoint": map[string]any{"every": 10}, "params": map[string]any{"lr": 0.001}}
	if !reflect.DeepEqual(tr.Value, want) {
		t.Errorf("value %#v, want %#v", tr.Value, want)
	}
	for _, c := range []struct {
		path       string
		key, value string
	}{
		{"", "p.yaml:7:1", "p.yaml:8:3"},
		{"epochs", "p.yaml:9:3", "p.yaml:9:11"},
		{"checkpoint.every", "p.yaml:10:16", "p.yaml:10:23"},
		{"params.lr", "p.yaml:12:5", "p.yaml:12:9"},
		{"params.nosuch", "p.yaml:11:3", "p.yaml:12:5"}, // the nearest parent
	} {
		if got := tr.KeyPos(c.path).String(); got != c.key {
			t.Errorf("KeyPos(%q) = %s, want %s", c.path, got, c.key)
		}
		if got := tr.ValuePos(c.path).String(); got != c.value {
			t.Errorf("ValuePos(%q) = %s, want %s", c.path, got, c.value)
		}
	}
	if !tr.HasPath("checkpoint.every") || tr.HasPath("batch") {
		t.Errorf("HasPath: checkpoint.every %v, batch %v", tr.HasPath("checkpoint.every"), tr.HasPath("batch"))
	}
}

func TestTrainSectionErrors(t *testing.T) {
	head := "version: 1\nname: t\nstages:\n  - {id: a, load: {dir: x}}\n"
	tests := []struct {
		name      string
		src       string
		overrides []string
		want      []string
	}{
		{name: "not a mapping", src: head + "train: [vae]\n", want: []string{`p.yaml:5:8: train: expected a mapping such as {model: NAME, input: STAGE, output: FILE}, got a list`}},
		{name: "empty", src: head + "train:\n", want: []string{`p.yaml:5:7: train: expected a mapping such as {model: NAME, input: STAGE, output: FILE}, got nothing`}},
		{name: "misspelt", src: head + "trian: {model: vae}\n", want: []string{`p.yaml:5:1: unknown key "trian" (did you mean "train"?)`}},
		{name: "duplicate key", src: head + "train: {model: vae, model: gan}\n", want: []string{`p.yaml:5:21: duplicate key "model" (first given at p.yaml:5:9)`}},
		{name: "set on a train section that is not a mapping", src: head + "train: 3\n", overrides: []string{"train.epochs=2"},
			want: []string{`p.yaml:5:8: train: expected a mapping such as {model: NAME, input: STAGE, output: FILE}, got int 3`}},
		{name: "ambiguous set", src: "version: 1\nname: t\nstages:\n  - {id: train, load: {dir: x}}\ntrain: {model: vae}\n", overrides: []string{"train.epochs=2"},
			want: []string{`--set train.epochs: ambiguous: the file has a train: section and a stage with id "train" (rename the stage)`}},
		{name: "set into a scalar", src: head + "train: {model: vae, params: 3}\n", overrides: []string{"train.params.lr=2"},
			want: []string{`--set train.params.lr: train.params is not a mapping (it is int 3), so it has no key "lr"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse("p.yaml", []byte(tc.src), tc.overrides)
			if got := errLines(errs); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestTrainOverride: --set train.KEY=VALUE sets keys of the train: section,
// nested ones too, positioned at the flag; a stage id is still addressed as
// before.
func TestTrainOverride(t *testing.T) {
	s, errs := Parse("p.yaml", []byte(trainFile), []string{"train.epochs=1", "train.params.beta=2", "digits.limit=4"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := s.Train.Value["epochs"]; got != 1 {
		t.Errorf("epochs = %v, want 1", got)
	}
	if got := s.Train.Value["params"]; !reflect.DeepEqual(got, map[string]any{"lr": 0.001, "beta": 2}) {
		t.Errorf("params = %v", got)
	}
	if got := s.Train.ValuePos("epochs").String(); got != "--set train.epochs" {
		t.Errorf("epochs at %s, want the flag", got)
	}
	if got := s.Stage("digits").Value.(map[string]any)["limit"]; got != 4 {
		t.Errorf("digits.limit = %v, want 4", got)
	}
}
