package train

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/nn/optim"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
)

// TrainState is everything a resumed run needs to continue exactly as if
// it had not stopped: the parameters and buffers, each optimizer's moments,
// the RNG and the step count. Identity holds what must match between the
// checkpoint and the run resuming it (architecture, preset).
type TrainState struct {
	Params     *layers.Params
	Optimizers map[string]optim.Optimizer
	RNG        *nn.RNG
	Step       int
	Identity   map[string]string
	// Extra is further state a family keeps outside its parameters (a
	// CycleGAN's history pools of generated images), or nil.
	Extra Stateful
}

// Stateful is training state that is neither a parameter nor an optimizer
// moment. Its tensor names must not clash with the parameters'.
type Stateful interface {
	// State returns the tensors and metadata to checkpoint.
	State() ([]safetensors.Tensor, map[string]string, error)
	// Restore reads them back from a checkpoint.
	Restore(f *safetensors.File) error
}

// Checkpoint encodes the state as safetensors.
func (s *TrainState) Checkpoint() ([]byte, error) {
	ts := s.Params.Tensors()
	meta := map[string]string{"kind": "checkpoint", "step": strconv.Itoa(s.Step)}
	maps.Copy(meta, s.Identity)
	for _, name := range slices.Sorted(maps.Keys(s.Optimizers)) {
		ots, om := s.Optimizers[name].State("optim."+name+".", s.Params.Trainable())
		ts = append(ts, ots...)
		maps.Copy(meta, om)
	}
	rs, err := s.RNG.MarshalBinary()
	if err != nil {
		return nil, err
	}
	meta["rng"] = base64.StdEncoding.EncodeToString(rs)
	if s.Extra != nil {
		ets, em, err := s.Extra.State()
		if err != nil {
			return nil, err
		}
		ts = append(ts, ets...)
		maps.Copy(meta, em)
	}
	return (&safetensors.File{Metadata: meta, Tensors: ts}).Encode()
}

// Restore loads a checkpoint made by Checkpoint into the state, after
// checking that its identity matches. On error the state is unusable (the
// run should stop).
func (s *TrainState) Restore(b []byte) error {
	f, err := safetensors.Decode(b)
	if err != nil {
		return err
	}
	if f.Metadata["kind"] != "checkpoint" {
		return fmt.Errorf("not a training checkpoint (kind %q)", f.Metadata["kind"])
	}
	for _, k := range slices.Sorted(maps.Keys(s.Identity)) {
		if got := f.Metadata[k]; got != s.Identity[k] {
			return fmt.Errorf("checkpoint is for %s %s, this run trains %s", k, got, s.Identity[k])
		}
	}
	step, err := strconv.Atoi(f.Metadata["step"])
	if err != nil {
		return fmt.Errorf("checkpoint step: %w", err)
	}
	rs, err := base64.StdEncoding.DecodeString(f.Metadata["rng"])
	if err != nil {
		return fmt.Errorf("checkpoint rng: %w", err)
	}
	// Params.Load refuses unexpected tensors: give it only the parameters.
	wf := &safetensors.File{Metadata: f.Metadata}
	for _, t := range f.Tensors {
		if s.Params.Get(t.Name) != nil {
			wf.Tensors = append(wf.Tensors, t)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Optimizers)) {
		if err := s.Optimizers[name].Restore(f, "optim."+name+".", s.Params.Trainable()); err != nil {
			return err
		}
	}
	if err := s.Params.Load(wf); err != nil {
		return err
	}
	if err := s.RNG.UnmarshalBinary(rs); err != nil {
		return fmt.Errorf("checkpoint rng: %w", err)
	}
	if s.Extra != nil {
		if err := s.Extra.Restore(f); err != nil {
			return err
		}
	}
	s.Step = step
	return nil
}

// Init loads final weights (safetensors written from layers.Params, as a
// plugin's Weights function does) as the starting point of a run, for
// fine-tuning or training longer: parameters and buffers, nothing else.
// Weights whose "arch" metadata differs from the state's Identity["arch"]
// are refused, as are missing or mis-shaped tensors.
func (s *TrainState) Init(b []byte) error {
	f, err := safetensors.Decode(b)
	if err != nil {
		return err
	}
	if want, ok := s.Identity["arch"]; ok {
		if got, ok := f.Metadata["arch"]; ok && got != want {
			return fmt.Errorf("the weights are for architecture %s, this run trains %s", got, want)
		}
	}
	return s.Params.Load(f)
}

// Loop is the training loop every model family shares: it starts from
// the request's checkpoint or init weights, pulls batches from the host,
// runs Step on each, reports averaged metrics and throughput, saves
// checkpoints and reports sample grids when the host asks for them,
// evaluates on the held-out data after every epoch and at the end, and
// sends the final weights.
type Loop struct {
	Session sdk.TrainSession
	State   *TrainState
	// Step trains on one batch and returns its metrics (e.g. loss terms);
	// State.Step is advanced by the loop after it returns.
	Step func(b *sdk.Batch) (map[string]float64, error)
	// Eval, when set, runs one pass over the held-out data (next returns
	// io.EOF at its end) and returns metrics, or nil without data.
	Eval func(ctx context.Context, next func(context.Context) (*sdk.Batch, error)) (map[string]float64, error)
	// Weights encodes the final weights given the final held-out metrics.
	Weights func(metrics map[string]float64) ([]byte, error)
	// LogEvery is the number of steps between progress events (default 50).
	LogEvery int
	// Warn, when set, looks at each progress event's averaged metrics and
	// returns a warning for the host to show (e.g. mode collapse), or "".
	Warn func(avg map[string]float64) string
	// Samples, when set, makes images (NCHW, the preset's output format)
	// from fixed inputs with the model as it is, and the grid's columns
	// (0: the host chooses); nil images when it has nothing to show yet
	// (say, before its first batch). eval is the session's held-out data,
	// for models whose samples need inputs: read whole passes of it (a
	// pass left unfinished would shift the next evaluation's). The loop
	// reports samples before the first step of a fresh run, every
	// TrainRequest.SampleEvery steps and after the last one, so that the
	// host can save grids of the model's progress.
	Samples func(ctx context.Context, eval func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error)
}

// sample reports the model's samples at the current step.
func (l *Loop) sample(ctx context.Context, epoch int) error {
	t, cols, err := l.Samples(ctx, l.Session.Eval)
	if err != nil {
		return fmt.Errorf("samples at step %d: %w", l.State.Step, err)
	}
	if t == nil {
		return nil
	}
	req := l.Session.Request()
	return l.Session.Report(sdk.TrainEvent{Epoch: epoch, Step: l.State.Step, Total: req.Steps, Samples: t, SampleColumns: cols})
}

// Run trains until the host's data ends or ctx is done, resuming from
// the request's checkpoint if there is one, else starting from its Init
// weights if any. It returns the final held-out metrics.
func (l *Loop) Run(ctx context.Context) (map[string]float64, error) {
	s := l.Session
	req := s.Request()
	if req.Resume != nil {
		if err := l.State.Restore(req.Resume); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		s.Logger().Info("resumed from checkpoint", "step", l.State.Step)
	} else if req.Init != nil {
		if err := l.State.Init(req.Init); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	perEpoch := 0
	if req.Epochs > 0 && req.Steps > 0 {
		perEpoch = req.Steps / req.Epochs
	}
	logEvery := l.LogEvery
	if logEvery <= 0 {
		logEvery = 50
	}
	sums := map[string]float64{}
	count, items := 0, 0
	start := time.Now()
	epochOf := func(step int) int {
		if perEpoch == 0 {
			return 0
		}
		return (step-1)/perEpoch + 1
	}
	sampling := l.Samples != nil && req.SampleEvery > 0
	if sampling && l.State.Step == 0 {
		if err := l.sample(ctx, 0); err != nil {
			return nil, err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		met, err := l.Step(b)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", l.State.Step+1, err)
		}
		for k, v := range met {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("step %d: %s is %v (try a lower lr)", l.State.Step+1, k, v)
			}
			sums[k] += v
		}
		l.State.Step++
		step := l.State.Step
		count++
		items += b.Len()
		endOfEpoch := perEpoch > 0 && step%perEpoch == 0
		if step%logEvery == 0 || endOfEpoch {
			avg := map[string]float64{"items_per_s": float64(items) / time.Since(start).Seconds()}
			for k, v := range sums {
				avg[k] = v / float64(count)
			}
			ev := sdk.TrainEvent{Epoch: epochOf(step), Step: step, Total: req.Steps, Metrics: avg}
			if l.Warn != nil {
				ev.Message = l.Warn(avg)
			}
			if err := s.Report(ev); err != nil {
				return nil, err
			}
			clear(sums)
			count, items, start = 0, 0, time.Now()
		}
		if req.CheckpointEvery > 0 && step%req.CheckpointEvery == 0 {
			ck, err := l.State.Checkpoint()
			if err != nil {
				return nil, err
			}
			if err := s.Save(ck, false); err != nil {
				return nil, err
			}
		}
		if sampling && step%req.SampleEvery == 0 {
			if err := l.sample(ctx, epochOf(step)); err != nil {
				return nil, err
			}
		}
		if endOfEpoch && step < req.Steps && l.Eval != nil {
			met, err := l.Eval(ctx, s.Eval)
			if err != nil {
				return nil, fmt.Errorf("evaluate after step %d: %w", step, err)
			}
			if met != nil {
				if err := s.Report(sdk.TrainEvent{Epoch: epochOf(step), Step: step, Total: req.Steps, Metrics: met, Message: "held-out metrics"}); err != nil {
					return nil, err
				}
			}
		}
	}
	if sampling && l.State.Step%req.SampleEvery != 0 {
		if err := l.sample(ctx, epochOf(l.State.Step)); err != nil {
			return nil, err
		}
	}
	var final map[string]float64
	if l.Eval != nil {
		var err error
		if final, err = l.Eval(ctx, s.Eval); err != nil {
			return nil, fmt.Errorf("final evaluation: %w", err)
		}
		if final != nil {
			if err := s.Report(sdk.TrainEvent{Step: l.State.Step, Total: req.Steps, Metrics: final, Message: "final held-out metrics"}); err != nil {
				return nil, err
			}
		}
	}
	w, err := l.Weights(final)
	if err != nil {
		return nil, err
	}
	return final, s.Save(w, true)
}
