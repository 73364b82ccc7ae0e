package digits

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ReadMNIST reads one split of MNIST from dir, which holds the gzipped idx
// files (examples/data/mnist in this repository): split "train" (60,000
// digits) or "t10k" (10,000). Images are n x 1 x 28 x 28 float32 in [0,1]
// (byte/255), labels 0-9.
func ReadMNIST(dir, split string) (images []float32, labels []int, err error) {
	if split != "train" && split != "t10k" {
		return nil, nil, fmt.Errorf("digits: unknown MNIST split %q (want train or t10k)", split)
	}
	ipath := filepath.Join(dir, split+"-images-idx3-ubyte.gz")
	lpath := filepath.Join(dir, split+"-labels-idx1-ubyte.gz")
	raw, n, err := readIdx(ipath, 0x803, Size, Size)
	if err != nil {
		return nil, nil, err
	}
	lraw, ln, err := readIdx(lpath, 0x801)
	if err != nil {
		return nil, nil, err
	}
	if ln != n {
		return nil, nil, fmt.Errorf("digits: %s has %d labels for %d images in %s", lpath, ln, n, ipath)
	}
	images = make([]float32, len(raw))
	for i, v := range raw {
		images[i] = float32(v) / 255
	}
	labels = make([]int, n)
	for i, v := range lraw {
		if v >= Classes {
			return nil, nil, fmt.Errorf("digits: %s: label %d of item %d is not a digit", lpath, v, i)
		}
		labels[i] = int(v)
	}
	return images, labels, nil
}

// readIdx reads a gzipped idx file of unsigned bytes with the given magic
// and inner dimensions, returning the data and the item count.
func readIdx(path string, magic uint32, inner ...uint32) ([]byte, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("digits: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, 0, fmt.Errorf("digits: %s: %w", path, err)
	}
	hdr := make([]uint32, 2+len(inner))
	if err := binary.Read(zr, binary.BigEndian, hdr); err != nil {
		return nil, 0, fmt.Errorf("digits: %s: header: %w", path, err)
	}
	size := 1
	for i, d := range inner {
		if hdr[2+i] != d {
			return nil, 0, fmt.Errorf("digits: %s: header %x, want magic %x and item shape %v", path, hdr, magic, inner)
		}
		size *= int(d)
	}
	if hdr[0] != magic {
		return nil, 0, fmt.Errorf("digits: %s: magic %x, want %x", path, hdr[0], magic)
	}
	n := int(hdr[1])
	// The count is the header's word: memory grows with the data actually
	// there (up to what the count promises), so a header claiming 4 billion
	// items fails as truncated instead of allocating terabytes up front.
	want := int64(n) * int64(size)
	buf := bytes.NewBuffer(make([]byte, 0, min(want, 64<<20)))
	if _, err := buf.ReadFrom(io.LimitReader(zr, want)); err != nil {
		return nil, 0, fmt.Errorf("digits: %s: %d items of %d bytes: %w", path, n, size, err)
	}
	if int64(buf.Len()) != want {
		return nil, 0, fmt.Errorf("digits: %s: %d items of %d bytes: %w", path, n, size, io.ErrUnexpectedEOF)
	}
	return buf.Bytes(), n, nil
}
