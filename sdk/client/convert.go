package client

import (
	"fmt"

	"github.com/genpipe/genpipe/sdk"
	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// The host side's conversions between the contract's types and their wire
// form (package sdk has the plugin side's). sdk.Tensor data is shared, not
// copied: protobuf copies it once on the wire anyway.

func tensorToProto(t *sdk.Tensor) *pb.Tensor {
	if t == nil {
		return nil
	}
	return &pb.Tensor{Shape: wire.ShapeToProto(t.Shape), Dtype: pb.DType(t.DType), Data: t.Data, Space: t.Space}
}

func tensorFromProto(t *pb.Tensor) (*sdk.Tensor, error) {
	if t == nil {
		return nil, nil
	}
	if t.Shm != nil {
		// Only the calls that lease shared memory resolve references
		// (see wire.Resolve); anywhere else one is a peer's mistake.
		return nil, fmt.Errorf("%w: a tensor in shared memory where only inline data is allowed", wire.ErrSharedMemory)
	}
	shape, err := wire.ShapeFromProto(t.Shape)
	if err != nil {
		return nil, err
	}
	out := &sdk.Tensor{Shape: shape, DType: sdk.DType(t.Dtype), Data: t.Data, Space: t.Space}
	if out.Data == nil {
		out.Data = []byte{}
	}
	return out, out.Check()
}

func paramFromProto(p *pb.Param) sdk.Param {
	out := sdk.Param{
		Name:     p.Name,
		Type:     sdk.Type(p.Type),
		Doc:      p.Doc,
		Required: p.Required,
		Min:      p.Min,
		Max:      p.Max,
		Enum:     p.Enum,
		OneOf:    p.OneOf,
		Pattern:  p.Pattern,
		Format:   sdk.Format(p.Format),
	}
	if p.Elem != nil {
		e := paramFromProto(p.Elem)
		out.Elem = &e
	}
	for _, f := range p.Fields {
		out.Fields = append(out.Fields, paramFromProto(f))
	}
	if p.HasDefault && p.Default != nil {
		raw := p.Default.AsInterface()
		// Numbers come back as float64: let the declared type decide (an
		// Int default becomes int again). An invalid default is kept as
		// is, for sdktest to report.
		if v, errs := sdk.CheckParams([]sdk.Param{out}, map[string]any{out.Name: raw}, ""); len(errs) == 0 {
			out.Default = v[out.Name]
		} else {
			out.Default = raw
		}
	}
	return out
}

func imageSpecFromProto(s *pb.ImageSpec) *sdk.ImageSpec {
	if s == nil {
		return nil
	}
	out := &sdk.ImageSpec{Channels: int(s.Channels), Height: int(s.Height), Width: int(s.Width), DType: sdk.DType(s.Dtype), Min: s.Min, Max: s.Max}
	if z := s.Size; z != nil {
		// A plugin built before size rules existed sends none: the zero
		// Size keeps the meaning its Height and Width had.
		out.Size = sdk.Size{Rule: sdk.SizeRule(z.Rule), Num: int(z.Num), Den: int(z.Den)}
	}
	return out
}

func descriptionFromProto(d *pb.Description) sdk.Description {
	out := sdk.Description{
		Name:      d.Name,
		Version:   d.Version,
		Doc:       d.Doc,
		BatchSize: int(d.BatchSize),
	}
	for _, c := range d.Capabilities {
		cs := sdk.CapabilitySpec{Name: sdk.Capability(c.Name), Doc: c.Doc}
		for _, p := range c.Params {
			cs.Params = append(cs.Params, paramFromProto(p))
		}
		for _, sc := range c.Scores {
			cs.Scores = append(cs.Scores, sdk.ScoreSpec{Name: sc.Name, Doc: sc.Doc})
		}
		out.Capabilities = append(out.Capabilities, cs)
	}
	for _, p := range d.Presets {
		pr := sdk.Preset{
			Name:    p.Name,
			Doc:     p.Doc,
			Default: p.Default,
			Input:   imageSpecFromProto(p.Input),
			Output:  imageSpecFromProto(p.Output),
			Classes: int(p.Classes),
			Weights: p.Weights,
		}
		for _, c := range p.Capabilities {
			pr.Capabilities = append(pr.Capabilities, sdk.Capability(c))
		}
		if p.Latent != nil {
			pr.Latent = &sdk.LatentSpec{Space: p.Latent.Space, Dim: int(p.Latent.Dim)}
		}
		pr.ExactInput = p.ExactInput
		if p.LatentData != nil {
			pr.LatentData = &sdk.LatentSpec{Space: p.LatentData.Space, Dim: int(p.LatentData.Dim)}
		}
		for _, ti := range p.TrainInputs {
			pr.TrainInputs = append(pr.TrainInputs, sdk.TrainInput{Name: ti.Name, Doc: ti.Doc, Paired: ti.Paired, Image: imageSpecFromProto(ti.Image)})
		}
		out.Presets = append(out.Presets, pr)
	}
	return out
}

func trainEventFromProto(e *pb.TrainEvent) (sdk.TrainEvent, error) {
	ev := sdk.TrainEvent{Epoch: int(e.Epoch), Step: int(e.Step), Total: int(e.Total), Metrics: e.Metrics, Message: e.Message,
		SampleColumns: int(e.SampleColumns)}
	if e.Samples != nil {
		t, err := tensorFromProto(e.Samples)
		if err != nil {
			return ev, fmt.Errorf("samples: %w", err)
		}
		ev.Samples = t
	}
	return ev, nil
}

// withScores attaches a response's scores to its tensor.
func withScores(t *sdk.Tensor, scores map[string]*pb.ScoreValues) *sdk.Tensor {
	if t == nil || len(scores) == 0 {
		return t
	}
	t.Scores = make(map[string][]float64, len(scores))
	for name, v := range scores {
		t.Scores[name] = append([]float64{}, v.GetValues()...)
	}
	return t
}
