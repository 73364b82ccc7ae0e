package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
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
	params, perrs := CheckParams(spec.Params, paramsFromProto(cfg.Params), "")
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
		b, err := batchFromProto(pbb, nil)
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
	for off := 0; ; off += WeightsChunkBytes {
		end := min(off+WeightsChunkBytes, len(weights))
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

// Train runs a training run in the plugin. next supplies data batches on
// demand (io.EOF: no more data), req.Eval held-out ones (see
// [TrainRequest]); onEvent receives progress; onWeights
// receives each checkpoint and, with final set, the final weights, whole.
// Callbacks run on the calling goroutine; next runs on another one. Train
// returns when the plugin's Train returns, or with the first error.
func (c *Client) Train(ctx context.Context, req TrainRequest, next func(context.Context) (*Batch, error), onEvent func(TrainEvent), onWeights func(w []byte, final bool)) error {
	const call = "train"
	if _, err := c.Describe(ctx); err != nil {
		return err
	}
	params, err := paramsToProto(req.Params)
	if err != nil {
		return fmt.Errorf("%s%v", c.prefix(call), err)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Train(ctx)
	if err != nil {
		return c.rpcErr(parent, call, err)
	}
	cfg := &pb.TrainInput{Msg: &pb.TrainInput_Config{Config: &pb.TrainConfig{
		Preset: req.Preset, Params: params, Resume: req.Resume, Seed: req.Seed,
		Epochs: int64(req.Epochs), Steps: int64(req.Steps), CheckpointEvery: int64(req.CheckpointEvery),
		SampleEvery: int64(req.SampleEvery), HasEval: req.Eval != nil, Init: req.Init,
	}}}
	if err := stream.Send(cfg); err != nil && err != io.EOF {
		return c.rpcErr(parent, call, err)
	}

	// The sender runs in its own goroutine so that the receive loop below
	// keeps draining events while next() produces data; otherwise HTTP/2
	// flow control can stall both sides.
	// needs carries the plugin's requests in order: false for a training
	// batch, true for a held-out one.
	needs := make(chan bool, 64)
	var sendErr error
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		ended := false
		for {
			var eval bool
			select {
			case eval = <-needs:
			case <-ctx.Done():
				return
			}
			var msg *pb.TrainInput
			var err error
			switch {
			case eval:
				msg, err = c.trainData(ctx, req.Eval, true)
			case ended:
				msg = &pb.TrainInput{Msg: &pb.TrainInput_End{End: &pb.Empty{}}}
			default:
				msg, err = c.trainData(ctx, next, false)
				_, ended = msg.GetMsg().(*pb.TrainInput_End)
			}
			if err != nil {
				sendErr = err
				cancel()
				return
			}
			// The stream stays open after the end of the training data:
			// the plugin may still evaluate. It ends when the plugin's
			// Train returns.
			if err := stream.Send(msg); err != nil {
				return // the receive loop reports the stream's error
			}
		}
	}()

	var buf []byte
	var recvErr error
	for {
		out, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			recvErr = err
			break
		}
		switch m := out.Msg.(type) {
		case *pb.TrainOutput_Need, *pb.TrainOutput_NeedEval:
			_, eval := m.(*pb.TrainOutput_NeedEval)
			select {
			case needs <- eval:
			case <-ctx.Done():
			}
		case *pb.TrainOutput_Event:
			if onEvent != nil {
				ev, err := trainEventFromProto(m.Event)
				if err != nil {
					// A bad picture is not worth the run: drop it, say so.
					ev.Message = strings.TrimSpace(ev.Message + "\n" + c.prefix(call) + "the plugin sent unreadable " + err.Error())
				}
				onEvent(ev)
			}
		case *pb.TrainOutput_Weights:
			buf = append(buf, m.Weights.Chunk...)
			if m.Weights.Last {
				if onWeights != nil {
					onWeights(buf, m.Weights.Final)
				}
				buf = nil
			}
		}
	}
	cancel()
	<-senderDone
	if sendErr != nil {
		return sendErr
	}
	if recvErr != nil {
		return c.rpcErr(parent, call, recvErr)
	}
	return nil
}

// trainData gets the answer to one request for data from fn: a batch, or
// the end of the data (also when fn is nil).
func (c *Client) trainData(ctx context.Context, fn func(context.Context) (*Batch, error), eval bool) (*pb.TrainInput, error) {
	end := &pb.TrainInput{Msg: &pb.TrainInput_End{End: &pb.Empty{}}}
	what := "next batch"
	if eval {
		end = &pb.TrainInput{Msg: &pb.TrainInput_EvalEnd{EvalEnd: &pb.Empty{}}}
		what = "next held-out batch"
	}
	if fn == nil {
		return end, nil
	}
	b, err := fn(ctx)
	if errors.Is(err, io.EOF) {
		return end, nil
	}
	if err == nil {
		err = checkTrainBatch(b)
	}
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", c.prefix("train"), what, err)
	}
	br := &pb.BatchRequest{Tensor: tensorToProto(b.Tensor), Seeds: seedsOrNil(b.Seeds), Labels: labelsToProto(b.Labels)}
	if eval {
		return &pb.TrainInput{Msg: &pb.TrainInput_EvalBatch{EvalBatch: br}}, nil
	}
	return &pb.TrainInput{Msg: &pb.TrainInput_Batch{Batch: br}}, nil
}

func checkTrainBatch(b *Batch) error {
	if b == nil || b.Tensor == nil {
		return errors.New("no tensor")
	}
	if err := b.Check(); err != nil {
		return err
	}
	if n := b.Len(); len(b.Seeds) != 0 && len(b.Seeds) != n || len(b.Labels) != 0 && len(b.Labels) != n {
		return fmt.Errorf("%d seeds and %d labels for %d items, expected one per item", len(b.Seeds), len(b.Labels), n)
	}
	if len(b.Data) > MaxMessageBytes-(1<<20) {
		return fmt.Errorf("batch of %d bytes exceeds the %d-byte message limit; send smaller training batches", len(b.Data), MaxMessageBytes-(1<<20))
	}
	return nil
}
