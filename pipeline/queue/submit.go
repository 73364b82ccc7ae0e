package queue

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"time"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
)

// NewJob makes the job record of a checked plan: its id is a hash of the
// pipeline's bytes, overrides, seed, folder and lock, so submitting the
// same job again names the same job.
func NewJob(p *plan.Plan, yaml []byte, sets []string, lockBytes []byte, ackWait time.Duration, maxDeliver int) (*Job, error) {
	if err := CheckQueueable(p); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(p.BaseDir)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, b := range [][]byte{yaml, []byte(dir), lockBytes} {
		binary.Write(h, binary.LittleEndian, uint64(len(b)))
		h.Write(b)
	}
	for _, s := range sets {
		binary.Write(h, binary.LittleEndian, uint64(len(s)))
		h.Write([]byte(s))
	}
	binary.Write(h, binary.LittleEndian, p.Seed)
	return &Job{
		ID: hex.EncodeToString(h.Sum(nil))[:16], Name: p.Name,
		File: filepath.Base(p.File), Dir: dir, YAML: yaml, Sets: sets, Seed: p.Seed, Lock: lockBytes,
		Source: Source(p), AckWait: ackWait, MaxDeliver: maxDeliver, Created: time.Now().UTC(),
	}, nil
}

// Items enumerates the source items of a plan, streaming (a folder of a
// million images is listed, not held), and counts them.
func Items(ctx context.Context, p *plan.Plan, jobID string) (count func() (int, error), each func(yield func(Item) error) error, err error) {
	src := Source(p)
	var st *plan.Stage
	for _, s := range p.Stages {
		if s.ID == src {
			st = s
		}
	}
	switch {
	case st == nil:
		return nil, nil, fmt.Errorf("queue: no source stage")
	case st.Kind == spec.Generate:
		n := st.Model.Count
		return func() (int, error) { return n, nil }, func(yield func(Item) error) error {
			for i := 0; i < n; i++ {
				if err := yield(Item{Job: jobID, Stage: src, Index: i}); err != nil {
					return err
				}
			}
			return nil
		}, nil
	case st.Kind == spec.Load:
		cfg, ok := st.Config.(*stages.LoadConfig)
		if !ok {
			return nil, nil, fmt.Errorf("queue: stage %q: no load configuration", src)
		}
		l, err := cfg.Open(p.BaseDir)
		if err != nil {
			return nil, nil, err
		}
		return func() (int, error) { return l.Count(ctx) }, func(yield func(Item) error) error {
			return l.Enumerate(ctx, func(e stages.Entry) error {
				return yield(Item{Job: jobID, Stage: src, Index: e.Index})
			})
		}, nil
	}
	return nil, nil, fmt.Errorf("queue: stage %q (%s) cannot be a queue's source", src, st.Kind)
}
