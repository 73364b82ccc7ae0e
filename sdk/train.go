package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"

	pb "github.com/genpipe/genpipe/sdk/proto"
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
		req:    TrainRequest{Preset: cfg.Preset, Params: params, Resume: cfg.Resume},
		stream: stream,
		ctx:    ctx,
		log:    s.log.With("call", "train", "preset", cfg.Preset),
		inbox:  make(chan recvMsg, 1),
		done:   make(chan struct{}),
	}
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
	req    TrainRequest
	stream pb.Plugin_TrainServer
	ctx    context.Context
	log    hclog.Logger
	inbox  chan recvMsg
	done   chan struct{}

	sendMu sync.Mutex
	nextMu sync.Mutex
	ended  bool
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
	t.nextMu.Lock()
	defer t.nextMu.Unlock()
	if t.ended {
		return nil, io.EOF
	}
	if err := t.send(&pb.TrainOutput{Msg: &pb.TrainOutput_Need{Need: &pb.Empty{}}}); err != nil {
		return nil, fmt.Errorf("train: asking for the next batch: %w", err)
	}
	select {
	case m := <-t.inbox:
		if m.err != nil {
			if m.err == io.EOF {
				// The host closed its side without `end`: no more data.
				t.ended = true
				return nil, io.EOF
			}
			return nil, fmt.Errorf("train: receiving a batch: %w", m.err)
		}
		switch x := m.msg.Msg.(type) {
		case *pb.TrainInput_Batch:
			b, err := batchFromProto(x.Batch, nil)
			if err != nil {
				return nil, fmt.Errorf("train: batch from the host: %v", err)
			}
			return b, nil
		case *pb.TrainInput_End:
			t.ended = true
			return nil, io.EOF
		default:
			return nil, fmt.Errorf("train: unexpected message %T from the host", x)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.ctx.Done():
		return nil, t.ctx.Err()
	}
}

func (t *trainSession) Report(ev TrainEvent) error {
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
// demand (io.EOF: no more data); onEvent receives progress; onWeights
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
	cfg := &pb.TrainInput{Msg: &pb.TrainInput_Config{Config: &pb.TrainConfig{Preset: req.Preset, Params: params, Resume: req.Resume}}}
	if err := stream.Send(cfg); err != nil && err != io.EOF {
		return c.rpcErr(parent, call, err)
	}

	// The sender runs in its own goroutine so that the receive loop below
	// keeps draining events while next() produces data; otherwise HTTP/2
	// flow control can stall both sides.
	needs := make(chan struct{}, 64)
	var sendErr error
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		for {
			select {
			case <-needs:
			case <-ctx.Done():
				return
			}
			b, err := next(ctx)
			if errors.Is(err, io.EOF) {
				_ = stream.Send(&pb.TrainInput{Msg: &pb.TrainInput_End{End: &pb.Empty{}}})
				_ = stream.CloseSend()
				return
			}
			if err == nil {
				err = checkTrainBatch(b)
			}
			if err != nil {
				sendErr = fmt.Errorf("%snext batch: %w", c.prefix(call), err)
				cancel()
				return
			}
			msg := &pb.TrainInput{Msg: &pb.TrainInput_Batch{Batch: &pb.BatchRequest{
				Tensor: tensorToProto(b.Tensor), Seeds: seedsOrNil(b.Seeds), Labels: labelsToProto(b.Labels),
			}}}
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
		case *pb.TrainOutput_Need:
			select {
			case needs <- struct{}{}:
			case <-ctx.Done():
			}
		case *pb.TrainOutput_Event:
			if onEvent != nil {
				onEvent(trainEventFromProto(m.Event))
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
