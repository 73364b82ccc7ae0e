// Package safetensors reads and writes the safetensors weights format of
// Hugging Face (https://github.com/huggingface/safetensors):
//
//	8 bytes      N, the header length, unsigned little-endian
//	N bytes      JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]},
//	             "__metadata__": {string: string}}, possibly padded with spaces
//	the rest     the data buffer; offsets count from its first byte
//
// Decoding is at least as strict as the reference library: the tensors must
// cover the data buffer exactly, without gaps or overlaps, and every tensor's
// byte length must match its dtype and shape; duplicate header keys are
// rejected too. Encoding follows the reference library's layout (its test
// vectors are reproduced byte for byte), so the same tensors give the same
// bytes as Python's safetensors.save_file, except that several metadata keys
// are sorted here where the reference orders them arbitrarily.
//
// The package imports only the standard library: it is part of the SDK that
// plugin authors depend on.
package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// metadataKey is the one header key that is not a tensor.
const metadataKey = "__metadata__"

// maxHeader is the reference library's limit; a larger length field means the
// input is not safetensors (or is hostile), not that the header is big.
const maxHeader = 100_000_000

// dtypeInfo describes one element type: its width in bits (sub-byte float
// formats exist) and its rank in the reference library's Dtype enum, which the
// reference sorts by (descending) when it lays tensors out.
type dtypeInfo struct {
	bits int
	rank int
}

// dtypes lists every element type the reference library defines, in its
// enum order.
var dtypes = func() map[string]dtypeInfo {
	names := []struct {
		name string
		bits int
	}{
		{"BOOL", 8}, {"F4", 4}, {"F6_E2M3", 6}, {"F6_E3M2", 6}, {"U8", 8}, {"I8", 8},
		{"F8_E5M2", 8}, {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16}, {"U16", 16},
		{"F16", 16}, {"BF16", 16}, {"I32", 32}, {"U32", 32}, {"F32", 32}, {"C64", 64},
		{"F64", 64}, {"I64", 64}, {"U64", 64},
	}
	m := make(map[string]dtypeInfo, len(names))
	for i, n := range names {
		m[n.name] = dtypeInfo{bits: n.bits, rank: i}
	}
	return m
}()

// Tensor is one named array. Data holds the elements in row-major order as
// raw little-endian bytes; after [Decode] it aliases the decoded buffer.
type Tensor struct {
	Name  string
	DType string // "F32", "F16", "BF16", "I64", ... as written in the header
	Shape []int  // empty for a scalar
	Data  []byte
}

// File is the content of one safetensors file.
type File struct {
	// Metadata is the free-form "__metadata__" map; nil or empty means none.
	Metadata map[string]string
	// Tensors are in data-offset order after Decode. Encode accepts any order.
	Tensors []Tensor
}

// F32 makes a float32 tensor, copying data into little-endian bytes. The
// length of data is not checked against shape here; Encode reports a mismatch.
func F32(name string, shape []int, data []float32) Tensor {
	b := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: "F32", Shape: slices.Clone(shape), Data: b}
}

// Tensor returns the tensor called name, or nil. The pointer refers into
// f.Tensors.
func (f *File) Tensor(name string) *Tensor {
	for i := range f.Tensors {
		if f.Tensors[i].Name == name {
			return &f.Tensors[i]
		}
	}
	return nil
}

// Float32 returns a new slice with the elements converted to float32. F32 is
// copied exactly; F16 and BF16 widen exactly; F64 rounds to nearest. Other
// dtypes are an error, as is Data whose length does not match DType and Shape.
func (t Tensor) Float32() ([]float32, error) {
	n, err := byteLen(t.DType, t.Shape)
	if err != nil {
		return nil, fmt.Errorf("safetensors: tensor %q: %w", t.Name, err)
	}
	if n != len(t.Data) {
		return nil, fmt.Errorf("safetensors: tensor %q: %w", t.Name, sizeMismatch(t.DType, t.Shape, n, len(t.Data)))
	}
	size := dtypes[t.DType].bits / 8
	out := make([]float32, 0, n/max(size, 1))
	d := t.Data
	switch t.DType {
	case "F32":
		for i := 0; i < len(d); i += 4 {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(d[i:])))
		}
	case "F16":
		for i := 0; i < len(d); i += 2 {
			out = append(out, halfToFloat32(binary.LittleEndian.Uint16(d[i:])))
		}
	case "BF16":
		for i := 0; i < len(d); i += 2 {
			out = append(out, math.Float32frombits(uint32(binary.LittleEndian.Uint16(d[i:]))<<16))
		}
	case "F64":
		for i := 0; i < len(d); i += 8 {
			out = append(out, float32(math.Float64frombits(binary.LittleEndian.Uint64(d[i:]))))
		}
	default:
		return nil, fmt.Errorf("safetensors: tensor %q: cannot convert dtype %s to float32 (only F32, F16, BF16, F64)", t.Name, t.DType)
	}
	return out, nil
}

// halfToFloat32 widens an IEEE 754 binary16 value; every half value,
// subnormals, infinities and NaN payloads included, is exact in float32.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: renormalise, since it is a normal float32.
	e := uint32(127 - 15 + 1)
	for frac&0x400 == 0 {
		frac <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
}

// byteLen is the number of data bytes a tensor of this dtype and shape has.
func byteLen(dtype string, shape []int) (int, error) {
	info, ok := dtypes[dtype]
	if !ok {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	// Bits may exceed the element count by 8x, so bound it well inside int.
	const limit = math.MaxInt64 / 8
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		if d != 0 && n > limit/d {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= d
	}
	if n > limit/info.bits {
		return 0, fmt.Errorf("shape %v has too many elements", shape)
	}
	bits := n * info.bits
	if bits%8 != 0 {
		return 0, fmt.Errorf("%d elements of %d-bit %s do not fill whole bytes", n, info.bits, dtype)
	}
	return bits / 8, nil
}

func sizeMismatch(dtype string, shape []int, want, got int) error {
	return fmt.Errorf("dtype %s and shape %v need %d bytes, got %d", dtype, shape, want, got)
}

// Check verifies that f holds exactly the expected float32 tensors: every name
// in want present, with dtype F32 and that shape, and no other tensor. The
// error lists every problem, one per tensor, sorted by name, so a caller
// loading weights for the wrong architecture sees the whole difference at once.
func (f *File) Check(want map[string][]int) error {
	type problem struct{ name, msg string }
	var probs []problem
	have := make(map[string]*Tensor, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		have[t.Name] = t
		if _, ok := want[t.Name]; !ok {
			probs = append(probs, problem{t.Name, fmt.Sprintf("unexpected tensor (%s %v)", t.DType, t.Shape)})
		}
	}
	for name, shape := range want {
		t, ok := have[name]
		if !ok {
			probs = append(probs, problem{name, fmt.Sprintf("missing (want F32 %v)", shape)})
			continue
		}
		var bad []string
		if t.DType != "F32" {
			bad = append(bad, fmt.Sprintf("dtype %s, want F32", t.DType))
		}
		if !slices.Equal(t.Shape, shape) {
			bad = append(bad, fmt.Sprintf("shape %v, want %v", t.Shape, shape))
		}
		if len(bad) > 0 {
			probs = append(probs, problem{name, strings.Join(bad, ", ")})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Slice(probs, func(i, j int) bool { return probs[i].name < probs[j].name })
	parts := make([]string, len(probs))
	for i, p := range probs {
		parts[i] = fmt.Sprintf("%q: %s", p.name, p.msg)
	}
	noun := "problem"
	if len(probs) > 1 {
		noun = "problems"
	}
	return fmt.Errorf("safetensors: %d tensor %s: %s", len(probs), noun, strings.Join(parts, "; "))
}
