package digits

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadMNIST feeds arbitrary (ungzipped) image and label files to
// ReadMNIST, seeded with the real t10k headers and their first records. It
// must never panic or exhaust memory, errors start with "digits:", and what
// it accepts has one digit label per 28x28 image.
//
//	go test -run '^$' -fuzz '^FuzzReadMNIST$' -parallel 1 ./eval/digits
func FuzzReadMNIST(f *testing.F) {
	img := mnistPrefix(f, "t10k-images-idx3-ubyte.gz", 16+3*Pixels)
	lab := mnistPrefix(f, "t10k-labels-idx1-ubyte.gz", 8+3)
	f.Add(img, lab) // the header says 10000 items, the file has 3
	img3, lab3 := bytes.Clone(img), bytes.Clone(lab)
	binary.BigEndian.PutUint32(img3[4:], 3)
	binary.BigEndian.PutUint32(lab3[4:], 3)
	f.Add(img3, lab3)
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		d := t.TempDir()
		for name, data := range map[string][]byte{"t10k-images-idx3-ubyte.gz": images, "t10k-labels-idx1-ubyte.gz": labels} {
			var b bytes.Buffer
			z := gzip.NewWriter(&b)
			z.Write(data)
			z.Close()
			if err := os.WriteFile(filepath.Join(d, name), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		x, y, err := ReadMNIST(d, "t10k")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "digits: ") {
				t.Errorf("error without the package prefix: %v", err)
			}
			return
		}
		if len(x) != len(y)*Pixels {
			t.Fatalf("%d pixels for %d labels", len(x), len(y))
		}
		for i, l := range y {
			if l < 0 || l >= Classes {
				t.Fatalf("label %d of item %d", l, i)
			}
		}
	})
}

// mnistPrefix returns the first n bytes of an MNIST file, ungzipped.
func mnistPrefix(tb testing.TB, name string, n int) []byte {
	fh, err := os.Open(filepath.Join(mnistDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	z, err := gzip.NewReader(fh)
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(z, b); err != nil {
		tb.Fatal(err)
	}
	return b
}
