package wire

import (
	"fmt"
	"math"
	"reflect"

	"google.golang.org/protobuf/types/known/structpb"
)

// The parts of the conversions between the contract's Go types and their
// wire form that do not need those types; sdk and sdk/client build on them.

// ShapeToProto converts a tensor shape.
func ShapeToProto(s []int) []int64 {
	shape := make([]int64, len(s))
	for i, d := range s {
		shape[i] = int64(d)
	}
	return shape
}

// ShapeFromProto converts a received tensor shape, refusing dimensions out
// of range.
func ShapeFromProto(s []int64) ([]int, error) {
	shape := make([]int, len(s))
	for i, d := range s {
		if d < 0 || d > math.MaxInt32 {
			return nil, fmt.Errorf("tensor: dimension %d at axis %d of shape %v is out of range", d, i, s)
		}
		shape[i] = int(d)
	}
	return shape, nil
}

// SeedsOrNil returns s, or nil when it is empty.
func SeedsOrNil(s []uint64) []uint64 {
	if len(s) == 0 {
		return nil
	}
	return s
}

// LabelsToProto converts class labels (nil when there are none).
func LabelsToProto(l []int) []int64 {
	if len(l) == 0 {
		return nil
	}
	out := make([]int64, len(l))
	for i, v := range l {
		out[i] = int64(v)
	}
	return out
}

// LabelsFromProto converts received class labels (nil when there are none).
func LabelsFromProto(l []int64) []int {
	if len(l) == 0 {
		return nil
	}
	out := make([]int, len(l))
	for i, v := range l {
		out[i] = int(v)
	}
	return out
}

// ParamsToProto encodes parameter values. It accepts the sdk.Params value
// types and also common typed slices, so a host can pass what it decoded.
func ParamsToProto(p map[string]any) (*structpb.Struct, error) {
	s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(p))}
	for k, v := range p {
		pv, err := ValueToProto(v)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", k, err)
		}
		s.Fields[k] = pv
	}
	return s, nil
}

var mapType = reflect.TypeFor[map[string]any]()

// ValueToProto encodes one parameter value (see [ParamsToProto]).
func ValueToProto(v any) (*structpb.Value, error) {
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
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			pv, err := ValueToProto(e)
			if err != nil {
				return nil, err
			}
			l.Values[i] = pv
		}
		return structpb.NewListValue(l), nil
	case map[string]any:
		s, err := ParamsToProto(x)
		if err != nil {
			return nil, err
		}
		return structpb.NewStructValue(s), nil
	}
	// A named map type such as sdk.Params.
	if rv := reflect.ValueOf(v); rv.IsValid() && rv.Type().ConvertibleTo(mapType) && rv.Kind() == reflect.Map {
		return ValueToProto(rv.Convert(mapType).Interface())
	}
	return structpb.NewValue(v)
}

// ParamsFromProto decodes parameter values; numbers arrive as float64 and
// are normalised by sdk.CheckParams against the declared types.
func ParamsFromProto(s *structpb.Struct) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s.AsMap()
}
