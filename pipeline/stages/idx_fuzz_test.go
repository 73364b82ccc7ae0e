package stages

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzIdxRecords is how many records the idx fuzzer reads at most: enough to
// reach the end of any small input, few enough that a header claiming
// billions of records does not keep one input busy.
const fuzzIdxRecords = 64

// FuzzIDX feeds arbitrary image and label files to an idx load stage
// (labels: idx), as a pipeline loading MNIST reads them: the headers when
// the stage is opened, then records and labels in turn, each decoded to an
// image. Seeds (testdata/fuzz/FuzzIDX) are the real MNIST headers with a few
// records, gzipped and not, and hand-made small files. It must never panic
// or hang; errors name the file (and the stage); every record decodes to an
// image of the header's size, at most max_pixels.
//
//	go test -run '^$' -fuzz '^FuzzIDX$' -parallel 1 ./pipeline/stages
func FuzzIDX(f *testing.F) {
	f.Add(idxBytes(3, 2, 2), idxLabelBytes(1, 2, 3))
	f.Add(idxBytes(2, 1, 3), []byte{})
	f.Fuzz(func(t *testing.T, images, labels []byte) {
		d := t.TempDir()
		raw := map[string]any{"idx": "img.idx", "max_pixels": fuzzMaxPixels}
		if len(labels) > 0 {
			raw["idx_labels"], raw["labels"] = "lab.idx", "idx"
		}
		for name, data := range map[string][]byte{"img.idx": images, "lab.idx": labels} {
			if err := os.WriteFile(filepath.Join(d, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		within(t, "the idx load", func() {
			params := checked(t, LoadParam, raw)
			l, err := NewLoader(params, d)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "load: idx file "+d) {
					t.Errorf("error does not name the file: %v", err)
				}
				return
			}
			out := l.Output()
			n := 0
			err = l.Enumerate(context.Background(), func(e Entry) error {
				img, err := l.Decode(e)
				if err != nil {
					t.Errorf("record %s: %v", e.Name, err)
					return err
				}
				if b := img.Bounds(); b.Dx() != out.Width || b.Dy() != out.Height || b.Dx()*b.Dy() > fuzzMaxPixels {
					t.Errorf("record %s is %v, the header says %dx%d", e.Name, b, out.Width, out.Height)
				}
				if n++; n == fuzzIdxRecords {
					return errStop
				}
				return nil
			})
			if err != nil && err != errStop && !strings.HasPrefix(err.Error(), "load: idx file "+d) {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	})
}

var errStop = &stopError{}

type stopError struct{}

func (*stopError) Error() string { return "stop" }
