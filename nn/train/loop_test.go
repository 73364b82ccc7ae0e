package train

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/nn"
	"github.com/genpipe/genpipe/nn/layers"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/safetensors"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// counterModel is the smallest model the loop can train: w moves towards
// each batch's mean; its samples are a 2x2 image of w.
type counterModel struct {
	state *TrainState
	w     *layers.Param
}

func newCounterModel(arch string) *counterModel {
	ps := layers.NewParams()
	m := &counterModel{w: ps.Add("w", 1)}
	m.state = &TrainState{Params: ps, RNG: nn.NewRNG(1), Identity: map[string]string{"arch": arch}}
	return m
}

func (m *counterModel) loop(s sdk.TrainSession) *Loop {
	return &Loop{Session: s, State: m.state, LogEvery: 1,
		Step: func(b *sdk.Batch) (map[string]float64, error) {
			var sum float64
			for _, v := range b.Data {
				sum += float64(v)
			}
			m.w.Data()[0] += 0.5 * (float32(sum/float64(len(b.Data))) - m.w.Data()[0])
			return map[string]float64{"w": float64(m.w.Data()[0])}, nil
		},
		Weights: func(map[string]float64) ([]byte, error) {
			return (&safetensors.File{Metadata: map[string]string{"arch": m.state.Identity["arch"]}, Tensors: m.state.Params.Tensors()}).Encode()
		},
		Samples: func(context.Context, func(context.Context) (*sdk.Batch, error)) (*sdk.Tensor, int, error) {
			v := uint8(min(255, m.w.Data()[0]))
			return sdk.FromUint8([]uint8{v, v, v, v}, 1, 1, 2, 2), 1, nil
		},
	}
}

func sampleSteps(evs []sdk.TrainEvent) []int {
	var steps []int
	for _, ev := range evs {
		if ev.Samples != nil {
			steps = append(steps, ev.Step)
		}
	}
	return steps
}

// TestLoopSamplesResumeInit: samples come before the first step of a fresh
// run, every SampleEvery steps and after the last (not again at step 0 of a
// resumed run); a resumed run ends where the straight one does; Init starts
// from given weights and refuses another architecture's.
func TestLoopSamplesResumeInit(t *testing.T) {
	var batches []*sdk.Batch
	for i := 0; i < 7; i++ {
		batches = append(batches, &sdk.Batch{Tensor: sdk.FromUint8([]uint8{uint8(10 * i), uint8(10*i + 2)}, 2, 1)})
	}
	req := sdk.TrainRequest{Epochs: 1, Steps: 7, CheckpointEvery: 3, SampleEvery: 3}
	ctx := context.Background()

	straight := &sdktest.Session{Req: req, Batches: batches}
	if _, err := newCounterModel("a").loop(straight).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sampleSteps(straight.Events); !slices.Equal(got, []int{0, 3, 6, 7}) {
		t.Errorf("fresh run: samples at steps %v, want [0 3 6 7]", got)
	}

	part := &sdktest.Session{Req: req, Batches: batches, StopAt: 3}
	if _, err := newCounterModel("a").loop(part).Run(ctx); err != nil {
		t.Fatal(err)
	}
	rest := &sdktest.Session{Req: req, Batches: batches, Pos: 3}
	rest.Req.Resume = part.Checkpoint
	if _, err := newCounterModel("a").loop(rest).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sampleSteps(rest.Events); !slices.Equal(got, []int{6, 7}) {
		t.Errorf("resumed run: samples at steps %v, want [6 7]", got)
	}
	if string(rest.Final) != string(straight.Final) {
		t.Errorf("resumed run ends with other weights than the straight run")
	}

	// Init: no data, so the final weights are the init weights.
	init := &sdktest.Session{Req: sdk.TrainRequest{Init: straight.Final}}
	m := newCounterModel("a")
	if _, err := m.loop(init).Run(ctx); err != nil {
		t.Fatal(err)
	}
	if string(init.Final) != string(straight.Final) {
		t.Errorf("a run from init weights without data changed them")
	}
	other := &sdktest.Session{Req: sdk.TrainRequest{Init: straight.Final}}
	_, err := newCounterModel("b").loop(other).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "init: the weights are for architecture a, this run trains b") {
		t.Errorf("init with another architecture's weights: %v", err)
	}
}

// TestLoopStopsOnNaN: a metric that is NaN or infinite stops training
// with an error naming the step and the metric.
func TestLoopStopsOnNaN(t *testing.T) {
	batches := []*sdk.Batch{{Tensor: sdk.FromUint8([]uint8{1}, 1, 1)}, {Tensor: sdk.FromUint8([]uint8{1}, 1, 1)}}
	s := &sdktest.Session{Req: sdk.TrainRequest{Steps: 2}, Batches: batches}
	m := newCounterModel("a")
	l := m.loop(s)
	l.Step = func(b *sdk.Batch) (map[string]float64, error) {
		if m.state.Step == 1 {
			return map[string]float64{"loss": math.NaN()}, nil
		}
		return map[string]float64{"loss": 1}, nil
	}
	_, err := l.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "step 2: loss is NaN") {
		t.Errorf("got %v, want a NaN error at step 2", err)
	}
	if s.Final != nil {
		t.Errorf("final weights were sent after a NaN loss")
	}
}
