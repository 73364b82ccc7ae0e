package stages

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf8"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// insertPNGText returns png with a tEXt chunk (keyword, text) inserted right
// after IHDR. tEXt holds Latin-1, so text must be ASCII (see asciiJSON).
func insertPNGText(png []byte, keyword, text string) ([]byte, error) {
	if len(keyword) < 1 || len(keyword) > 79 {
		return nil, fmt.Errorf("png text: keyword %q must be 1 to 79 bytes", keyword)
	}
	// signature (8) + IHDR length (4), type (4), data (13), CRC (4)
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	if len(png) < ihdrEnd || !bytes.Equal(png[:8], pngSignature) || string(png[12:16]) != "IHDR" {
		return nil, errors.New("png text: not a PNG starting with IHDR")
	}
	data := append(append([]byte(keyword), 0), text...)
	chunk := make([]byte, 0, 12+len(data))
	chunk = binary.BigEndian.AppendUint32(chunk, uint32(len(data)))
	chunk = append(chunk, "tEXt"...)
	chunk = append(chunk, data...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := make([]byte, 0, len(png)+len(chunk))
	out = append(out, png[:ihdrEnd]...)
	out = append(out, chunk...)
	return append(out, png[ihdrEnd:]...), nil
}

// ReadPNGText returns the tEXt chunks of a PNG stream by keyword, checking
// each chunk's CRC. It reads until IEND.
func ReadPNGText(r io.Reader) (map[string]string, error) {
	sig := make([]byte, 8)
	if _, err := io.ReadFull(r, sig); err != nil || !bytes.Equal(sig, pngSignature) {
		return nil, errors.New("png text: not a PNG file")
	}
	out := map[string]string{}
	var head [8]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return nil, fmt.Errorf("png text: chunk header: %w", err)
		}
		n := binary.BigEndian.Uint32(head[:4])
		typ := string(head[4:8])
		if n > 1<<30 {
			return nil, fmt.Errorf("png text: chunk %q of %d bytes", typ, n)
		}
		if typ != "tEXt" {
			if _, err := io.CopyN(io.Discard, r, int64(n)+4); err != nil {
				return nil, fmt.Errorf("png text: chunk %q: %w", typ, err)
			}
			if typ == "IEND" {
				return out, nil
			}
			continue
		}
		body := make([]byte, n+4)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("png text: tEXt chunk: %w", err)
		}
		crc := crc32.NewIEEE()
		crc.Write(head[4:8])
		crc.Write(body[:n])
		if crc.Sum32() != binary.BigEndian.Uint32(body[n:]) {
			return nil, errors.New("png text: tEXt chunk has a bad CRC")
		}
		k, v, ok := bytes.Cut(body[:n], []byte{0})
		if !ok {
			return nil, errors.New("png text: tEXt chunk without a keyword separator")
		}
		out[string(k)] = latin1(v)
	}
}

func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// asciiJSON escapes every non-ASCII character of JSON text as \uXXXX (JSON
// strings allow that anywhere), so it fits a Latin-1 tEXt chunk unchanged.
func asciiJSON(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r < utf8.RuneSelf {
			out.WriteByte(b[0])
		} else if r > 0xFFFF {
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		} else {
			fmt.Fprintf(&out, `\u%04x`, r)
		}
		b = b[n:]
	}
	return out.Bytes()
}
