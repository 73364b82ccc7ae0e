package safetensors

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode. It must never panic, and
// whatever it accepts must survive Encode and decode to the same content, with
// Encode a fixed point from then on.
//
//	go test -run '^$' -fuzz FuzzDecode ./sdk/safetensors
func FuzzDecode(f *testing.F) {
	valid, err := sample().Encode()
	if err != nil {
		f.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join("testdata", "torch_fixture.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		valid,
		valid[:len(valid)-3],
		fixture,
		nil,
		[]byte("\x89PNG\r\n\x1a\n"),
		raw(`{}`, nil),
		raw(`{"__metadata__":{"a":"b"}}`, nil),
		raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)),
		raw(`{"a":{"dtype":"F4","shape":[2,1],"data_offsets":[0,1]},"b":{"dtype":"U8","shape":[0],"data_offsets":[1,1]}}`, []byte{7}),
		raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Decode(b)
		if err != nil {
			return
		}
		enc, err := in.Encode()
		if err != nil {
			t.Fatalf("decoded file does not encode: %v", err)
		}
		out, err := Decode(enc)
		if err != nil {
			t.Fatalf("encoded file does not decode: %v", err)
		}
		if len(in.Metadata) != 0 || len(out.Metadata) != 0 {
			if !maps.Equal(in.Metadata, out.Metadata) {
				t.Fatalf("metadata %q became %q", in.Metadata, out.Metadata)
			}
		}
		if len(in.Tensors) != len(out.Tensors) {
			t.Fatalf("%d tensors became %d", len(in.Tensors), len(out.Tensors))
		}
		for _, a := range in.Tensors {
			c := out.Tensor(a.Name)
			if c == nil || c.DType != a.DType || !slices.Equal(c.Shape, a.Shape) || !bytes.Equal(c.Data, a.Data) {
				t.Fatalf("tensor %q changed in the round trip", a.Name)
			}
		}
		again, err := out.Encode()
		if err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("Encode is not a fixed point (err %v)", err)
		}
	})
}
