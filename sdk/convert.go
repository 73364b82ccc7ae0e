package sdk

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// Conversions between the Go contract types and their wire form. Tensor data
// is shared, not copied: protobuf copies it once on the wire anyway.

func tensorToProto(t *Tensor) *pb.Tensor {
	if t == nil {
		return nil
	}
	shape := make([]int64, len(t.Shape))
	for i, d := range t.Shape {
		shape[i] = int64(d)
	}
	return &pb.Tensor{Shape: shape, Dtype: pb.DType(t.DType), Data: t.Data, Space: t.Space}
}

func tensorFromProto(t *pb.Tensor) (*Tensor, error) {
	if t == nil {
		return nil, nil
	}
	if t.Shm != nil {
		// Only the calls that lease shared memory resolve references
		// (see shm.go); anywhere else one is a peer's mistake.
		return nil, fmt.Errorf("%w: a tensor in shared memory where only inline data is allowed", ErrSharedMemory)
	}
	shape := make([]int, len(t.Shape))
	for i, d := range t.Shape {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("tensor: dimension %d at axis %d of shape %v is out of range", d, i, t.Shape)
		}
		shape[i] = int(d)
	}
	out := &Tensor{Shape: shape, DType: DType(t.Dtype), Data: t.Data, Space: t.Space}
	if out.Data == nil {
		out.Data = []byte{}
	}
	return out, out.Check()
}

func seedsOrNil(s []uint64) []uint64 {
	if len(s) == 0 {
		return nil
	}
	return s
}

func labelsToProto(l []int) []int64 {
	if len(l) == 0 {
		return nil
	}
	out := make([]int64, len(l))
	for i, v := range l {
		out[i] = int64(v)
	}
	return out
}

func labelsFromProto(l []int64) []int {
	if len(l) == 0 {
		return nil
	}
	out := make([]int, len(l))
	for i, v := range l {
		out[i] = int(v)
	}
	return out
}

// paramsToProto encodes parameter values. It accepts the [Params] value types
// and also common typed slices, so a host can pass what it decoded.
func paramsToProto(p map[string]any) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(p))}
	for k, v := range p {
		pv, err := valueToProto(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", k, err)
		}
		s.Fields[k] = pv
	}
	return s, nil
}

func valueToProto(v any) (*structpb.Value, error) {
	switch x := v.(type) {
	case []int:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		v = l
	case []string:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		v = l
	case []float64:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = e
		}
		v = l
	case Params:
		v = map[string]any(x)
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			pv, err := valueToProto(e)
			if err != nil {
				return nil, err
			}
			l.Values[i] = pv
		}
		return structpb.NewListValue(l), nil
	case map[string]any:
		s, err := paramsToProto(x)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	}
	return structpb.NewValue(v)
}

// paramsFromProto decodes parameter values; numbers arrive as float64 and
// are normalised by CheckParams against the declared types.
func paramsFromProto(s *structpb.Struct) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s.AsMap()
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
	}
	if p.Default != nil {
		v, err := valueToProto(p.Default)
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

func paramFromProto(p *pb.Param) Param {
	out := Param{
		Name:     p.Name,
		Type:     Type(p.Type),
		Doc:      p.Doc,
		Required: p.Required,
		Min:      p.Min,
		Max:      p.Max,
		Enum:     p.Enum,
		OneOf:    p.OneOf,
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
		if v, errs := checkValue(&out, raw, p.Name); len(errs) == 0 {
			out.Default = v
		} else {
			out.Default = raw
		}
	}
	return out
}

func imageSpecToProto(s *ImageSpec) *pb.ImageSpec {
	if s == nil {
		return nil
	}
	return &pb.ImageSpec{Channels: int32(s.Channels), Height: int32(s.Height), Width: int32(s.Width), Dtype: pb.DType(s.DType), Min: s.Min, Max: s.Max}
}

func imageSpecFromProto(s *pb.ImageSpec) *ImageSpec {
	if s == nil {
		return nil
	}
	return &ImageSpec{Channels: int(s.Channels), Height: int(s.Height), Width: int(s.Width), DType: DType(s.Dtype), Min: s.Min, Max: s.Max}
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
		out.Presets = append(out.Presets, pp)
	}
	return out, nil
}

func descriptionFromProto(d *pb.Description) Description {
	out := Description{
		Name:      d.Name,
		Version:   d.Version,
		Doc:       d.Doc,
		BatchSize: int(d.BatchSize),
	}
	for _, c := range d.Capabilities {
		cs := CapabilitySpec{Name: Capability(c.Name), Doc: c.Doc}
		for _, p := range c.Params {
			cs.Params = append(cs.Params, paramFromProto(p))
		}
		out.Capabilities = append(out.Capabilities, cs)
	}
	for _, p := range d.Presets {
		pr := Preset{
			Name:    p.Name,
			Doc:     p.Doc,
			Default: p.Default,
			Input:   imageSpecFromProto(p.Input),
			Output:  imageSpecFromProto(p.Output),
			Classes: int(p.Classes),
			Weights: p.Weights,
		}
		for _, c := range p.Capabilities {
			pr.Capabilities = append(pr.Capabilities, Capability(c))
		}
		if p.Latent != nil {
			pr.Latent = &LatentSpec{Space: p.Latent.Space, Dim: int(p.Latent.Dim)}
		}
		out.Presets = append(out.Presets, pr)
	}
	return out
}

func trainEventToProto(e TrainEvent) *pb.TrainEvent {
	return &pb.TrainEvent{Epoch: int64(e.Epoch), Step: int64(e.Step), Total: int64(e.Total), Metrics: e.Metrics, Message: e.Message,
		Samples: tensorToProto(e.Samples), SampleColumns: int64(e.SampleColumns)}
}

func trainEventFromProto(e *pb.TrainEvent) (TrainEvent, error) {
	ev := TrainEvent{Epoch: int(e.Epoch), Step: int(e.Step), Total: int(e.Total), Metrics: e.Metrics, Message: e.Message,
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
