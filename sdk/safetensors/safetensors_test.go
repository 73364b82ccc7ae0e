package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// raw builds a file from a literal header, without the padding Encode adds,
// so tests control every byte.
func raw(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func f16(vals ...uint16) []byte {
	var b []byte
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

// sample has one tensor of most dtypes, a scalar, an empty tensor, and
// metadata that JSON must escape, in no particular order.
func sample() *File {
	return &File{
		Metadata: map[string]string{"format": "pt", "note": "a<b & \"c\"\n é", "": "empty key"},
		Tensors: []Tensor{
			F32("fc.weight", []int{2, 3}, []float32{1, -2, 3.5, 0, float32(math.Inf(-1)), 1e-30}),
			{Name: "bf", DType: "BF16", Shape: []int{2}, Data: f16(0x3fc0, 0xc000)},
			{Name: "half", DType: "F16", Shape: []int{1, 2}, Data: f16(0x3c00, 0x0001)},
			{Name: "steps", DType: "I64", Shape: []int{}, Data: binary.LittleEndian.AppendUint64(nil, 12345)},
			{Name: "mask", DType: "BOOL", Shape: []int{3}, Data: []byte{1, 0, 1}},
			{Name: "pixels", DType: "U8", Shape: []int{5}, Data: []byte{1, 2, 3, 4, 255}},
			F32("empty", []int{0, 3}, nil),
			{Name: "f64", DType: "F64", Shape: []int{1}, Data: binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1))},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	in := sample()
	before := slices.Clone(in.Tensors)
	b, err := in.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Tensors, before) {
		t.Error("Encode modified the File")
	}
	n := binary.LittleEndian.Uint64(b)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	out, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Metadata, in.Metadata) {
		t.Errorf("metadata %q, want %q", out.Metadata, in.Metadata)
	}
	if len(out.Tensors) != len(in.Tensors) {
		t.Fatalf("%d tensors, want %d", len(out.Tensors), len(in.Tensors))
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	prevEnd := 8 + int(n)
	for _, got := range out.Tensors {
		want := in.Tensor(got.Name)
		if want == nil {
			t.Fatalf("unexpected tensor %q", got.Name)
		}
		if got.DType != want.DType || !slices.Equal(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("tensor %q: got %s %v %x, want %s %v %x", got.Name, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
		if len(got.Data) == 0 {
			continue
		}
		// Zero copy, in offset order, and aligned to the element size like
		// the reference layout guarantees.
		off := int(uintptr(unsafe.Pointer(unsafe.SliceData(got.Data))) - base)
		if off < 0 || off >= len(b) {
			t.Errorf("tensor %q: Data does not alias the input", got.Name)
		}
		if off != prevEnd {
			t.Errorf("tensor %q starts at byte %d, previous tensor ended at %d", got.Name, off, prevEnd)
		}
		prevEnd = off + len(got.Data)
		if size := dtypes[got.DType].bits / 8; off%size != 0 {
			t.Errorf("tensor %q (%s) starts at file byte %d, not aligned", got.Name, got.DType, off)
		}
	}

	// Appending to one tensor's Data must not overwrite the next one.
	first, second := out.Tensors[0], slices.Clone(out.Tensors[1].Data)
	_ = append(first.Data, 0xAA, 0xAA, 0xAA, 0xAA)
	if !bytes.Equal(out.Tensors[1].Data, second) {
		t.Error("append to a decoded tensor overwrote its neighbour")
	}
}

func TestEncodeDeterministic(t *testing.T) {
	a, err := sample().Encode()
	if err != nil {
		t.Fatal(err)
	}
	s := sample()
	slices.Reverse(s.Tensors)
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("tensor order of the File changed the encoding")
	}
	// Layout rule of the reference: descending dtype rank, then name.
	f, _ := Decode(a)
	var names []string
	for _, t := range f.Tensors {
		names = append(names, t.DType+":"+t.Name)
	}
	want := []string{"I64:steps", "F64:f64", "F32:empty", "F32:fc.weight", "BF16:bf", "F16:half", "U8:pixels", "BOOL:mask"}
	if !slices.Equal(names, want) {
		t.Errorf("layout %v, want %v", names, want)
	}
}

// TestReferenceVectors compares with byte strings from the reference
// library's own tests (test_serialization, test_empty).
func TestReferenceVectors(t *testing.T) {
	f := &File{Tensors: []Tensor{F32("attn.0", []int{1, 2, 3}, []float32{0, 1, 2, 3, 4, 5})}}
	got, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := raw(`{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}`,
		[]byte{0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64})
	if !bytes.Equal(got, want) {
		t.Errorf("attn.0:\n got %q\nwant %q", got, want)
	}

	got, err = (&File{}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := raw("{}      ", nil); !bytes.Equal(got, want) {
		t.Errorf("empty:\n got %q\nwant %q", got, want)
	}
	got, err = (&File{Metadata: map[string]string{"framework": "pt"}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := raw(`{"__metadata__":{"framework":"pt"}}     `, nil); !bytes.Equal(got, want) {
		t.Errorf("metadata only:\n got %q\nwant %q", got, want)
	}
}

func TestDecodeAcceptsPaddingAndAnyKeyOrder(t *testing.T) {
	b := raw(`{"b":{"data_offsets":[8,12],"shape":[1],"dtype":"F32","extra":1},`+
		`"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},`+
		`"__metadata__":null,"a":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`+"   \n ",
		make([]byte, 12))
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, t := range f.Tensors {
		names = append(names, t.Name)
	}
	if want := []string{"z", "a", "b"}; !slices.Equal(names, want) {
		t.Errorf("order %v, want %v (by offsets, then name for ties)", names, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	f32x2 := make([]byte, 8)
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 40)...)
	absurd := binary.LittleEndian.AppendUint64(nil, 200_000_000)
	absurd = append(absurd, "{}"...)
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "safetensors: empty input: not a safetensors file"},
		{"png", png, "safetensors: not a safetensors file: it looks like a PNG image"},
		{"pytorch zip", []byte("PK\x03\x04\x00\x00\x00\x00archive/data.pkl"), "not a safetensors file: it looks like a zip archive (a PyTorch .pt/.pth checkpoint?)"},
		{"text", []byte("hello, this is a text file\n"), `safetensors: not a safetensors file: it starts with text "hello, this is a text fi"`},
		{"too short", []byte{4, 0, 0}, "safetensors: file too short (3 bytes): a safetensors file starts with an 8-byte header length"},
		{"absurd header length", absurd, "safetensors: header length 200000000 is absurd (limit 100000000 bytes): not a safetensors file"},
		{"zero header length", raw("", nil), "header length 0 is too small for a JSON object"},
		{"header not an object", raw(`["a"]`, nil), `safetensors: not a safetensors file: the JSON header must start with '{', found '['`},
		{"header beyond file", append(binary.LittleEndian.AppendUint64(nil, 100), `{"a":{}}`...), "safetensors: truncated: header length 100 exceeds the 8 bytes that follow it"},
		{"bad json", raw(`{"a":{"dtype":"F32",}}`, nil), "safetensors: malformed JSON header: "},
		{"cut json", raw(`{"a":`, nil), "safetensors: malformed JSON header: "},
		{"trailing junk", raw(`{} x`, nil), `safetensors: malformed JSON header: unexpected "x" after the closing brace`},
		{"invalid utf8", raw("{\"\xff\":1}", nil), "safetensors: malformed JSON header: not valid UTF-8"},
		{"duplicate key", raw(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, make([]byte, 4)), `safetensors: malformed JSON header: duplicate key "a"`},
		{"metadata not strings", raw(`{"__metadata__":{"epochs":3}}`, nil), "safetensors: __metadata__: must map strings to strings: json: cannot unmarshal number"},
		{"entry not object", raw(`{"w":[1,2]}`, nil), `safetensors: tensor "w": entry must be an object with dtype, shape and data_offsets, found [1,2]`},
		{"unknown dtype", raw(`{"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, f32x2), `safetensors: tensor "w": unknown dtype "F33"`},
		{"missing offsets", raw(`{"w":{"dtype":"F32","shape":[2],"offsets":[0,8]}}`, f32x2), `safetensors: tensor "w": missing "data_offsets"`},
		{"null shape", raw(`{"w":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, f32x2), `safetensors: tensor "w": shape is null`},
		{"fractional dim", raw(`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, f32x2), `safetensors: tensor "w": shape: json: cannot unmarshal number 1.5`},
		{"negative dim", raw(`{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, f32x2), `safetensors: tensor "w": negative dimension -2 in shape [-2]`},
		{"three offsets", raw(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, f32x2), `safetensors: tensor "w": data_offsets must be [begin, end], found [0 4 8]`},
		{"reversed offsets", raw(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, f32x2), `safetensors: tensor "w": data_offsets [8 0]: need 0 <= begin <= end`},
		{"size mismatch", raw(`{"encoder.0.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, make([]byte, 20)),
			`safetensors: tensor "encoder.0.weight": dtype F32 and shape [2 3] need 24 bytes, but data_offsets [0, 20] hold 20`},
		{"shape overflow", raw(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, f32x2), `safetensors: tensor "w": shape [4294967296 4294967296] has too many elements`},
		{"partial byte", raw(`{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}`, make([]byte, 2)), `safetensors: tensor "w": 3 elements of 4-bit F4 do not fill whole bytes`},
		{"overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
			`safetensors: tensor "b": data_offsets [4, 12] overlap tensor "a" [0, 8]`},
		{"gap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}`, make([]byte, 20)),
			`safetensors: tensor "b": data_offsets [12, 20] leave a gap of 4 bytes after tensor "a"`},
		{"gap at start", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
			`safetensors: tensor "a": data_offsets [4, 12] leave a gap of 4 bytes at the start of the data buffer`},
		{"data truncated", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, make([]byte, 12)),
			`safetensors: truncated: tensor "b" data_offsets [8, 16] reach beyond the 12-byte data buffer`},
		{"stray bytes", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 11)),
			`safetensors: 3 stray bytes after the data of tensor "a": tensors must cover the data buffer exactly`},
		{"data without tensors", raw(`{}`, make([]byte, 4)), `safetensors: 4 stray bytes after the data of the header`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Decode(c.in)
			if err == nil {
				t.Fatalf("decoded %+v, want error %q", f, c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}
}

func TestReadFileNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.safetensors")
	bad := raw(`{"encoder.0.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}`, make([]byte, 12))
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadFile(path)
	want := "safetensors: read " + path + `: tensor "encoder.0.weight": dtype F32 and shape [4] need 16 bytes`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %v, want prefix %q", err, want)
	}

	missing := filepath.Join(t.TempDir(), "nope.safetensors")
	_, err = ReadFile(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("error %v, want a not-exist error naming %s", err, missing)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		f    File
		want string
	}{
		{"short data", File{Tensors: []Tensor{F32("fc.weight", []int{2, 3}, make([]float32, 5))}},
			`safetensors: tensor "fc.weight": dtype F32 and shape [2 3] need 24 bytes, got 20`},
		{"duplicate", File{Tensors: []Tensor{F32("a", nil, []float32{1}), F32("a", nil, []float32{2})}},
			`safetensors: tensor "a": duplicate name`},
		{"reserved", File{Tensors: []Tensor{F32(metadataKey, nil, []float32{1})}},
			`safetensors: tensor name "__metadata__" is reserved for metadata`},
		{"unknown dtype", File{Tensors: []Tensor{{Name: "a", DType: "float32", Data: make([]byte, 4)}}},
			`safetensors: tensor "a": unknown dtype "float32"`},
		{"negative dim", File{Tensors: []Tensor{{Name: "a", DType: "U8", Shape: []int{-1}}}},
			`safetensors: tensor "a": negative dimension -1 in shape [-1]`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.f.Encode()
			if err == nil || err.Error() != c.want {
				t.Errorf("error %v, want %s", err, c.want)
			}
		})
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	if err := os.WriteFile(path, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := sample()
	if err := in.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := in.Encode()
	if !bytes.Equal(got, want) {
		t.Error("file content differs from Encode")
	}
	if _, err := ReadFile(path); err != nil {
		t.Error(err)
	}

	// A File that cannot be encoded leaves the old file alone.
	bad := &File{Tensors: []Tensor{F32("x", []int{3}, nil)}}
	err = bad.WriteFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), "safetensors: write "+path+`: tensor "x"`) {
		t.Errorf("error %v, want one naming the path and tensor", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, want) {
		t.Error("failed WriteFile changed the existing file")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the weights file (temporary file left behind?)", len(entries))
	}

	noDir := filepath.Join(dir, "missing", "w.safetensors")
	if err := in.WriteFile(noDir); err == nil || !strings.Contains(err.Error(), filepath.Dir(noDir)) {
		t.Errorf("error %v, want one naming %s", err, filepath.Dir(noDir))
	}
}

func TestFloat32(t *testing.T) {
	f := sample()
	for _, c := range []struct {
		name string
		want []float32
	}{
		{"fc.weight", []float32{1, -2, 3.5, 0, float32(math.Inf(-1)), 1e-30}},
		{"bf", []float32{1.5, -2}},
		{"half", []float32{1, float32(math.Ldexp(1, -24))}},
		{"f64", []float32{float32(0.1)}},
		{"empty", []float32{}},
	} {
		got, err := f.Tensor(c.name).Float32()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if _, err := f.Tensor("steps").Float32(); err == nil || !strings.Contains(err.Error(), `tensor "steps": cannot convert dtype I64 to float32`) {
		t.Errorf("I64: error %v", err)
	}
	short := Tensor{Name: "s", DType: "F32", Shape: []int{3}, Data: make([]byte, 8)}
	if _, err := short.Float32(); err == nil || err.Error() != `safetensors: tensor "s": dtype F32 and shape [3] need 12 bytes, got 8` {
		t.Errorf("short data: error %v", err)
	}
}

// TestHalfExhaustive checks every binary16 bit pattern against the textbook
// definition evaluated in float64.
func TestHalfExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign, exp, frac := h>>15, (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case exp == 0x1f && frac == 0:
			want = math.Inf(1)
		case exp == 0x1f:
			want = math.NaN()
		case exp == 0:
			want = math.Ldexp(float64(frac)/1024, -14)
		default:
			want = math.Ldexp(1+float64(frac)/1024, exp-15)
		}
		if sign == 1 {
			want = -want
		}
		got := halfToFloat32(uint16(h))
		if math.IsNaN(want) {
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: %v, want NaN", h, got)
			}
			continue
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign == 1) {
			t.Fatalf("%#04x: %v, want %v", h, got, want)
		}
	}
}

func TestTensorLookup(t *testing.T) {
	f := sample()
	p := f.Tensor("half")
	if p == nil || p.Name != "half" {
		t.Fatalf("Tensor(half) = %v", p)
	}
	if p != &f.Tensors[2] {
		t.Error("Tensor should point into f.Tensors")
	}
	if f.Tensor("nope") != nil {
		t.Error("Tensor(nope) should be nil")
	}
}

func TestCheck(t *testing.T) {
	f := &File{Tensors: []Tensor{
		F32("a", []int{2, 3}, make([]float32, 6)),
		F32("b", []int{4}, make([]float32, 4)),
		{Name: "c", DType: "F16", Shape: []int{2}, Data: make([]byte, 4)},
		{Name: "e", DType: "I64", Shape: []int{}, Data: make([]byte, 8)},
		{Name: "g", DType: "F16", Shape: []int{1}, Data: make([]byte, 2)},
	}}
	if err := f.Check(map[string][]int{"a": {2, 3}, "b": {4}, "c": {2}, "e": nil, "g": {1}}); err == nil {
		t.Error("Check accepted F16 and I64 tensors")
	}
	err := f.Check(map[string][]int{"a": {2, 3}, "b": {5}, "c": {2}, "d": {1}, "g": {2}})
	want := `safetensors: 5 tensor problems: "b": shape [4], want [5]; "c": dtype F16, want F32; ` +
		`"d": missing (want F32 [1]); "e": unexpected tensor (I64 []); "g": dtype F16, want F32, shape [1], want [2]`
	if err == nil || err.Error() != want {
		t.Errorf("error\n  %v\nwant\n  %s", err, want)
	}
	ok := &File{Tensors: []Tensor{F32("a", []int{2, 3}, make([]float32, 6)), F32("s", nil, []float32{1})}}
	if err := ok.Check(map[string][]int{"a": {2, 3}, "s": {}}); err != nil {
		t.Errorf("matching file: %v", err)
	}
}

// fixtureWant is the layout of testdata/torch_fixture.json.
type fixtureWant struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  map[string]struct {
		DType  string    `json:"dtype"`
		Shape  []int     `json:"shape"`
		Values []float64 `json:"values"`
	} `json:"tensors"`
	ReencodedIdentical *bool `json:"reencoded_identical"`
}

// compareWithWant checks a decoded file against values listed by Python.
func compareWithWant(t *testing.T, f *File, want fixtureWant) {
	t.Helper()
	if !reflect.DeepEqual(f.Metadata, want.Metadata) {
		t.Errorf("metadata %q, want %q", f.Metadata, want.Metadata)
	}
	if len(f.Tensors) != len(want.Tensors) {
		t.Errorf("%d tensors, want %d", len(f.Tensors), len(want.Tensors))
	}
	for name, w := range want.Tensors {
		got := f.Tensor(name)
		if got == nil {
			t.Errorf("tensor %q missing", name)
			continue
		}
		if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) {
			t.Errorf("tensor %q: %s %v, want %s %v", name, got.DType, got.Shape, w.DType, w.Shape)
			continue
		}
		var vals []float64
		switch got.DType {
		case "I64":
			for i := 0; i < len(got.Data); i += 8 {
				vals = append(vals, float64(int64(binary.LittleEndian.Uint64(got.Data[i:]))))
			}
		case "F64": // Float32 would round
			for i := 0; i < len(got.Data); i += 8 {
				vals = append(vals, math.Float64frombits(binary.LittleEndian.Uint64(got.Data[i:])))
			}
		case "U8", "BOOL":
			for _, b := range got.Data {
				vals = append(vals, float64(b))
			}
		default:
			fs, err := got.Float32()
			if err != nil {
				t.Errorf("tensor %q: %v", name, err)
				continue
			}
			for _, v := range fs {
				vals = append(vals, float64(v))
			}
		}
		if len(vals) != len(w.Values) {
			t.Errorf("tensor %q: %d values, want %d", name, len(vals), len(w.Values))
			continue
		}
		for i := range vals {
			// Python lists each value as the exact double of the stored
			// element, so compare bits, including the sign of zero.
			if math.Float64bits(vals[i]) != math.Float64bits(w.Values[i]) {
				t.Errorf("tensor %q[%d] = %v, want %v", name, i, vals[i], w.Values[i])
			}
		}
	}
}

func TestPythonFixture(t *testing.T) {
	path := filepath.Join("testdata", "torch_fixture.safetensors")
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join("testdata", "torch_fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want fixtureWant
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	compareWithWant(t, f, want)

	// The Python writer follows the reference layout; Encode must reproduce
	// its bytes exactly.
	orig, _ := os.ReadFile(path)
	again, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, orig) {
		t.Errorf("re-encoding the Python fixture changed it:\n got %q\nwant %q", again, orig)
	}
}

// TestPythonReadsGo has Python decode a file written here. It needs
// /usr/bin/python3 with numpy, so it runs only with GENPIPE_PYTHON=1.
func TestPythonReadsGo(t *testing.T) {
	if os.Getenv("GENPIPE_PYTHON") != "1" {
		t.Skip("set GENPIPE_PYTHON=1 to cross-check with /usr/bin/python3 and numpy")
	}
	f := sample()
	// JSON has no infinity, and Python would print one as -Infinity.
	f.Tensors[0] = F32("fc.weight", []int{2, 3}, []float32{1, -2, 3.5, 0, -0.0078125, 1e-30})
	path := filepath.Join(t.TempDir(), "go.safetensors")
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", filepath.Join("testdata", "make_fixture.py"), "dump", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("python: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var got fixtureWant
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	if got.ReencodedIdentical == nil || !*got.ReencodedIdentical {
		t.Error("Python's reference-layout writer does not reproduce the Go-written bytes")
	}
	// Python decoded what Go wrote; check it saw the values Go meant.
	back, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	compareWithWant(t, back, got)
	if len(got.Tensors) != len(f.Tensors) {
		t.Errorf("python saw %d tensors, Go wrote %d", len(got.Tensors), len(f.Tensors))
	}
}
