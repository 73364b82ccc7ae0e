package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/genpipe/genpipe/sdk"
	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// Train runs a training run in the plugin. next supplies data batches on
// demand (io.EOF: no more data), req.Eval held-out ones (see
// [sdk.TrainRequest]); onEvent receives progress; onWeights
// receives each checkpoint and, with final set, the final weights, whole.
// Callbacks run on the calling goroutine; next runs on another one. Train
// returns when the plugin's Train returns, or with the first error.
func (c *Client) Train(ctx context.Context, req sdk.TrainRequest, next func(context.Context) (*sdk.Batch, error), onEvent func(sdk.TrainEvent), onWeights func(w []byte, final bool)) error {
	const call = "train"
	if _, err := c.Describe(ctx); err != nil {
		return err
	}
	params, err := wire.ParamsToProto(req.Params)
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
func (c *Client) trainData(ctx context.Context, fn func(context.Context) (*sdk.Batch, error), eval bool) (*pb.TrainInput, error) {
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
	br := &pb.BatchRequest{Tensor: tensorToProto(b.Tensor), Seeds: wire.SeedsOrNil(b.Seeds), Labels: wire.LabelsToProto(b.Labels)}
	for name, o := range b.Inputs {
		if err := checkTrainBatch(o); err != nil {
			return nil, fmt.Errorf("%s%s: input %q: %w", c.prefix("train"), what, name, err)
		}
		if br.Inputs == nil {
			br.Inputs = map[string]*pb.BatchRequest{}
		}
		br.Inputs[name] = &pb.BatchRequest{Tensor: tensorToProto(o.Tensor), Seeds: wire.SeedsOrNil(o.Seeds), Labels: wire.LabelsToProto(o.Labels)}
	}
	if eval {
		return &pb.TrainInput{Msg: &pb.TrainInput_EvalBatch{EvalBatch: br}}, nil
	}
	return &pb.TrainInput{Msg: &pb.TrainInput_Batch{Batch: br}}, nil
}

func checkTrainBatch(b *sdk.Batch) error {
	if b == nil || b.Tensor == nil {
		return errors.New("no tensor")
	}
	if err := b.Check(); err != nil {
		return err
	}
	if n := b.Len(); len(b.Seeds) != 0 && len(b.Seeds) != n || len(b.Labels) != 0 && len(b.Labels) != n {
		return fmt.Errorf("%d seeds and %d labels for %d items, expected one per item", len(b.Seeds), len(b.Labels), n)
	}
	size := len(b.Data)
	for _, o := range b.Inputs {
		if o != nil && o.Tensor != nil {
			size += len(o.Data)
		}
	}
	if size > MaxMessageBytes-(1<<20) {
		return fmt.Errorf("batch of %d bytes exceeds the %d-byte message limit; send smaller training batches", size, MaxMessageBytes-(1<<20))
	}
	return nil
}
