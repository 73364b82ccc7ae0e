package plan

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/spec"
)

// TestTrainDefaults: a minimal train section gets its defaults: one
// epoch, the plugin's batch (else DefaultBatch), shuffle, a checkpoint
// beside the output every DefaultCheckpointEvery steps.
func TestTrainDefaults(t *testing.T) {
	src := "version: 1\nname: t\nstages:\n  - {id: in, load: {dir: x}}\ntrain: {model: trainonly, input: in, output: w/out.bin}\n"
	s, errs := spec.Parse("/p/t.yaml", []byte(src), nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p, errs := Build(context.Background(), s, &fakeDescriber{}, Options{SkipFiles: true})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	tr := p.Train
	want := filepath.Join("/p", "w", "out.bin")
	if tr.Model != "trainonly" || tr.Input != "in" || tr.Epochs != 1 || tr.Batch != DefaultBatch || !tr.Shuffle ||
		tr.Output != want || tr.Checkpoint != want+".ckpt" || tr.CheckpointEvery != DefaultCheckpointEvery {
		t.Errorf("training %+v", tr)
	}
	if tr.Config["batch"] != DefaultBatch || tr.Config["epochs"] != 1 {
		t.Errorf("config %v", tr.Config)
	}
}

// TestTrainUnknownModel: the model of a train section is checked like a
// stage's, with "did you mean".
func TestTrainUnknownModel(t *testing.T) {
	src := "version: 1\nname: t\nstages:\n  - {id: in, load: {dir: x}}\ntrain: {model: trainonyl, input: in, output: o}\n"
	s, _ := spec.Parse("t.yaml", []byte(src), nil)
	_, errs := Build(context.Background(), s, &fakeDescriber{}, Options{SkipFiles: true})
	if got := errs.Error(); !strings.Contains(got, `t.yaml:5:16: train.model: unknown model "trainonyl" (did you mean "trainonly"?)`) {
		t.Errorf("errors:\n%s", got)
	}
}
