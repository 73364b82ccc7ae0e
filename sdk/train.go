package sdk

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// Train is the plugin side of a training run: the first message is the
// config; the plugin pulls batches with `need` (so the host never buffers
// more than one batch ahead) and sends events and weights back.
func (s *server) Train(stream pb.Plugin_TrainServer) (err error) {
	const call = "train"
	defer s.guard(call, &err)
	ctx := stream.Context()
	tr, ok := s.impl.(Trainer)
	spec := s.desc.Capability(CapTrain)
	if !ok || spec == nil {
		return s.fail(call, codes.Unimplemented, "the plugin cannot train (declared: %s; implements sdk.Trainer: %v)", capNames(s.desc.Capabilities), ok)
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	cfg := first.GetConfig()
	if cfg == nil {
		return s.fail(call, codes.InvalidArgument, "the first message must be the training config")
	}
	if cfg.Preset != "" {
		p := s.desc.Preset(cfg.Preset)
		if p == nil {
			return s.fail(call, codes.InvalidArgument, "unknown preset %q%s", cfg.Preset, s.presetHint(cfg.Preset))
		}
		if !p.Has(CapTrain) {
			return s.fail(call, codes.InvalidArgument, "preset %q does not support train (it supports %v)", p.Name, p.Capabilities)
		}
	}
	params, perrs := CheckParams(spec.Params, wire.ParamsFromProto(cfg.Params), "")
	if len(perrs) > 0 {
		return s.fail(call, codes.InvalidArgument, "invalid parameters: %s", joinParamErrors(perrs))
	}
	sess := &trainSession{
		req: TrainRequest{
			Preset: cfg.Preset, Params: params, Resume: cfg.Resume, Seed: cfg.Seed,
			Epochs: int(cfg.Epochs), Steps: int(cfg.Steps), CheckpointEvery: int(cfg.CheckpointEvery),
			SampleEvery: int(cfg.SampleEvery), Init: cfg.Init,
		},
		hasEval: cfg.HasEval,
		stream:  stream,
		ctx:     ctx,
		log:     s.log.With("call", "train", "preset", cfg.Preset),
		inbox:   make(chan recvMsg, 1),
		done:    make(chan struct{}),
	}
	sess.req.Eval = sess.Eval
	defer close(sess.done)
	go sess.recvLoop()
	if err := tr.Train(ctx, sess); err != nil {
		return s.implErr(ctx, call, err)
	}
	return nil
}

type recvMsg struct {
	msg *pb.TrainInput
	err error
}

// trainSession implements TrainSession over the stream. Sends are
// serialised because a trainer may report from several goroutines.
type trainSession struct {
	req     TrainRequest
	hasEval bool
	stream  pb.Plugin_TrainServer
	ctx     context.Context
	log     hclog.Logger
	inbox   chan recvMsg
	done    chan struct{}

	sendMu sync.Mutex
	// askMu makes each request (need, need_eval) and its answer one unit,
	// so answers match their requests when Next and Eval run concurrently.
	askMu sync.Mutex
	ended bool
	// recvEnded is set when the host's side of the stream closed.
	recvEnded bool
}

var _ TrainSession = (*trainSession)(nil)

func (t *trainSession) recvLoop() {
	for {
		m, err := t.stream.Recv()
		select {
		case t.inbox <- recvMsg{m, err}:
		case <-t.done:
			return
		}
		if err != nil {
			return
		}
	}
}

func (t *trainSession) send(m *pb.TrainOutput) error {
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	return t.stream.Send(m)
}

func (t *trainSession) Request() TrainRequest { return t.req }
func (t *trainSession) Logger() hclog.Logger  { return t.log }

func (t *trainSession) Next(ctx context.Context) (*Batch, error) {
	t.askMu.Lock()
	defer t.askMu.Unlock()
	if t.ended {
		return nil, io.EOF
	}
	b, end, err := t.ask(ctx, &pb.TrainOutput{Msg: &pb.TrainOutput_Need{Need: &pb.Empty{}}}, "batch")
	if end {
		t.ended = true
	}
	return b, err
}

func (t *trainSession) Eval(ctx context.Context) (*Batch, error) {
	t.askMu.Lock()
	defer t.askMu.Unlock()
	if !t.hasEval || t.recvEnded {
		return nil, io.EOF
	}
	b, _, err := t.ask(ctx, &pb.TrainOutput{Msg: &pb.TrainOutput_NeedEval{NeedEval: &pb.Empty{}}}, "held-out batch")
	return b, err
}

// ask sends a request for data and waits for its answer: a batch, or
// io.EOF with end set when the answer is the end of the data.
func (t *trainSession) ask(ctx context.Context, req *pb.TrainOutput, what string) (*Batch, bool, error) {
	if err := t.send(req); err != nil {
		return nil, false, fmt.Errorf("train: asking for the next %s: %w", what, err)
	}
	select {
	case m := <-t.inbox:
		if m.err != nil {
			if m.err == io.EOF {
				// The host closed its side: no more data of any kind.
				t.recvEnded = true
				return nil, true, io.EOF
			}
			return nil, false, fmt.Errorf("train: receiving a %s: %w", what, m.err)
		}
		var pbb *pb.BatchRequest
		switch x := m.msg.Msg.(type) {
		case *pb.TrainInput_Batch:
			pbb = x.Batch
		case *pb.TrainInput_EvalBatch:
			pbb = x.EvalBatch
		case *pb.TrainInput_End, *pb.TrainInput_EvalEnd:
			return nil, true, io.EOF
		default:
			return nil, false, fmt.Errorf("train: unexpected message %T from the host", x)
		}
		b, err := trainBatchFromProto(pbb)
		if err != nil {
			return nil, false, fmt.Errorf("train: %s from the host: %v", what, err)
		}
		return b, false, nil
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-t.ctx.Done():
		return nil, false, t.ctx.Err()
	}
}

func (t *trainSession) Report(ev TrainEvent) error {
	if ev.Samples != nil {
		if err := ev.Samples.Check(); err != nil {
			return fmt.Errorf("train: report: samples: %w", err)
		}
	}
	return t.send(&pb.TrainOutput{Msg: &pb.TrainOutput_Event{Event: trainEventToProto(ev)}})
}

func (t *trainSession) Save(weights []byte, final bool) error {
	for off := 0; ; off += wire.WeightsChunkBytes {
		end := min(off+wire.WeightsChunkBytes, len(weights))
		last := end == len(weights)
		w := &pb.Weights{Chunk: weights[off:end], Last: last, Final: final}
		if err := t.send(&pb.TrainOutput{Msg: &pb.TrainOutput_Weights{Weights: w}}); err != nil {
			return fmt.Errorf("train: sending weights: %w", err)
		}
		if last {
			return nil
		}
	}
}

// trainBatchFromProto converts a training batch with the batches of its
// other roles, which must have one item per item of the first unless the
// role is unpaired (checked by the plugin, which knows its roles).
func trainBatchFromProto(req *pb.BatchRequest) (*Batch, error) {
	b, err := batchFromProto(req, nil)
	if err != nil {
		return nil, err
	}
	for name, r := range req.Inputs {
		if len(r.Inputs) > 0 {
			return nil, fmt.Errorf("input %q: nested inputs", name)
		}
		o, err := batchFromProto(r, nil)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", name, err)
		}
		if b.Inputs == nil {
			b.Inputs = map[string]*Batch{}
		}
		b.Inputs[name] = o
	}
	return b, nil
}
