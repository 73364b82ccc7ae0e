package wire

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/runtime/protoiface"

	pb "github.com/genpipe/genpipe/sdk/internal/proto"
)

// codecName is the gRPC content-subtype of the tensor codec. The client
// selects it per call; the plugin answers with the same codec.
const codecName = "genpipe-proto"

// tensorCodec is the protobuf codec with two copies of every tensor removed.
// gRPC's own proto codec copies tensor bytes into the marshalled message and
// copies them again out of the received message; on image batches those
// copies were most of the boundary's CPU time. The bytes on the wire are
// plain protobuf either way:
//
//   - Marshal encodes a message without its tensor data, then appends the
//     tensor field once more holding only the data, which the gRPC transport
//     reads straight from the caller's slice. Protobuf merges repeated
//     occurrences of a message field, so a standard decoder reads the same
//     message.
//   - Unmarshal makes the received frames contiguous (a copy gRPC needs too)
//     and lets bytes fields alias that buffer instead of copying again.
type tensorCodec struct{}

func init() { encoding.RegisterCodecV2(tensorCodec{}) }

func (tensorCodec) Name() string { return codecName }

// splitBytes is the tensor size from which marshalling keeps the data
// separate; below it one contiguous message is cheaper.
const splitBytes = 64 << 10

// Field numbers in plugin.proto.
const (
	fieldBatchTensor     = 2 // BatchRequest.tensor
	fieldResponseTensor  = 1 // TensorResponse.tensor
	fieldGenerateLatents = 4 // GenerateRequest.latents
	fieldTensorData      = 3 // Tensor.data
)

func (tensorCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *pb.BatchRequest:
		if m.Tensor != nil && len(m.Tensor.Data) >= splitBytes {
			return marshalSplit(m, m.Tensor, fieldBatchTensor)
		}
	case *pb.TensorResponse:
		if m.Tensor != nil && len(m.Tensor.Data) >= splitBytes {
			return marshalSplit(m, m.Tensor, fieldResponseTensor)
		}
	case *pb.GenerateRequest:
		if m.Latents != nil && len(m.Latents.Data) >= splitBytes {
			return marshalSplit(m, m.Latents, fieldGenerateLatents)
		}
	}
	pm, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("sdk codec: cannot marshal %T", v)
	}
	b, err := proto.Marshal(pm)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// marshalSplit encodes m with t's data left out, followed by field `field`
// again carrying only t.Data. The data is not copied: the caller's slice is
// written to the connection. (Only unary calls use this, which return after
// the request is written, so the caller cannot change the data in between.)
func marshalSplit(m proto.Message, t *pb.Tensor, field protowire.Number) (mem.BufferSlice, error) {
	data := t.Data
	t.Data = nil
	head, err := proto.Marshal(m)
	t.Data = data
	if err != nil {
		return nil, err
	}
	inner := protowire.SizeTag(fieldTensorData) + protowire.SizeBytes(len(data))
	tail := make([]byte, 0, 32)
	tail = protowire.AppendTag(tail, field, protowire.BytesType)
	tail = protowire.AppendVarint(tail, uint64(inner))
	tail = protowire.AppendTag(tail, fieldTensorData, protowire.BytesType)
	tail = protowire.AppendVarint(tail, uint64(len(data)))
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(tail), mem.SliceBuffer(data)}, nil
}

func (tensorCodec) Unmarshal(data mem.BufferSlice, v any) error {
	pm, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("sdk codec: cannot unmarshal into %T", v)
	}
	// Materialize allocates a fresh buffer that nothing else reuses, so the
	// message may keep pointing into it.
	buf := data.Materialize()
	msg := pm.ProtoReflect()
	if methods := msg.ProtoMethods(); methods != nil && methods.Unmarshal != nil {
		_, err := methods.Unmarshal(protoiface.UnmarshalInput{
			Message:  msg,
			Buf:      buf,
			Flags:    protoiface.UnmarshalAliasBuffer,
			Resolver: protoregistry.GlobalTypes,
			Depth:    protowire.DefaultRecursionLimit,
		})
		if err != nil {
			return err
		}
		return proto.CheckInitialized(pm)
	}
	return proto.Unmarshal(buf, pm)
}

// CallOptions select the tensor codec for the model service's calls.
var CallOptions = []grpc.CallOption{grpc.CallContentSubtype(codecName)}
