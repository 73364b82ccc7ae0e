package stages

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// idxFile is an open idx file (MNIST format: big-endian header, then
// unsigned bytes), gzipped or not; gzip is recognised by its magic bytes,
// not the file name.
type idxFile struct {
	path string
	f    *os.File
	r    *bufio.Reader
	z    *gzip.Reader
	// dims are the header's dimensions; dims[0] is the record count.
	dims []int
}

const idxUbyte = 0x08

// openIdx opens path and reads its header, expecting ndims dimensions of
// unsigned bytes.
func openIdx(path string, ndims int) (*idxFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("idx file %s: %w", path, unwrapPath(err))
	}
	x := &idxFile{path: path, f: f}
	if err := x.readHeader(ndims); err != nil {
		f.Close()
		return nil, err
	}
	return x, nil
}

func (x *idxFile) readHeader(ndims int) error {
	br := bufio.NewReaderSize(x.f, 64<<10)
	x.r = br
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("idx file %s: gzip: %w", x.path, err)
		}
		x.z = z
		x.r = bufio.NewReaderSize(z, 64<<10)
	}
	var magic [4]byte
	if _, err := io.ReadFull(x.r, magic[:]); err != nil {
		return fmt.Errorf("idx file %s: header: %w", x.path, eofText(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return fmt.Errorf("idx file %s: not an idx file (magic %02x%02x%02x%02x, expected 0000 then type and rank)",
			x.path, magic[0], magic[1], magic[2], magic[3])
	}
	if magic[2] != idxUbyte {
		return fmt.Errorf("idx file %s: element type 0x%02x, expected 0x08 (unsigned byte)", x.path, magic[2])
	}
	if int(magic[3]) != ndims {
		return fmt.Errorf("idx file %s: %d dimensions, expected %d", x.path, magic[3], ndims)
	}
	x.dims = make([]int, ndims)
	for i := range x.dims {
		var d [4]byte
		if _, err := io.ReadFull(x.r, d[:]); err != nil {
			return fmt.Errorf("idx file %s: header: %w", x.path, eofText(err))
		}
		x.dims[i] = int(binary.BigEndian.Uint32(d[:]))
	}
	return nil
}

// read fills p with the next record; rec is its number for the error text.
func (x *idxFile) read(p []byte, rec int) error {
	if _, err := io.ReadFull(x.r, p); err != nil {
		return fmt.Errorf("idx file %s: record %d of %d: %w", x.path, rec, x.dims[0], eofText(err))
	}
	return nil
}

func (x *idxFile) Close() error {
	if x.z != nil {
		x.z.Close()
	}
	return x.f.Close()
}

func eofText(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("file is truncated")
	}
	return err
}
