package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"unicode/utf8"
)

// ReadFile reads and decodes the safetensors file at path. The whole file is
// read into memory and the tensors' Data alias that one buffer.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err) // os errors already name the path
	}
	f, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: read %s: %w", path, err)
	}
	return f, nil
}

// Decode parses a whole safetensors file held in b. It copies nothing: the
// tensors' Data are sub-slices of b (capped, so appending to one cannot
// overwrite its neighbour), and b must not be modified while they are in use.
func Decode(b []byte) (*File, error) {
	f, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return f, nil
}

// tensorHeader is one tensor's header entry with its data offsets parsed.
type tensorHeader struct {
	name       string
	dtype      string
	shape      []int
	begin, end int
}

func decode(b []byte) (*File, error) {
	header, data, err := split(b)
	if err != nil {
		return nil, err
	}
	meta, entries, err := parseHeader(header)
	if err != nil {
		return nil, err
	}
	// Empty tensors share an offset with their neighbour; tie-break on end,
	// then name, so the order is the same whatever the header's key order.
	sort.Slice(entries, func(i, j int) bool {
		a, c := entries[i], entries[j]
		if a.begin != c.begin {
			return a.begin < c.begin
		}
		if a.end != c.end {
			return a.end < c.end
		}
		return a.name < c.name
	})
	pos := 0
	for i, e := range entries {
		switch {
		case e.begin < pos:
			p := entries[i-1]
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q [%d, %d]",
				e.name, e.begin, e.end, p.name, p.begin, p.end)
		case e.begin > pos && i == 0:
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap of %d bytes at the start of the data buffer",
				e.name, e.begin, e.end, e.begin)
		case e.begin > pos:
			return nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap of %d bytes after tensor %q",
				e.name, e.begin, e.end, e.begin-pos, entries[i-1].name)
		}
		pos = e.end
	}
	if pos > len(data) {
		// Name the first tensor that does not fit: that is where the file was cut.
		for _, e := range entries {
			if e.end > len(data) {
				return nil, fmt.Errorf("truncated: tensor %q data_offsets [%d, %d] reach beyond the %d-byte data buffer",
					e.name, e.begin, e.end, len(data))
			}
		}
	}
	if pos < len(data) {
		last := "the header"
		if len(entries) > 0 {
			last = fmt.Sprintf("tensor %q", entries[len(entries)-1].name)
		}
		return nil, fmt.Errorf("%d stray bytes after the data of %s: tensors must cover the data buffer exactly",
			len(data)-pos, last)
	}
	f := &File{Metadata: meta, Tensors: make([]Tensor, len(entries))}
	for i, e := range entries {
		f.Tensors[i] = Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Data: data[e.begin:e.end:e.end]}
	}
	return f, nil
}

// split checks the length prefix and returns the header and data buffer. Most
// wrong inputs (an image, a PyTorch checkpoint, a text file) fail here, so it
// tries to say what the input is instead.
func split(b []byte) (header, data []byte, err error) {
	if len(b) == 0 {
		return nil, nil, errors.New("empty input: not a safetensors file")
	}
	if kind := sniff(b); kind != "" {
		return nil, nil, fmt.Errorf("not a safetensors file: it looks like %s", kind)
	}
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("file too short (%d bytes): a safetensors file starts with an 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > maxHeader {
		if isText(b[:8]) {
			return nil, nil, fmt.Errorf("not a safetensors file: it starts with text %q", b[:min(len(b), 24)])
		}
		return nil, nil, fmt.Errorf("header length %d is absurd (limit %d bytes): not a safetensors file", n, maxHeader)
	}
	if n < 2 {
		return nil, nil, fmt.Errorf("header length %d is too small for a JSON object: not a safetensors file", n)
	}
	if len(b) > 8 && b[8] != '{' {
		return nil, nil, fmt.Errorf("not a safetensors file: the JSON header must start with '{', found %q", b[8])
	}
	if n > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("truncated: header length %d exceeds the %d bytes that follow it", n, len(b)-8)
	}
	return b[8 : 8+n], b[8+n:], nil
}

// sniff names common files that are mistaken for weights.
func sniff(b []byte) string {
	for _, m := range []struct{ magic, kind string }{
		{"\x89PNG\r\n\x1a\n", "a PNG image"},
		{"\xff\xd8\xff", "a JPEG image"},
		{"GIF8", "a GIF image"},
		{"PK\x03\x04", "a zip archive (a PyTorch .pt/.pth checkpoint?)"},
		{"\x80\x02", "a Python pickle (an old-style PyTorch checkpoint?)"},
		{"\x93NUMPY", "a NumPy .npy array"},
		{"GGUF", "a GGUF model"},
		{"\x1f\x8b", "gzip-compressed data"},
	} {
		if bytes.HasPrefix(b, []byte(m.magic)) {
			return m.kind
		}
	}
	return ""
}

// isText reports whether b is printable ASCII or common whitespace. A real
// length prefix below the 100 MB limit has zero high bytes, so it never is.
func isText(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\n' && c != '\r' && c != '\t' {
			return false
		}
	}
	return true
}

// parseHeader decodes the JSON header with a token stream rather than into a
// map, so duplicate keys are caught instead of silently keeping the last.
func parseHeader(h []byte) (map[string]string, []tensorHeader, error) {
	if !utf8.Valid(h) {
		return nil, nil, errors.New("malformed JSON header: not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(h))
	bad := func(err error) error { return fmt.Errorf("malformed JSON header: %w", err) }
	if tok, err := dec.Token(); err != nil {
		return nil, nil, bad(err)
	} else if tok != json.Delim('{') {
		return nil, nil, bad(fmt.Errorf("want an object, found %v", tok))
	}
	var meta map[string]string
	var entries []tensorHeader
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, bad(err)
		}
		key := tok.(string) // inside an object Token yields only string keys
		if seen[key] {
			return nil, nil, bad(fmt.Errorf("duplicate key %q", key))
		}
		seen[key] = true
		if key == metadataKey {
			if err := dec.Decode(&meta); err != nil {
				return nil, nil, fmt.Errorf("%s: must map strings to strings: %w", metadataKey, err)
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, bad(err)
		}
		e, err := parseEntry(key, raw)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", key, err)
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, bad(err)
	}
	rest := h[dec.InputOffset():]
	if trimmed := bytes.TrimLeft(rest, " \t\r\n"); len(trimmed) > 0 {
		return nil, nil, bad(fmt.Errorf("unexpected %q after the closing brace", trimmed[:min(len(trimmed), 16)]))
	}
	return meta, entries, nil
}

// parseEntry validates one tensor's header entry. Keys are matched exactly
// (encoding/json would match "DTYPE" to a dtype field); unknown keys are
// ignored, as the reference library does.
func parseEntry(name string, raw json.RawMessage) (tensorHeader, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return tensorHeader{}, fmt.Errorf("entry must be an object with dtype, shape and data_offsets, found %.40s", raw)
	}
	var dtype string
	var shape, offs []int64
	for _, f := range []struct {
		key string
		dst any
	}{{"dtype", &dtype}, {"shape", &shape}, {"data_offsets", &offs}} {
		v, ok := fields[f.key]
		if !ok {
			return tensorHeader{}, fmt.Errorf("missing %q", f.key)
		}
		if string(v) == "null" { // Unmarshal would accept it as the zero value
			return tensorHeader{}, fmt.Errorf("%s is null", f.key)
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return tensorHeader{}, fmt.Errorf("%s: %w", f.key, err)
		}
	}
	e := tensorHeader{name: name, dtype: dtype, shape: make([]int, len(shape))}
	for i, d := range shape {
		if d < 0 {
			return e, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		e.shape[i] = int(d)
	}
	if len(offs) != 2 {
		return e, fmt.Errorf("data_offsets must be [begin, end], found %v", offs)
	}
	if offs[0] < 0 || offs[1] < offs[0] {
		return e, fmt.Errorf("data_offsets %v: need 0 <= begin <= end", offs)
	}
	e.begin, e.end = int(offs[0]), int(offs[1])
	want, err := byteLen(dtype, e.shape)
	if err != nil {
		return e, err
	}
	if got := e.end - e.begin; got != want {
		return e, fmt.Errorf("dtype %s and shape %v need %d bytes, but data_offsets [%d, %d] hold %d",
			dtype, e.shape, want, e.begin, e.end, got)
	}
	return e, nil
}
