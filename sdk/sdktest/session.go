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
// and records what the plugin reports and saves. It has no held-out data.
type Session struct {
	Req     sdk.TrainRequest
	Batches []*sdk.Batch
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

// Eval returns io.EOF: the session has no held-out data.
func (s *Session) Eval(ctx context.Context) (*sdk.Batch, error) { return nil, io.EOF }

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
