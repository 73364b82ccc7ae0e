package sdktest

import (
	"context"
	"fmt"
	"io"

	"github.com/genpipe/genpipe/sdk"
	"github.com/hashicorp/go-hclog"
)

// Session is an in-process sdk.TrainSession for a plugin's own unit tests:
// it hands out Batches in order (io.EOF after them, or after StopAt of them
// when StopAt > 0; set Pos to start further in, as a resumed host does),
// passes over EvalBatches as held-out data, and records what the plugin
// reports and saves.
type Session struct {
	Req     sdk.TrainRequest
	Batches []*sdk.Batch
	// EvalBatches are the held-out data: Eval returns them in order, then
	// io.EOF, and starts over on the call after that.
	EvalBatches []*sdk.Batch
	evalPos     int
	// Pos is the index of the next batch Next returns.
	Pos    int
	StopAt int
	// Events are the reported events; Checkpoint the last checkpoint and
	// Final the final weights saved.
	Events     []sdk.TrainEvent
	Checkpoint []byte
	Final      []byte
}

var _ sdk.TrainSession = (*Session)(nil)

// Request returns Req.
func (s *Session) Request() sdk.TrainRequest { return s.Req }

// Next returns the next batch, or io.EOF.
func (s *Session) Next(ctx context.Context) (*sdk.Batch, error) {
	if s.Pos >= len(s.Batches) || (s.StopAt > 0 && s.Pos >= s.StopAt) {
		return nil, io.EOF
	}
	s.Pos++
	return s.Batches[s.Pos-1], nil
}

// Eval returns the next held-out batch of the current pass, or io.EOF at
// its end.
func (s *Session) Eval(ctx context.Context) (*sdk.Batch, error) {
	if s.evalPos >= len(s.EvalBatches) {
		s.evalPos = 0
		return nil, io.EOF
	}
	s.evalPos++
	return s.EvalBatches[s.evalPos-1], nil
}

// Report records ev; like the real session it refuses malformed samples.
func (s *Session) Report(ev sdk.TrainEvent) error {
	if ev.Samples != nil {
		if err := ev.Samples.Check(); err != nil {
			return fmt.Errorf("train: report: samples: %w", err)
		}
	}
	s.Events = append(s.Events, ev)
	return nil
}

// Save records a copy of the weights as the checkpoint or the final weights.
func (s *Session) Save(w []byte, final bool) error {
	if final {
		s.Final = append([]byte(nil), w...)
	} else {
		s.Checkpoint = append([]byte(nil), w...)
	}
	return nil
}

// Logger discards.
func (s *Session) Logger() hclog.Logger { return hclog.NewNullLogger() }
