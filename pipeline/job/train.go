package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// MetadataPrefix starts the safetensors metadata keys the host adds to
// trained weights; the plugin's own keys are left as they are.
const MetadataPrefix = "genpipe."

// TrainOptions configure a training run.
type TrainOptions struct {
	// Fresh ignores (and removes) an existing checkpoint and trains from
	// the start, replacing the output if it exists.
	Fresh bool
	// Workers decode and preprocess items (<= 0: the number of CPUs).
	Workers int
	// Version is the code version recorded in the weights' metadata.
	Version string
	// Progress receives events; it is called from one goroutine at a time.
	Progress func(TrainProgress)
}

// TrainProgress is a training progress event, as the host reports it (the
// plugin reports to the host with sdk.TrainEvent).
type TrainProgress struct {
	// Type is "start", "step" (the plugin reported progress), "message" (it
	// sent text), "checkpoint" (a checkpoint was written), "samples" (a
	// grid of the plugin's samples was written) or "done".
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Epoch (from 1) and Step count what the host has handed out, from the
	// start of training (also when resuming); Steps and Epochs are the
	// plan. Items counts the items handed out by this process, for rates.
	Epoch  int `json:"epoch"`
	Epochs int `json:"epochs"`
	Step   int `json:"step"`
	Steps  int `json:"steps"`
	Items  int `json:"items"`
	// Metrics are the plugin's last reported scalars (loss terms, ...);
	// for "message", the ones the plugin sent with the message (none, or,
	// say, the held-out metrics the message announces).
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Message string             `json:"message,omitempty"`
	// Path is the checkpoint written, for "checkpoint", or the grid, for
	// "samples".
	Path string `json:"path,omitempty"`
}

// TrainResult says what a training run did.
type TrainResult struct {
	// AlreadyDone is set when the output existed without a checkpoint:
	// nothing was trained (TrainOptions.Fresh trains again).
	AlreadyDone bool
	// ResumedAt is the step the run resumed from (0: from the start).
	ResumedAt int
	// Step is the number of batches handed out from the start of training;
	// Steps and Epochs the plan; Items the items this process handed out.
	Step, Steps, Epochs, Items int
	// Examples is the number of items of the training stage, EvalExamples
	// of the eval stage (0: none).
	Examples, EvalExamples int
	// Metrics are the plugin's last reported scalars.
	Metrics map[string]float64
	// Checkpoints counts the checkpoints this process wrote; Checkpoint is
	// the path, and CheckpointStep the step of the one on disk (-1: none).
	Checkpoints    int
	Checkpoint     string
	CheckpointStep int
	// Samples counts the sample grids this process wrote, LastSamples is
	// the newest one's path.
	Samples     int
	LastSamples string
	// Output is the weights file written and OutputSHA256 its checksum
	// ("" when the run did not finish).
	Output, OutputSHA256 string
	// Took is the wall time of this process's training.
	Took time.Duration
}

// Train runs the train: section of a plan: it lists the input (and eval)
// stage's items, streams shuffled batches of them to the plugin (through
// the model stages of their chain, whose models it loads once for the
// whole training), writes
// the checkpoints it sends and, at the end, the final weights. It resumes
// from the checkpoint file unless opt.Fresh. On an error the last
// checkpoint is kept, so a rerun resumes.
func Train(ctx context.Context, p *plan.Plan, m *pluginhost.Host, opt TrainOptions) (*TrainResult, error) {
	tr := p.Train
	if tr == nil {
		return nil, fmt.Errorf("%s has no train: section", p.File)
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	t := &trainer{p: p, tr: tr, opt: opt, metrics: map[string]float64{},
		res: &TrainResult{Checkpoint: tr.Checkpoint, CheckpointStep: -1, Epochs: tr.Epochs}}
	if done, err := t.fresh(); done || err != nil {
		if err != nil {
			return nil, err
		}
		return t.res, nil
	}
	t.models = newTrainModels(p, m)
	defer t.models.close()
	if err := t.openData(ctx); err != nil {
		return nil, err
	}
	if err := t.readInit(); err != nil {
		return nil, err
	}
	start, err := t.resume()
	if err != nil {
		return nil, err
	}
	if tr.SampleDir != "" && start == 0 {
		if err := clearSamples(tr.SampleDir); err != nil {
			return nil, fmt.Errorf("train.samples: removing the grids of an earlier run: %w", err)
		}
	}
	plug, err := m.Open(ctx, pluginhost.Ref{Name: tr.Model, Path: tr.Path, SHA256: tr.SHA256})
	if err != nil {
		return nil, err
	}
	t.f = newFeed(ctx, t.data, t.roles, tr.Batch, tr.Epochs, tr.Shuffle, p.Seed, start)
	defer t.f.close()
	if t.eval != nil {
		defer t.eval.close()
	}
	if t.evalRoles != nil {
		defer t.evalRoles.close()
	}

	began := time.Now()
	ev := t.position()
	ev.Type = "start"
	if start > 0 {
		ev.Message = fmt.Sprintf("resuming from %s at step %d/%d", tr.Checkpoint, start, t.res.Steps)
	}
	t.emit(ev)

	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t.cancel = cancel
	err = plug.Train(tctx, t.req, t.f.Next, t.event, t.weights)
	t.res.Step, t.res.Items = t.f.position()
	t.res.Metrics = t.metrics
	t.res.Took = time.Since(began)
	return t.finish(ctx, err)
}

// trainer drives one training run: it prepares the data and the request,
// resumes from a checkpoint, turns the plugin's events into progress,
// sample grids, checkpoints and the final weights, and finishes the run.
type trainer struct {
	p   *plan.Plan
	tr  *plan.Training
	opt TrainOptions
	res *TrainResult

	data *dataset
	eval *evalSource
	// models are those of the model stages in the data chains.
	models *trainModels
	// roles are the other train inputs of a preset with several (nil
	// otherwise); evalRoles their held-out data.
	roles     []*roleData
	evalRoles *evalRoles
	per       int // steps per epoch
	outSpec   *sdk.ImageSpec
	state     checkpointState
	req       sdk.TrainRequest
	initSum   string
	f         *feed
	cancel    context.CancelFunc

	mu       sync.Mutex
	metrics  map[string]float64
	final    bool
	writeErr error
}

// fresh removes the checkpoint for a fresh run, or reports a run that is
// done already (the output exists without a checkpoint).
func (t *trainer) fresh() (done bool, err error) {
	if t.opt.Fresh {
		if err := os.Remove(t.tr.Checkpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("train: removing the old checkpoint: %w", err)
		}
	} else if exists(t.tr.Output) && !exists(t.tr.Checkpoint) {
		t.res.AlreadyDone = true
		t.res.Output = t.tr.Output
		return true, nil
	}
	return false, nil
}

// openData lists the training (and eval) items and plans the steps, the
// checkpoint state and the plugin's request.
func (t *trainer) openData(ctx context.Context) error {
	tr, p := t.tr, t.p
	var spec *sdk.ImageSpec
	if tr.PresetSpec != nil {
		spec, t.outSpec = tr.PresetSpec.Input, tr.PresetSpec.Output
	}
	data, err := newDataset(ctx, p, tr.Input, spec, t.opt.Workers, t.models)
	if err != nil {
		return fmt.Errorf("train.input: %w", err)
	}
	t.data = data
	t.res.Examples = data.Len()
	if tr.Eval != "" {
		ed, err := newDataset(ctx, p, tr.Eval, spec, t.opt.Workers, t.models)
		if err != nil {
			return fmt.Errorf("train.eval: %w", err)
		}
		t.eval = &evalSource{ctx: ctx, d: ed, batch: tr.Batch, seed: p.Seed ^ 0x6576616c} // "eval"
		t.res.EvalExamples = ed.Len()
	}
	if len(tr.Roles) > 1 {
		if t.roles, err = openRoles(ctx, p, data, false, t.opt.Workers, t.models); err != nil {
			return err
		}
		if t.eval != nil {
			er, err := openRoles(ctx, p, t.eval.d, true, t.opt.Workers, t.models)
			if err != nil {
				return err
			}
			t.evalRoles = &evalRoles{ctx: ctx, roles: er, window: tr.Batch}
		}
	}
	t.per = stepsPerEpoch(data.Len(), tr.Batch)
	t.res.Steps = t.per * tr.Epochs
	t.state = checkpointState{
		Version: 1, File: filepath.Base(p.File), FileSHA256: p.SHA256, Model: tr.Model, Preset: tr.Preset,
		Seed: p.Seed, Shuffle: tr.Shuffle, Items: data.Len(), Batch: tr.Batch, Epochs: tr.Epochs,
	}
	t.req = sdk.TrainRequest{
		Preset: tr.Preset, Params: tr.Params, Seed: p.Seed,
		Epochs: tr.Epochs, Steps: t.res.Steps, CheckpointEvery: tr.CheckpointEvery,
		SampleEvery: tr.SampleEvery,
	}
	if t.eval != nil {
		t.req.Eval = t.eval.Eval
		if t.evalRoles != nil {
			t.req.Eval = t.evalRoles.wrap(t.eval.Eval, func() []string { return t.eval.sources })
		}
	}
	for _, m := range data.models() {
		var parts []string
		for _, k := range []string{"model", "preset", "weights", "params"} {
			v, ok := m[k]
			if !ok {
				continue
			}
			if k == "params" {
				// JSON: sorted keys, the same text for the same values.
				b, err := json.Marshal(v)
				if err != nil {
					return err
				}
				v = string(b)
			}
			parts = append(parts, fmt.Sprint(v))
		}
		t.state.Models = append(t.state.Models, fmt.Sprintf("%s: %s", m["stage"], strings.Join(parts, " ")))
	}
	for _, r := range t.roles {
		// A role's count fixes its order: a resume with another count
		// would not continue the same stream.
		t.state.RoleItems = append(t.state.RoleItems, r.d.Len())
	}
	return nil
}

// readInit reads the weights train.init starts from.
func (t *trainer) readInit() error {
	if t.tr.Init == "" {
		return nil
	}
	w, err := os.ReadFile(t.tr.Init)
	if err != nil {
		return fmt.Errorf("train.init: %w", err)
	}
	sum := sha256.Sum256(w)
	t.req.Init, t.initSum = w, hex.EncodeToString(sum[:])
	return nil
}

// resume continues from the checkpoint, if there is one that fits the
// run, and returns the step to start at.
func (t *trainer) resume() (int, error) {
	if t.opt.Fresh {
		return 0, nil
	}
	tr := t.tr
	old, resume, err := readCheckpoint(tr.Checkpoint)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("train: %w (--fresh starts over)", err)
	}
	if why := old.mismatch(t.state); why != "" {
		return 0, fmt.Errorf("train: checkpoint %s cannot be resumed: %s; --fresh starts over", tr.Checkpoint, why)
	}
	if old.FileSHA256 != t.state.FileSHA256 {
		t.emit(TrainProgress{Type: "message", Message: fmt.Sprintf("%s changed since checkpoint %s was written; resuming with the file as it is now", t.p.File, filepath.Base(tr.Checkpoint))})
	}
	// The checkpoint carries the weights: init only starts a run.
	start := old.Step
	t.req.Resume, t.req.Init = resume, nil
	t.res.ResumedAt, t.res.CheckpointStep = start, start
	return start, nil
}

func (t *trainer) emit(ev TrainProgress) {
	if t.opt.Progress != nil {
		ev.Time = time.Now()
		t.opt.Progress(ev)
	}
}

// position is a progress event at the feed's current position.
func (t *trainer) position() TrainProgress {
	step, items := t.f.position()
	epoch := min(t.tr.Epochs, 1+step/t.per)
	if step == 0 {
		epoch = 1
	}
	return TrainProgress{Epoch: epoch, Epochs: t.tr.Epochs, Step: step, Steps: t.res.Steps, Items: items}
}

// event handles the plugin's progress: metrics, messages, sample grids.
func (t *trainer) event(e sdk.TrainEvent) {
	t.mu.Lock()
	maps.Copy(t.metrics, e.Metrics)
	snapshot := maps.Clone(t.metrics)
	t.mu.Unlock()
	ev := t.position()
	ev.Metrics = snapshot
	if len(e.Metrics) > 0 {
		ev.Type = "step"
		t.emit(ev)
	}
	if e.Message != "" {
		// The metrics sent with a message are what it is about (say, the
		// held-out metrics after an epoch): the event carries those, not
		// the running snapshot, so that the message can show its values.
		ev.Type, ev.Message, ev.Metrics = "message", e.Message, maps.Clone(e.Metrics)
		t.emit(ev)
	}
	if e.Samples != nil && t.tr.SampleDir != "" {
		t.samples(e)
	}
}

// samples writes a grid of the plugin's samples. A grid that cannot be
// written is reported, not fatal: it is a view of the training, not its
// result.
func (t *trainer) samples(e sdk.TrainEvent) {
	ev := t.position()
	path, err := writeSamples(t.tr.SampleDir, e, t.outSpec)
	if err != nil {
		ev.Type, ev.Message = "message", fmt.Sprintf("train: samples of step %d: %v", e.Step, err)
	} else {
		ev.Type, ev.Path = "samples", path
		t.res.Samples++
		t.res.LastSamples = path
	}
	t.emit(ev)
}

// weights writes what the plugin saves: a checkpoint, or the final
// weights. A write error stops training.
func (t *trainer) weights(w []byte, isFinal bool) {
	if t.writeErr != nil {
		return
	}
	if isFinal {
		t.finalWeights(w)
	} else {
		t.checkpoint(w)
	}
}

func (t *trainer) finalWeights(w []byte) {
	tr := t.tr
	out, err := addMetadata(w, t.p, t.data, t.roles, t.eval, t.res, t.opt.Version, t.initSum)
	if err == nil {
		err = writeAtomic(tr.Output, out)
	}
	if err != nil {
		t.writeErr = fmt.Errorf("train: writing the weights %s: %w", tr.Output, err)
		t.cancel()
		return
	}
	sum := sha256.Sum256(out)
	t.res.OutputSHA256 = hex.EncodeToString(sum[:])
	t.final = true
}

func (t *trainer) checkpoint(w []byte) {
	tr := t.tr
	st := t.state
	// The plugin saved after training on the batches it received: the
	// count handed out so far (its next request comes after this message
	// on the stream).
	st.Step, _ = t.f.position()
	st.Epoch, st.EpochBatches = st.Step/t.per, st.Step%t.per
	st.Time = time.Now().UTC().Format(time.RFC3339)
	if err := writeCheckpoint(tr.Checkpoint, st, w); err != nil {
		t.writeErr = fmt.Errorf("train: writing checkpoint %s: %w", tr.Checkpoint, err)
		t.cancel()
		return
	}
	t.res.Checkpoints++
	t.res.CheckpointStep = st.Step
	ev := t.position()
	ev.Type, ev.Path = "checkpoint", tr.Checkpoint
	t.emit(ev)
}

// finish turns the end of the plugin's training (err from its Train) into
// the result: the error that explains it, or the output in place and the
// checkpoint removed.
func (t *trainer) finish(ctx context.Context, err error) (*TrainResult, error) {
	res := t.res
	switch {
	case t.writeErr != nil:
		return res, t.writeErr
	case ctx.Err() != nil:
		return res, ctx.Err()
	case err != nil:
		t.f.mu.Lock()
		dataErr := t.f.failed
		t.f.mu.Unlock()
		if dataErr != nil {
			return res, fmt.Errorf("train: reading training data: %w", dataErr)
		}
		var ce *pluginhost.CrashError
		if errors.As(err, &ce) {
			msg := fmt.Sprintf("train: plugin %s died during training, after step %d", ce.Plugin, res.Step)
			if len(ce.Stderr) > 0 {
				msg += "; its stderr ended with:\n    " + strings.Join(ce.Stderr, "\n    ")
			}
			return res, fmt.Errorf("%s\n  (%w)", msg, ce.Err)
		}
		return res, fmt.Errorf("train: %w", err)
	case !t.final:
		return res, fmt.Errorf("train: plugin %s returned without sending final weights (TrainSession.Save(w, true))", t.tr.Model)
	}
	res.Output = t.tr.Output
	if err := os.Remove(t.tr.Checkpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("train: removing the checkpoint after training: %w", err)
	}
	ev := t.position()
	ev.Type, ev.Metrics = "done", maps.Clone(t.metrics)
	t.emit(ev)
	return res, nil
}

// mismatch says why a checkpoint written with state c cannot continue the
// data stream of a run with state now ("" when it can).
func (c checkpointState) mismatch(now checkpointState) string {
	switch {
	case c.Model != now.Model || c.Preset != now.Preset:
		return fmt.Sprintf("it was written for model %q preset %q, the file trains %q preset %q", c.Model, c.Preset, now.Model, now.Preset)
	case c.Seed != now.Seed:
		return fmt.Sprintf("it was written with seed %d, the run has seed %d", c.Seed, now.Seed)
	case c.Shuffle != now.Shuffle:
		return fmt.Sprintf("it was written with shuffle %v, the run has shuffle %v", c.Shuffle, now.Shuffle)
	case c.Items != now.Items:
		return fmt.Sprintf("it was written for %d training items, the input now has %d", c.Items, now.Items)
	case !slices.Equal(c.RoleItems, now.RoleItems):
		return fmt.Sprintf("it was written for %v items of the other train inputs, they now have %v", c.RoleItems, now.RoleItems)
	case !slices.Equal(c.Models, now.Models):
		through := func(ms []string) string {
			if len(ms) == 0 {
				return "no model"
			}
			return strings.Join(ms, ", then ")
		}
		return fmt.Sprintf("it was written for items through %s; the input now goes through %s", through(c.Models), through(now.Models))
	case c.Batch != now.Batch:
		return fmt.Sprintf("it was written with batch %d, the run has batch %d", c.Batch, now.Batch)
	}
	return ""
}

// addMetadata records the training in the metadata of safetensors weights
// (keys starting with MetadataPrefix; the plugin's own keys are kept).
// Other weights are returned as they are.
func addMetadata(w []byte, p *plan.Plan, data *dataset, roles []*roleData, eval *evalSource, res *TrainResult, version, initSum string) ([]byte, error) {
	f, err := safetensors.Decode(w)
	if err != nil {
		return w, nil // not safetensors: the plugin's own format
	}
	tr := p.Train
	config, err := json.Marshal(tr.Config)
	if err != nil {
		return nil, err
	}
	ds := map[string]any{"stage": data.stage, "load": data.source, "items": data.Len()}
	if ms := data.models(); ms != nil {
		ds["models"] = ms
	}
	if eval != nil {
		e := map[string]any{"stage": eval.d.stage, "load": eval.d.source, "items": eval.d.Len()}
		if ms := eval.d.models(); ms != nil {
			e["models"] = ms
		}
		ds["eval"] = e
	}
	if len(roles) > 0 {
		ds["role"] = p.Train.Roles[0].Name
		others := map[string]any{}
		for _, r := range roles {
			others[r.name] = map[string]any{"stage": r.d.stage, "load": r.d.source, "items": r.d.Len(), "paired": r.paired}
		}
		ds["inputs"] = others
	}
	dataset, err := json.Marshal(ds)
	if err != nil {
		return nil, err
	}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	meta := map[string]string{
		"train_config": string(config),
		"dataset":      string(dataset),
		"seed":         strconv.FormatUint(p.Seed, 10),
		"file":         filepath.Base(p.File),
		"file_sha256":  p.SHA256,
		"version":      version,
		"date":         time.Now().UTC().Format(time.RFC3339),
		"model":        tr.Model,
		"preset":       tr.Preset,
		"steps":        strconv.Itoa(res.Steps),
	}
	if tr.Init != "" {
		// Where the run started matters to reproduce it: which file, and
		// exactly which bytes.
		in, err := json.Marshal(map[string]string{"file": filepath.Base(tr.Init), "sha256": initSum})
		if err != nil {
			return nil, err
		}
		meta["init"] = string(in)
	}
	if len(p.Overrides) > 0 {
		// train_config has their effect; this says they were flags.
		o, err := json.Marshal(p.Overrides)
		if err != nil {
			return nil, err
		}
		meta["overrides"] = string(o)
	}
	for k, v := range meta {
		f.Metadata[MetadataPrefix+k] = v
	}
	return f.Encode()
}
