package sdk

import (
	"fmt"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
	"github.com/genpipe/genpipe/sdk/internal/wire"
)

// The plugin side's conversions between the contract's types and their wire
// form (sdk/client has the host side's). Tensor data is shared, not copied:
// protobuf copies it once on the wire anyway.

func tensorToProto(t *Tensor) *pb.Tensor {
	if t == nil {
		return nil
	}
	return &pb.Tensor{Shape: wire.ShapeToProto(t.Shape), Dtype: pb.DType(t.DType), Data: t.Data, Space: t.Space}
}

func tensorFromProto(t *pb.Tensor) (*Tensor, error) {
	if t == nil {
		return nil, nil
	}
	if t.Shm != nil {
		// Only the calls that use shared memory resolve references
		// (see wire.Call); anywhere else one is a peer's mistake.
		return nil, fmt.Errorf("%w: a tensor in shared memory where only inline data is allowed", wire.ErrSharedMemory)
	}
	shape, err := wire.ShapeFromProto(t.Shape)
	if err != nil {
		return nil, err
	}
	out := &Tensor{Shape: shape, DType: DType(t.Dtype), Data: t.Data, Space: t.Space}
	if out.Data == nil {
		out.Data = []byte{}
	}
	return out, out.Check()
}

func paramToProto(p *Param) (*pb.Param, error) {
	out := &pb.Param{
		Name:     p.Name,
		Type:     string(p.Type),
		Doc:      p.Doc,
		Required: p.Required,
		Min:      p.Min,
		Max:      p.Max,
		Enum:     p.Enum,
		OneOf:    p.OneOf,
		Pattern:  p.Pattern,
		Format:   string(p.Format),
	}
	if p.Default != nil {
		v, err := wire.ValueToProto(p.Default)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: default: %w", p.Name, err)
		}
		out.Default, out.HasDefault = v, true
	}
	if p.Elem != nil {
		e, err := paramToProto(p.Elem)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", p.Name, err)
		}
		out.Elem = e
	}
	for i := range p.Fields {
		f, err := paramToProto(&p.Fields[i])
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", p.Name, err)
		}
		out.Fields = append(out.Fields, f)
	}
	return out, nil
}

func imageSpecToProto(s *ImageSpec) *pb.ImageSpec {
	if s == nil {
		return nil
	}
	out := &pb.ImageSpec{Channels: int32(s.Channels), Height: int32(s.Height), Width: int32(s.Width), Dtype: pb.DType(s.DType), Min: s.Min, Max: s.Max}
	if s.Size != (Size{}) {
		out.Size = &pb.Size{Rule: string(s.Size.Rule), Num: int32(s.Size.Num), Den: int32(s.Size.Den)}
	}
	return out
}

func descriptionToProto(d *Description) (*pb.Description, error) {
	out := &pb.Description{
		Name:       d.Name,
		Version:    d.Version,
		Doc:        d.Doc,
		BatchSize:  int32(d.BatchSize),
		SdkVersion: SDKVersion(),
	}
	for _, c := range d.Capabilities {
		pc := &pb.CapabilitySpec{Name: string(c.Name), Doc: c.Doc}
		for i := range c.Params {
			p, err := paramToProto(&c.Params[i])
			if err != nil {
				return nil, fmt.Errorf("capability %s: %w", c.Name, err)
			}
			pc.Params = append(pc.Params, p)
		}
		for _, sc := range c.Scores {
			pc.Scores = append(pc.Scores, &pb.ScoreSpec{Name: sc.Name, Doc: sc.Doc})
		}
		out.Capabilities = append(out.Capabilities, pc)
	}
	for _, p := range d.Presets {
		pp := &pb.Preset{
			Name:    p.Name,
			Doc:     p.Doc,
			Default: p.Default,
			Input:   imageSpecToProto(p.Input),
			Output:  imageSpecToProto(p.Output),
			Classes: int32(p.Classes),
			Weights: p.Weights,
		}
		for _, c := range p.Capabilities {
			pp.Capabilities = append(pp.Capabilities, string(c))
		}
		if p.Latent != nil {
			pp.Latent = &pb.LatentSpec{Space: p.Latent.Space, Dim: int32(p.Latent.Dim)}
		}
		pp.ExactInput = p.ExactInput
		if p.LatentData != nil {
			pp.LatentData = &pb.LatentSpec{Space: p.LatentData.Space, Dim: int32(p.LatentData.Dim)}
		}
		for _, ti := range p.TrainInputs {
			pp.TrainInputs = append(pp.TrainInputs, &pb.TrainInputSpec{Name: ti.Name, Doc: ti.Doc, Paired: ti.Paired, Image: imageSpecToProto(ti.Image)})
		}
		out.Presets = append(out.Presets, pp)
	}
	return out, nil
}

func trainEventToProto(e TrainEvent) *pb.TrainEvent {
	return &pb.TrainEvent{Epoch: int64(e.Epoch), Step: int64(e.Step), Total: int64(e.Total), Metrics: e.Metrics, Message: e.Message,
		Samples: tensorToProto(e.Samples), SampleColumns: int64(e.SampleColumns)}
}

// responseOf wraps a checked answer, its scores beside the tensor.
func responseOf(sc *wire.Call, out *Tensor) *pb.TensorResponse {
	r := sc.Response(tensorToProto(out))
	if len(out.Scores) > 0 {
		r.Scores = make(map[string]*pb.ScoreValues, len(out.Scores))
		for name, v := range out.Scores {
			r.Scores[name] = &pb.ScoreValues{Values: v}
		}
	}
	return r
}
