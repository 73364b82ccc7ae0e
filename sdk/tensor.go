package sdk

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DType is the element type of a [Tensor].
type DType int32

// Element types that cross the plugin boundary. Uint8 is preferred for pixels
// (four times fewer bytes on the wire); models convert to float inside.
const (
	Uint8   DType = 1
	Float32 DType = 2
)

// String returns the lowercase name used in YAML, errors and docs.
func (d DType) String() string {
	switch d {
	case Uint8:
		return "uint8"
	case Float32:
		return "float32"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case Uint8:
		return 1
	case Float32:
		return 4
	}
	return 0
}

// Tensor is a dense n-dimensional array. Image batches are NCHW
// (batch, channels, height, width); a sequence of frames per item is NTCHW;
// latent batches are N x D and carry the id of their latent space in Space,
// so that a latent made by one model is not decoded by an incompatible one.
// Data holds the elements in row-major order, little-endian.
type Tensor struct {
	Shape []int
	DType DType
	Data  []byte
	// Space is the latent-space id (e.g. "vae/mnist-z16"); empty for images.
	Space string
	// Scores are per-item numbers a model attaches to its answer (a flow's
	// bits/dim), by name, each with one value per item along the leading
	// dimension. Only names the capability declares ([CapabilitySpec.Scores])
	// are allowed; the SDK checks this and the host carries them in each
	// item's metadata. Nil on inputs.
	Scores map[string][]float64
}

// NewTensor allocates a zeroed tensor of the given type and shape.
func NewTensor(dt DType, shape ...int) *Tensor {
	t := &Tensor{Shape: append([]int(nil), shape...), DType: dt}
	t.Data = make([]byte, t.NumElements()*dt.Size())
	return t
}

// FromFloat32 builds a float32 tensor from values; len(v) must equal the
// product of shape.
func FromFloat32(v []float32, shape ...int) *Tensor {
	t := NewTensor(Float32, shape...)
	if len(v) != t.NumElements() {
		panic(fmt.Sprintf("sdk: FromFloat32: %d values for shape %v (want %d)", len(v), shape, t.NumElements()))
	}
	for i, x := range v {
		binary.LittleEndian.PutUint32(t.Data[4*i:], math.Float32bits(x))
	}
	return t
}

// FromUint8 builds a uint8 tensor that shares v as its data.
func FromUint8(v []uint8, shape ...int) *Tensor {
	t := &Tensor{Shape: append([]int(nil), shape...), DType: Uint8, Data: v}
	if len(v) != t.NumElements() {
		panic(fmt.Sprintf("sdk: FromUint8: %d values for shape %v (want %d)", len(v), shape, t.NumElements()))
	}
	return t
}

// NumElements is the product of the shape (1 for a scalar).
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Len is the size of the leading (batch) dimension, 0 for a scalar.
func (t *Tensor) Len() int {
	if len(t.Shape) == 0 {
		return 0
	}
	return t.Shape[0]
}

// Check reports whether the shape, dtype and byte length agree.
func (t *Tensor) Check() error {
	if t.DType.Size() == 0 {
		return fmt.Errorf("tensor: unknown dtype %d", int32(t.DType))
	}
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor: negative dimension %d at axis %d of shape %v", d, i, t.Shape)
		}
	}
	if want := t.NumElements() * t.DType.Size(); len(t.Data) != want {
		return fmt.Errorf("tensor: shape %v %s needs %d bytes, got %d", t.Shape, t.DType, want, len(t.Data))
	}
	return nil
}

// Float32s decodes the data as float32 values (a copy). It converts uint8
// data to float32 without rescaling.
func (t *Tensor) Float32s() []float32 {
	out := make([]float32, t.NumElements())
	switch t.DType {
	case Float32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case Uint8:
		for i := range out {
			out[i] = float32(t.Data[i])
		}
	}
	return out
}

// ItemBytes is the number of bytes of one item along the leading dimension.
func (t *Tensor) ItemBytes() int {
	if len(t.Shape) == 0 || t.Shape[0] == 0 {
		return 0
	}
	return len(t.Data) / t.Shape[0]
}

// Slice returns items [i, j) along the leading dimension, sharing data.
func (t *Tensor) Slice(i, j int) *Tensor {
	ib := t.ItemBytes()
	shape := append([]int{j - i}, t.Shape[1:]...)
	out := &Tensor{Shape: shape, DType: t.DType, Data: t.Data[i*ib : j*ib], Space: t.Space}
	if t.Scores != nil {
		out.Scores = make(map[string][]float64, len(t.Scores))
		for k, v := range t.Scores {
			out.Scores[k] = v[i:j]
		}
	}
	return out
}

// Concat joins tensors along the leading dimension. All parts must share
// dtype, space and trailing shape.
func Concat(parts ...*Tensor) (*Tensor, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("tensor: concat of nothing")
	}
	first := parts[0]
	n, size := 0, 0
	for k, p := range parts {
		if p.DType != first.DType || p.Space != first.Space || !sameDims(p.Shape[1:], first.Shape[1:]) {
			return nil, fmt.Errorf("tensor: concat part %d is %s %v space %q, expected %s [*%v] space %q",
				k, p.DType, p.Shape, p.Space, first.DType, first.Shape[1:], first.Space)
		}
		n += p.Len()
		size += len(p.Data)
	}
	out := &Tensor{Shape: append([]int{n}, first.Shape[1:]...), DType: first.DType, Space: first.Space, Data: make([]byte, 0, size)}
	for _, p := range parts {
		out.Data = append(out.Data, p.Data...)
	}
	// Scores join only when every part has the name: a split batch's parts
	// come from one model, which attaches the same names to each.
	for name := range first.Scores {
		var v []float64
		for _, p := range parts {
			s, ok := p.Scores[name]
			if !ok || len(s) != p.Len() {
				return nil, fmt.Errorf("tensor: concat part of %d items has %d values of score %q", p.Len(), len(s), name)
			}
			v = append(v, s...)
		}
		if out.Scores == nil {
			out.Scores = map[string][]float64{}
		}
		out.Scores[name] = v
	}
	return out, nil
}

func sameDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// MarshalText writes the dtype's name, so JSON descriptions say "uint8".
func (d DType) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a dtype name written by MarshalText.
func (d *DType) UnmarshalText(b []byte) error {
	switch string(b) {
	case "uint8":
		*d = Uint8
	case "float32":
		*d = Float32
	default:
		return fmt.Errorf("unknown dtype %q (want uint8 or float32)", b)
	}
	return nil
}
