package stages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/genpipe/genpipe/pipeline/item"
)

var testProv = ProvenanceInfo{Name: "digits", File: "p.yaml", SHA256: "abc123", Seed: 7, Host: "pipeline test"}

func newSaver(t *testing.T, dir string, raw map[string]any, overwrite bool) *Saver {
	t.Helper()
	raw["dir"] = dir
	s, err := NewSaver(checked(t, SaveParam, raw), "/unused", SaveOptions{Overwrite: overwrite, Stage: "out", Provenance: testProv})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testItem(i int) item.Item {
	return item.Item{
		Index: i, Name: fmt.Sprintf("img%02d", i), Source: fmt.Sprintf("in/img%02d.png", i), Label: i % 3,
		Image: pattern(4, 3, i*10),
		Prov: []item.Step{
			{Stage: "in", Kind: "load"},
			{Stage: "edges", Kind: "translate", Plugin: "sketch", Version: "1.2.0", SHA256: "feed", Preset: "default",
				Weights: "w.safetensors", Seed: 99, Params: map[string]any{"threshold": 0.5}},
		},
	}
}

func readImage(t *testing.T, file string) image.Image {
	t.Helper()
	img, err := DecodeFile(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// noTemps fails when a temporary file was left anywhere under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(filepath.Base(p), ".") && p != dir {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestSaveWritesImagesAndSidecar(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{"name": "{label}/{index:03}-{name}-{stage}"}, false)
	it := testItem(4)
	if err := s.Write(it); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "1/004-img04-edges.png")
	if p, _ := s.Path(it); p != file {
		t.Errorf("Path = %q, expected %q", p, file)
	}
	if !pixelsEqual(readImage(t, file), it.Image) {
		t.Error("saved pixels differ")
	}
	js, err := os.ReadFile(filepath.Join(dir, "1/004-img04-edges.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec ProvenanceRecord
	if err := json.Unmarshal(js, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Pipeline != testProv || rec.File != "1/004-img04-edges.png" || rec.Index != 4 || rec.Name != "img04" ||
		rec.Source != "in/img04.png" || rec.Label == nil || *rec.Label != 1 || rec.SaveStage != "out" {
		t.Errorf("record %+v", rec)
	}
	if len(rec.Stages) != 2 || rec.Stages[1].Plugin != "sketch" || rec.Stages[1].Version != "1.2.0" || rec.Stages[1].SHA256 != "feed" ||
		rec.Stages[1].Weights != "w.safetensors" || rec.Stages[1].Seed != 99 || rec.Stages[1].Params["threshold"] != 0.5 {
		t.Errorf("stages %+v", rec.Stages)
	}
	noTemps(t, dir)
	st, _ := os.Stat(file)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, expected 0644", st.Mode().Perm())
	}
}

func TestSaveFormats(t *testing.T) {
	for _, format := range []string{"png", "jpeg", "gif"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			s := newSaver(t, dir, map[string]any{"format": format, "provenance": "none", "quality": 100}, false)
			it := testItem(1)
			it.Image = grayPattern(16, 8)
			if err := s.Write(it); err != nil {
				t.Fatal(err)
			}
			ext := map[string]string{"png": ".png", "jpeg": ".jpg", "gif": ".gif"}[format]
			img := readImage(t, filepath.Join(dir, "img01"+ext))
			if img.Bounds().Size() != image.Pt(16, 8) {
				t.Fatalf("size %v", img.Bounds())
			}
			if format != "jpeg" && !pixelsEqual(img, it.Image) { // gray is exact in png and in a gray-palette gif
				t.Error("pixels differ")
			}
			if _, err := os.Stat(filepath.Join(dir, "img01.json")); !os.IsNotExist(err) {
				t.Error("provenance: none wrote a sidecar")
			}
		})
	}
}

func TestSavePNGProvenanceChunk(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{"provenance": "png"}, false)
	it := testItem(2)
	it.Source = "in/café ☕ 𝄞.png"
	if err := s.Write(it); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "img02.png"))
	if err != nil {
		t.Fatal(err)
	}
	// The standard decoder checks every chunk's CRC, the inserted one too.
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !pixelsEqual(img, it.Image) {
		t.Error("pixels differ")
	}
	texts, err := ReadPNGText(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var rec ProvenanceRecord
	if err := json.Unmarshal([]byte(texts[ProvenanceKeyword]), &rec); err != nil {
		t.Fatalf("chunk %q: %v", texts[ProvenanceKeyword], err)
	}
	if rec.Source != it.Source || rec.Pipeline.SHA256 != "abc123" || len(rec.Stages) != 2 {
		t.Errorf("record %+v", rec)
	}
	if _, err := os.Stat(filepath.Join(dir, "img02.json")); !os.IsNotExist(err) {
		t.Error("provenance: png also wrote a sidecar")
	}
	// A corrupted chunk is detected.
	i := bytes.Index(data, []byte("tEXt"))
	data[i+10] ^= 1
	if _, err := ReadPNGText(bytes.NewReader(data)); err == nil || !strings.Contains(err.Error(), "CRC") {
		t.Errorf("corrupt chunk: %v", err)
	}
}

func TestSaveAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{}, false)
	// A folder where the file should go makes the rename fail: the error
	// names the item and nothing partial is left.
	if err := os.MkdirAll(filepath.Join(dir, "img03.png", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := s.Write(testItem(3))
	if err == nil || !strings.Contains(err.Error(), `item 3 "img03"`) {
		t.Fatalf("error %v", err)
	}
	noTemps(t, dir)
	// An earlier run's file is kept without overwrite, replaced whole with.
	writeFile(t, filepath.Join(dir, "img05.png"), []byte("old contents"))
	if err := newSaver(t, dir, map[string]any{}, false).Write(testItem(5)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "img05.png")); string(b) != "old contents" {
		t.Error("an earlier run's file was overwritten without overwrite")
	}
	if err := newSaver(t, dir, map[string]any{}, true).Write(testItem(5)); err != nil {
		t.Fatal(err)
	}
	if !pixelsEqual(readImage(t, filepath.Join(dir, "img05.png")), testItem(5).Image) {
		t.Error("the old file was not replaced")
	}
	noTemps(t, dir)
}

// TestSaveSameIndexCollision is issue 9's bug: the items of a multi-input
// save share an index, and the second one to a name was reported as
// already done (no overwrite) or silently replaced the first (overwrite).
// Each must be an error, and a run's own file never makes an item done.
func TestSaveSameIndexCollision(t *testing.T) {
	for _, overwrite := range []bool{false, true} {
		dir := t.TempDir()
		s := newSaver(t, dir, map[string]any{}, overwrite)
		// A second save stage on the folder (made, as a job does, before
		// any item is written).
		s2 := newSaver(t, dir, map[string]any{}, overwrite)
		a := testItem(1)
		g := testItem(1)
		g.Image = pattern(4, 3, 200)
		g.Prov = []item.Step{{Stage: "g", Kind: "preprocess"}}
		if err := s.Write(a); err != nil {
			t.Fatal(err)
		}
		if s.Done(g) {
			t.Errorf("overwrite %v: a file written by this run makes an item done", overwrite)
		}
		err := s.Write(g)
		if err == nil || !strings.Contains(err.Error(), "already written by this run") {
			t.Errorf("overwrite %v: second item to img01.png: %v", overwrite, err)
		}
		if !pixelsEqual(readImage(t, filepath.Join(dir, "img01.png")), a.Image) {
			t.Errorf("overwrite %v: the first item's file was replaced", overwrite)
		}
		// Two save stages on one folder collide the same way.
		if err := s2.Write(a); err == nil || !strings.Contains(err.Error(), "already written by this run") {
			t.Errorf("overwrite %v: a second save stage to the same file: %v", overwrite, err)
		}
		noTemps(t, dir)
	}
}

func TestSaveDoneAndResume(t *testing.T) {
	dir := t.TempDir()
	raw := func() map[string]any { return map[string]any{"grid": map[string]any{"columns": 2, "padding": 0}} }
	first := newSaver(t, dir, raw(), false)
	for i := 0; i < 2; i++ {
		if first.Done(testItem(i)) {
			t.Fatalf("item %d done before it was written", i)
		}
		if err := first.Write(testItem(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The first run is interrupted: no Close, so no grid.
	second := newSaver(t, dir, raw(), false)
	var wrote []int
	for i := 0; i < 4; i++ {
		if second.Done(testItem(i)) {
			continue
		}
		wrote = append(wrote, i)
		if err := second.Write(testItem(i)); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(wrote, []int{2, 3}) {
		t.Fatalf("resumed run wrote %v, expected [2 3]", wrote)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	grid := readImage(t, filepath.Join(dir, "grid.png"))
	if grid.Bounds().Size() != image.Pt(8, 6) {
		t.Fatalf("grid %v, expected 8x6 (2x2 cells of 4x3)", grid.Bounds())
	}
	for i := 0; i < 4; i++ {
		cell := grid.(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(image.Rect(i%2*4, i/2*3, i%2*4+4, i/2*3+3))
		if !pixelsEqual(cell, testItem(i).Image) {
			t.Errorf("grid cell %d is not item %d", i, i)
		}
	}
	if o := newSaver(t, dir, raw(), true); o.Done(testItem(0)) {
		t.Error("Done with overwrite")
	}
	os.Remove(filepath.Join(dir, "img01.json"))
	if newSaver(t, dir, raw(), false).Done(testItem(1)) {
		t.Error("Done without the sidecar")
	}
}

func TestSaveGrid(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{"images": false, "grid": map[string]any{"columns": 2, "padding": 1, "background": "#00ff00", "file": "sheets/g.png"}}, false)
	sizes := []image.Point{{4, 3}, {2, 3}, {4, 1}, {4, 3}, {4, 3}}
	for i := len(sizes) - 1; i >= 0; i-- { // arrival order must not matter
		it := testItem(i)
		it.Image = pattern(sizes[i].X, sizes[i].Y, i*10)
		if s.Done(it) {
			t.Fatal("Done with images: false")
		}
		if err := s.Write(it); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "sheets" {
		t.Errorf("images: false wrote %v", ents)
	}
	g := readImage(t, filepath.Join(dir, "sheets/g.png"))
	// 2 columns, 3 rows of 4x3 cells, 1 pixel between them.
	if g.Bounds().Size() != image.Pt(2*4+1, 3*3+2) {
		t.Fatalf("grid %v", g.Bounds())
	}
	green := color.NRGBA{0, 255, 0, 255}
	for _, p := range []image.Point{{4, 0}, {0, 3}, {8, 10}, {5, 0}, {4, 4}} { // padding, the narrow cell's margin, the empty last cell
		if c := nrgbaAt(g, p.X, p.Y); c != green {
			t.Errorf("pixel %v is %v, expected the background", p, c)
		}
	}
	if nrgbaAt(g, 0, 0) != pattern(4, 3, 0).NRGBAAt(0, 0) || nrgbaAt(g, 6, 0) != pattern(2, 3, 10).NRGBAAt(0, 0) ||
		nrgbaAt(g, 0, 5) != pattern(4, 1, 20).NRGBAAt(0, 0) || nrgbaAt(g, 0, 8) != pattern(4, 3, 40).NRGBAAt(0, 0) || nrgbaAt(g, 5, 4) != pattern(4, 3, 30).NRGBAAt(0, 0) {
		t.Error("cells are not the items in index order, centred")
	}
}

func TestSaveAnimationAndSequences(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{"animation": map[string]any{"delay": 25, "loop": -1}}, false)
	for i := 0; i < 3; i++ {
		it := testItem(i)
		it.Image = grayPattern(6, 4)
		if err := s.Write(it); err != nil {
			t.Fatal(err)
		}
	}
	seq := testItem(3)
	seq.Frames = []image.Image{uniformGray(6, 4, 10), uniformGray(6, 4, 20), uniformGray(6, 4, 30), uniformGray(6, 4, 40)}
	seq.Image = seq.Frames[3]
	if err := s.Write(seq); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	readGIF := func(name string) *gif.GIF {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		g, err := gif.DecodeAll(f)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	// A sequence item is an animated GIF whatever the format.
	sg := readGIF("img03.gif")
	if len(sg.Image) != 4 || sg.Delay[0] != 25 || sg.LoopCount != -1 {
		t.Errorf("sequence: %d frames, delay %d, loop %d", len(sg.Image), sg.Delay[0], sg.LoopCount)
	}
	if color.GrayModel.Convert(sg.Image[2].At(1, 1)).(color.Gray).Y != 30 {
		t.Error("sequence frame 2 pixels")
	}
	if _, err := os.Stat(filepath.Join(dir, "img03.json")); err != nil {
		t.Error("sequence has no sidecar")
	}
	a := readGIF("animation.gif")
	if len(a.Image) != 4 || a.Delay[3] != 25 {
		t.Fatalf("animation: %d frames, expected 4", len(a.Image))
	}
	if color.GrayModel.Convert(a.Image[3].At(0, 0)).(color.Gray).Y != 40 || !pixelsEqual(a.Image[0], grayPattern(6, 4)) {
		t.Error("animation frames are not the items (last frame of a sequence)")
	}
}

func TestSaveNames(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{"name": "{name}"}, false)
	tests := []struct {
		name string
		want string
	}{
		{"../escape", "leaves the output folder"},
		{"a/../../b", "leaves the output folder"},
		{"", "names no file"},
	}
	for _, tc := range tests {
		it := testItem(6)
		it.Name = tc.name
		err := s.Write(it)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "item 6") {
			t.Errorf("name %q: error %v, expected the item and %q", tc.name, err, tc.want)
		}
		if s.Done(it) {
			t.Errorf("name %q: Done", tc.name)
		}
	}
	a, b := testItem(1), testItem(2)
	b.Name = a.Name
	if err := s.Write(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(b); err == nil || !strings.Contains(err.Error(), "img01.png was already written by this run") {
		t.Errorf("duplicate name: %v", err)
	}
	g := newSaver(t, t.TempDir(), map[string]any{"grid": map[string]any{}}, false)
	c := testItem(0)
	c.Name = "grid"
	if err := g.Write(c); err == nil || !strings.Contains(err.Error(), "grid") {
		t.Errorf("item named like the grid: %v", err)
	}
	if err := s.Write(item.Item{Index: 8, Name: "lat"}); err == nil || !strings.Contains(err.Error(), "no image") {
		t.Errorf("latent: %v", err)
	}
}

func TestCheckSave(t *testing.T) {
	tests := []struct {
		name string
		raw  map[string]any
		want map[string]string // path -> part of the message
	}{
		{"defaults", map[string]any{}, nil},
		{"all fields", map[string]any{"name": "{stage}/{label:02}/{index:05}_{name}"}, nil},
		{"unknown field", map[string]any{"name": "{nmae}"}, map[string]string{"name": `did you mean "name"?`}},
		{"unclosed", map[string]any{"name": "{name"}, map[string]string{"name": "unclosed"}},
		{"stray brace", map[string]any{"name": "a}b"}, map[string]string{"name": "unmatched"}},
		{"bad width", map[string]any{"name": "{index:5}"}, map[string]string{"name": "zero-padded"}},
		{"width on name", map[string]any{"name": "{name:05}"}, map[string]string{"name": "only {index} and {label}"}},
		{"escapes", map[string]any{"name": "../{name}"}, map[string]string{"name": "leaves the output folder"}},
		{"absolute", map[string]any{"name": "/tmp/{name}"}, map[string]string{"name": "absolute"}},
		{"png provenance in jpeg", map[string]any{"format": "jpeg", "provenance": "png"}, map[string]string{"provenance": "needs format: png"}},
		{"grid file", map[string]any{"grid": map[string]any{"file": "grid.webp"}}, map[string]string{"grid.file": ".png, .jpg or .gif"}},
		{"grid escapes", map[string]any{"grid": map[string]any{"file": "../grid.png"}}, map[string]string{"grid.file": "leaves"}},
		{"grid colour", map[string]any{"grid": map[string]any{"background": "white"}}, map[string]string{"grid.background": "#rrggbb"}},
		{"animation file", map[string]any{"animation": map[string]any{"file": "a.png"}}, map[string]string{"animation.file": ".gif"}},
		{"nothing", map[string]any{"images": false}, map[string]string{"images": "writes nothing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.raw["dir"] = "out"
			errs := CheckSave(checked(t, SaveParam, tc.raw))
			got := map[string]string{}
			for _, e := range errs {
				got[e.Path] = e.Error()
			}
			if len(got) != len(tc.want) {
				t.Fatalf("errors %v, expected %v", errs, tc.want)
			}
			for p, w := range tc.want {
				if !strings.Contains(got[p], w) {
					t.Errorf("%s: %q does not contain %q", p, got[p], w)
				}
			}
		})
	}
}

func TestSaveConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := newSaver(t, dir, map[string]any{"name": "{index:03}", "grid": map[string]any{"columns": 10, "padding": 0}, "animation": map[string]any{}}, false)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				it := testItem(i)
				it.Image = uniformGray(2, 2, uint8(i*5))
				if !s.Done(it) {
					errs <- s.Write(it)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	g := readImage(t, filepath.Join(dir, "grid.png"))
	for i := 0; i < n; i++ {
		if c := nrgbaAt(g, i%10*2, i/10*2); c.R != uint8(i*5) {
			t.Fatalf("grid cell %d has %d, expected %d", i, c.R, i*5)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	sort.Strings(files)
	if len(files) != n+1 {
		t.Errorf("%d png files, expected %d and the grid", len(files), n)
	}
	noTemps(t, dir)
}

func TestTemplateRender(t *testing.T) {
	tm, err := parseTemplate("{label}/{index:04}_{name}.{stage}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tm.render(tmplValues{name: "a/b", index: 7, label: -1, stage: "gen"})
	if err != nil || got != "none/0007_a/b.gen" {
		t.Errorf("render = %q, %v", got, err)
	}
}

// Shards of one job share the output folder: each writes its own grid and
// animation file instead of overwriting the others'.
func TestSaveShardNamesGrid(t *testing.T) {
	dir := t.TempDir()
	for shard := 0; shard < 2; shard++ {
		raw := map[string]any{"dir": dir, "grid": map[string]any{"columns": 2}, "animation": map[string]any{}}
		s, err := NewSaver(checked(t, SaveParam, raw), "/unused", SaveOptions{Stage: "out", Shard: fmt.Sprintf("%d-of-2", shard)})
		if err != nil {
			t.Fatal(err)
		}
		for i := shard; i < 6; i += 2 {
			if err := s.Write(testItem(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"grid.shard-0-of-2.png", "grid.shard-1-of-2.png", "animation.shard-0-of-2.gif", "animation.shard-1-of-2.gif"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "grid.png")); err == nil {
		t.Error("a shard wrote the unsharded grid name")
	}
}

// TestSaveFilesCounts checks that a saver counts what it writes: one per
// item image (with its sidecar) and one for the grid, and on a rerun that
// changes nothing, no output written and the grid counted unchanged.
func TestSaveFilesCounts(t *testing.T) {
	dir := t.TempDir()
	raw := map[string]any{"grid": map[string]any{"columns": 2}}
	run := func(overwrite bool) (written, unchanged int) {
		s := newSaver(t, dir, raw, overwrite)
		for i := range 3 {
			it := testItem(i)
			if s.Done(it) {
				continue
			}
			if err := s.Write(it); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return s.Files()
	}
	if w, u := run(false); w != 4 || u != 0 {
		t.Errorf("first run: wrote %d, unchanged %d; want 3 images and the grid, 0", w, u)
	}
	grid := filepath.Join(dir, "grid.png")
	before, err := os.Stat(grid)
	if err != nil {
		t.Fatal(err)
	}
	if w, u := run(false); w != 0 || u != 1 {
		t.Errorf("rerun: wrote %d, unchanged %d; want 0 and the grid", w, u)
	}
	if after, err := os.Stat(grid); err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("the rerun rewrote the unchanged grid (%v)", err)
	}
	// A missing sidecar redoes its item: one output written.
	if err := os.Remove(filepath.Join(dir, "img01.json")); err != nil {
		t.Fatal(err)
	}
	if w, u := run(false); w != 1 || u != 1 {
		t.Errorf("after removing a sidecar: wrote %d, unchanged %d; want 1 (the item) and 1 (the grid)", w, u)
	}
	if w, u := run(true); w != 4 || u != 0 {
		t.Errorf("--overwrite: wrote %d, unchanged %d; want 4, 0", w, u)
	}
}

// TestSaveGridInputOrder: a grid of several inputs shows each index's items
// in the order of the save's inputs, whichever arrives first (the items of
// one index share a name, so arrival order used to decide).
func TestSaveGridInputOrder(t *testing.T) {
	for _, reversed := range []bool{false, true} {
		dir := t.TempDir()
		raw := map[string]any{"dir": dir, "images": false, "grid": map[string]any{"columns": 2, "padding": 0}}
		s, err := NewSaver(checked(t, SaveParam, raw), "/unused", SaveOptions{Stage: "out", Provenance: testProv, Inputs: []string{"a", "b"}})
		if err != nil {
			t.Fatal(err)
		}
		order := []string{"a", "b"}
		if reversed {
			order = []string{"b", "a"}
		}
		for _, stage := range order {
			it := testItem(0)
			it.Prov = []item.Step{{Stage: stage, Kind: "translate"}}
			shade := 10
			if stage == "b" {
				shade = 200
			}
			it.Image = pattern(4, 3, shade)
			if err := s.Write(it); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		g := readImage(t, filepath.Join(dir, "grid.png"))
		if nrgbaAt(g, 0, 0) != pattern(4, 3, 10).NRGBAAt(0, 0) || nrgbaAt(g, 4, 0) != pattern(4, 3, 200).NRGBAAt(0, 0) {
			t.Errorf("arrival %v: the cells are not in the inputs' order a, b", order)
		}
	}
}
