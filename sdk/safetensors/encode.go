package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/genpipe/genpipe/internal/atomicfile"
)

// Encode serialises f the way the reference library does, so the bytes are
// deterministic: tensors ordered by descending dtype rank (roughly widest
// alignment first) then by name, compact JSON with "__metadata__" first and
// its keys sorted, the header padded with spaces to a multiple of 8 bytes so
// every tensor's data starts 8-byte aligned in the file. f is not modified.
func (f *File) Encode() ([]byte, error) {
	b, err := f.encode()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return b, nil
}

// WriteFile encodes f and writes it to path atomically: the bytes go to a
// temporary file in the same directory, which is synced and then renamed over
// path, so an interrupted write never leaves a partial weights file behind.
func (f *File) WriteFile(path string) error {
	b, err := f.encode()
	if err != nil {
		return fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	if err := writeAtomic(path, b); err != nil {
		return fmt.Errorf("safetensors: %w", err) // os errors already name the path
	}
	return nil
}

func (f *File) encode() ([]byte, error) {
	order := make([]*Tensor, len(f.Tensors))
	seen := make(map[string]bool, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Name == metadataKey {
			return nil, fmt.Errorf("tensor name %q is reserved for metadata", metadataKey)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tensor %q: duplicate name", t.Name)
		}
		seen[t.Name] = true
		want, err := byteLen(t.DType, t.Shape)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if want != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, sizeMismatch(t.DType, t.Shape, want, len(t.Data)))
		}
		order[i] = t
	}
	sort.Slice(order, func(i, j int) bool {
		ri, rj := dtypes[order[i].DType].rank, dtypes[order[j].DType].rank
		if ri != rj {
			return ri > rj
		}
		return order[i].Name < order[j].Name
	})

	var h bytes.Buffer
	h.WriteByte('{')
	if len(f.Metadata) > 0 {
		writeString(&h, metadataKey)
		h.WriteString(":{")
		keys := make([]string, 0, len(f.Metadata))
		for k := range f.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeString(&h, k)
			h.WriteByte(':')
			writeString(&h, f.Metadata[k])
		}
		h.WriteByte('}')
	}
	off := 0
	for i, t := range order {
		if i > 0 || len(f.Metadata) > 0 {
			h.WriteByte(',')
		}
		writeString(&h, t.Name)
		h.WriteString(`:{"dtype":`)
		writeString(&h, t.DType)
		h.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.Itoa(off))
		h.WriteByte(',')
		off += len(t.Data)
		h.WriteString(strconv.Itoa(off))
		h.WriteString("]}")
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > maxHeader {
		return nil, fmt.Errorf("header of %d bytes exceeds the %d-byte limit readers enforce", h.Len(), maxHeader)
	}

	out := make([]byte, 8, 8+h.Len()+off)
	binary.LittleEndian.PutUint64(out, uint64(h.Len()))
	out = append(out, h.Bytes()...)
	for _, t := range order {
		out = append(out, t.Data...)
	}
	return out, nil
}

// writeString appends s as a JSON string. HTML escaping is off because the
// reference (serde_json) does not escape <, > and &, and the bytes should match.
func writeString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)           // encoding a string cannot fail
	buf.Truncate(buf.Len() - 1) // Encode appends a newline
}

// writeAtomic writes b to path through a synced temporary file in the
// same folder, a rename and a sync of the folder.
func writeAtomic(path string, b []byte) error {
	return atomicfile.Write(path, b, 0o644)
}
