package stages

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fuzzMaxPixels is the max_pixels the decode fuzzer loads with: small, so
// that an input can only make the decoder allocate a few megabytes, and any
// larger allocation is a decoder that does not honour the header check.
const fuzzMaxPixels = 1 << 20

// fuzzDeadline bounds one input: decoding a file of a few kilobytes takes
// milliseconds, so seconds mean a loop that does not end (the fuzzer's own
// hang report comes much later and does not name the input).
const fuzzDeadline = 10 * time.Second

// within runs fn and fails t if it does not return within fuzzDeadline.
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(fuzzDeadline):
		t.Fatalf("%s did not return within %v", what, fuzzDeadline)
	}
}

// FuzzDecode feeds arbitrary files to DecodeFile, as a load stage decodes
// each image, seeded (testdata/fuzz/FuzzDecode) with small images in every
// format load accepts: PNG, JPEG (one with EXIF orientation), GIF, BMP, TIFF
// (several compressions) and WebP (lossy and lossless). It must never panic
// or hang; every error must name the file; a decoded image has pixels and at
// most max_pixels of them.
//
//	go test -run '^$' -fuzz '^FuzzDecode$' -parallel 1 ./pipeline/stages
func FuzzDecode(f *testing.F) {
	for _, h := range hugeHeaders(f) {
		f.Add(h.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "in.img")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		within(t, "DecodeFile", func() {
			img, err := DecodeFile(path, fuzzMaxPixels)
			if err != nil {
				if !strings.HasPrefix(err.Error(), path+": ") {
					t.Errorf("error does not start with the file name: %v", err)
				}
				return
			}
			b := img.Bounds()
			if b.Empty() || b.Dx()*b.Dy() > fuzzMaxPixels {
				t.Errorf("decoded a %v image with max_pixels %d", b, fuzzMaxPixels)
			}
		})
	})
}

type header struct {
	format string
	data   []byte
}

// hugeHeaders returns, per format, a file whose header claims a picture of
// billions of pixels (the largest each format can say, at least 100000 x
// 100000 where the format allows) and that has no pixel data.
func hugeHeaders(tb testing.TB) []header {
	le, be := binary.LittleEndian, binary.BigEndian
	var out []header

	// PNG: signature and IHDR (with its CRC, which the decoder checks).
	ihdr := be.AppendUint32(nil, 100000)
	ihdr = be.AppendUint32(ihdr, 100000)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB
	var png bytes.Buffer
	png.WriteString("\x89PNG\r\n\x1a\n")
	png.Write(be.AppendUint32(nil, uint32(len(ihdr))))
	chunk := append([]byte("IHDR"), ihdr...)
	png.Write(chunk)
	png.Write(be.AppendUint32(nil, crc32.ChecksumIEEE(chunk)))
	out = append(out, header{"png", png.Bytes()})

	// JPEG: SOI, JFIF APP0 (the decoder reads a JFIF file's size from its
	// SOF), then a baseline SOF of 65535 x 65535 with 3 components.
	jpg := []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0}
	jpg = append(jpg, 0xff, 0xc0, 0, 17, 8, 0xff, 0xff, 0xff, 0xff, 3, 1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1)
	out = append(out, header{"jpeg", jpg})

	// GIF: a 65535 x 65535 logical screen.
	gif := []byte("GIF89a")
	gif = le.AppendUint16(gif, 0xffff)
	gif = le.AppendUint16(gif, 0xffff)
	gif = append(gif, 0, 0, 0, 0x3b)
	out = append(out, header{"gif", gif})

	// BMP: file header and BITMAPINFOHEADER, 24 bits per pixel.
	bmp := []byte("BM")
	bmp = le.AppendUint32(bmp, 54)
	bmp = le.AppendUint32(bmp, 0)
	bmp = le.AppendUint32(bmp, 54)
	bmp = le.AppendUint32(bmp, 40)
	bmp = le.AppendUint32(bmp, 100000) // width
	bmp = le.AppendUint32(bmp, 100000) // height
	bmp = le.AppendUint16(bmp, 1)
	bmp = le.AppendUint16(bmp, 24)
	bmp = append(bmp, make([]byte, 24)...)
	out = append(out, header{"bmp", bmp})

	// TIFF: one IFD of an uncompressed 8-bit gray image, one strip.
	tags := [][3]uint32{ // tag, type (3 SHORT, 4 LONG), value
		{256, 4, 100000}, {257, 4, 100000}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1},
		{273, 4, 8}, {277, 3, 1}, {278, 4, 100000}, {279, 4, 1 << 31},
	}
	tif := []byte("II*\x00")
	tif = le.AppendUint32(tif, 8)
	tif = le.AppendUint16(tif, uint16(len(tags)))
	for _, tg := range tags {
		tif = le.AppendUint16(tif, uint16(tg[0]))
		tif = le.AppendUint16(tif, uint16(tg[1]))
		tif = le.AppendUint32(tif, 1)
		if tg[1] == 3 {
			tif = le.AppendUint16(tif, uint16(tg[2]))
			tif = le.AppendUint16(tif, 0)
		} else {
			tif = le.AppendUint32(tif, tg[2])
		}
	}
	tif = le.AppendUint32(tif, 0)
	out = append(out, header{"tiff", tif})

	// WebP: RIFF with a VP8X chunk of a 16384 x 16384 canvas (the decoder
	// refuses canvases of 2^31 pixels or more itself).
	vp8x := []byte{0, 0, 0, 0, 0xff, 0x3f, 0, 0xff, 0x3f, 0}
	webp := []byte("RIFF")
	webp = le.AppendUint32(webp, uint32(4+8+len(vp8x)))
	webp = append(webp, "WEBPVP8X"...)
	webp = le.AppendUint32(webp, uint32(len(vp8x)))
	webp = append(webp, vp8x...)
	out = append(out, header{"webp", webp})
	return out
}

// TestDecodeFileRefusesHugeHeaders: for every format load accepts, a file
// whose header claims more pixels than max_pixels (the default, 100
// million) is refused from its header, naming the file, before pixel memory
// is allocated.
func TestDecodeFileRefusesHugeHeaders(t *testing.T) {
	maxPixels := int(LoadParam.Fields[fieldIndex(t, "max_pixels")].Default.(int))
	for _, h := range hugeHeaders(t) {
		t.Run(h.format, func(t *testing.T) {
			path := writeFile(t, filepath.Join(t.TempDir(), "huge."+h.format), h.data)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := DecodeFile(path, maxPixels)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.HasPrefix(err.Error(), path+": ") || !strings.Contains(err.Error(), "more than max_pixels") {
				t.Fatalf("error %v, want %s: ... more than max_pixels", err, path)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("allocated %d bytes before refusing the file", n)
			}
		})
	}
}

func fieldIndex(t *testing.T, name string) int {
	t.Helper()
	for i, p := range LoadParam.Fields {
		if p.Name == name {
			return i
		}
	}
	t.Fatalf("load has no parameter %q", name)
	return -1
}
