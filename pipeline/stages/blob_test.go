package stages

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/internal/s3test"
	"github.com/genpipe/genpipe/pipeline/blobstore"
)

// blobFixture writes the same files into a folder and under a prefix of
// a fake S3 server: n small PNGs in three class folders, a stem used
// twice, hidden files and a file that is no image.
func blobFixture(t *testing.T, srv *s3test.Server, bucket, prefix string, n int) (dir string) {
	t.Helper()
	dir = t.TempDir()
	put := func(rel string, data []byte) {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(rel)), data)
		srv.Put(t, bucket, prefix+"/"+rel, data)
	}
	for i := 0; i < n; i++ {
		put(fmt.Sprintf("cls%d/img%03d.png", i%3, i), encode(t, pattern(4, 3, i), "png"))
	}
	put("cls0/dup.png", encode(t, pattern(2, 2, 1), "png"))
	put("cls0/dup.jpg", encode(t, pattern(2, 2, 2), "jpeg"))
	put("cls1/.hidden.png", encode(t, pattern(2, 2, 3), "png"))
	put(".cache/x.png", encode(t, pattern(2, 2, 4), "png"))
	put("notes.txt", []byte("not an image"))
	return dir
}

func entries(t *testing.T, l *Loader) []Entry {
	t.Helper()
	var out []Entry
	if err := l.Enumerate(context.Background(), func(e Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func storeKeys(t *testing.T, url string) []string {
	t.Helper()
	loc, err := blobstore.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	st, err := blobstore.Open(context.Background(), loc)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := st.List(context.Background(), true, func(rel string, _ int64) error { keys = append(keys, rel); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestBlobLoadSave loads a few hundred PNGs from an s3:// prefix of a real
// S3-protocol server and saves them to another: the same entries, names,
// labels and order as from a folder of the same files, the same output
// names as on disk, each object once, a manifest, and a rerun that skips
// everything and rewrites nothing.
func TestBlobLoadSave(t *testing.T) {
	srv := s3test.Start(t, "in", "out")
	const n = 300
	dir := blobFixture(t, srv, "in", "imgs", n)
	url := srv.BucketURL("in", "imgs")

	disk, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": dir, "labels": "folders"}), "/unused")
	if err != nil {
		t.Fatal(err)
	}
	blob, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": url, "labels": "folders"}), "/unused")
	if err != nil {
		t.Fatal(err)
	}
	de, be := entries(t, disk), entries(t, blob)
	if len(be) != n+2 || len(de) != len(be) {
		t.Fatalf("%d entries from s3, %d from the folder, want %d", len(be), len(de), n+2)
	}
	for i := range de {
		if de[i].Name != be[i].Name || de[i].Label != be[i].Label || be[i].Index != i {
			t.Fatalf("entry %d: folder %s (label %d), s3 %s (label %d, index %d)", i, de[i].Name, de[i].Label, be[i].Name, be[i].Label, be[i].Index)
		}
	}
	if be[0].Source != "s3://in/imgs/cls0/dup.jpg" || !slices.Equal(blob.Classes(), []string{"cls0", "cls1", "cls2"}) {
		t.Errorf("first source %s, classes %v", be[0].Source, blob.Classes())
	}
	if c, err := blob.Count(context.Background()); err != nil || c != n+2 {
		t.Errorf("count %d, %v", c, err)
	}
	globbed, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": url, "glob": "cls1/*.png", "limit": 50}), "/unused")
	if err != nil {
		t.Fatal(err)
	}
	if got := entries(t, globbed); len(got) != 50 || got[0].Name != "cls1/img001" {
		t.Errorf("glob and limit: %d entries, first %v", len(got), got[0])
	}
	// Decoding reads the object.
	img, err := blob.Decode(be[5])
	if err != nil || !pixelsEqual(img, readImage(t, de[5].Source)) {
		t.Fatalf("decode %s: %v", be[5].Source, err)
	}

	save := func(dst string, l *Loader, es []Entry) *Saver {
		t.Helper()
		s, err := NewSaver(checked(t, SaveParam, map[string]any{"dir": dst, "manifest": "jsonl"}), "/unused", SaveOptions{Stage: "out", Provenance: testProv})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			it, err := l.Item(e)
			if err != nil {
				t.Fatal(err)
			}
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
		return s
	}
	outDir := t.TempDir()
	save(outDir, disk, de)
	var want []string
	filepath.WalkDir(outDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(outDir, p)
			want = append(want, filepath.ToSlash(rel))
		}
		return nil
	})
	out := srv.BucketURL("out", "run")
	s := save(out, blob, be)
	if w, u := s.Files(); w != n+2 || u != 0 {
		t.Errorf("first run: %d written, %d unchanged", w, u)
	}
	got := storeKeys(t, out)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("objects %d, files on disk %d:\n%v\n%v", len(got), len(want), got[:min(8, len(got))], want[:min(8, len(want))])
	}
	manifest := func() []ManifestEntry {
		t.Helper()
		loc, _ := blobstore.Parse(out)
		st, _ := blobstore.Open(context.Background(), loc)
		data, err := st.ReadAll(context.Background(), "manifest.jsonl")
		if err != nil {
			t.Fatal(err)
		}
		return parseJSONL(data)
	}
	if m := manifest(); len(m) != n+2 || m[0].Source != "s3://in/imgs/cls0/dup.jpg" || m[0].Name != "cls0/dup.png" {
		t.Errorf("manifest: %d entries, first %+v", len(m), m[0])
	}
	// The provenance names the object read.
	loc, _ := blobstore.Parse(out)
	st, _ := blobstore.Open(context.Background(), loc)
	js, err := st.ReadAll(context.Background(), "cls2/img002.json")
	if err != nil || !bytes.Contains(js, []byte(`"source": "s3://in/imgs/cls2/img002.png"`)) {
		t.Errorf("sidecar: %v\n%s", err, js)
	}
	meta, _, _ := st.Stat(context.Background(), "cls2/img002.png")

	// A rerun skips every item and writes no image again.
	s = save(out, blob, be)
	if w, _ := s.Files(); w != 0 {
		t.Errorf("rerun wrote %d outputs", w)
	}
	if meta2, _, _ := st.Stat(context.Background(), "cls2/img002.png"); meta2[runKey] != meta[runKey] || meta[runKey] == "" {
		t.Errorf("rerun rewrote an image: run %q, then %q", meta[runKey], meta2[runKey])
	}
	if m := manifest(); len(m) != n+2 {
		t.Errorf("manifest after the rerun: %d entries", len(m))
	}
	if keys := storeKeys(t, out); len(keys) != len(got) {
		t.Errorf("%d objects after the rerun, %d before", len(keys), len(got))
	}

	// Two items of one run with one name: an error, the first one kept.
	s2, err := NewSaver(checked(t, SaveParam, map[string]any{"dir": out, "name": "same"}), "/unused", SaveOptions{Overwrite: true, Stage: "out"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(testItem(1)); err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(testItem(2)); err == nil || !strings.Contains(err.Error(), "file name same.png was already written by this run") {
		t.Errorf("collision: %v", err)
	}
	data, _ := st.ReadAll(context.Background(), "same.png")
	if got, err := png.Decode(bytes.NewReader(data)); err != nil || !pixelsEqual(got, testItem(1).Image) {
		t.Errorf("the collision replaced the first image: %v", err)
	}
}

// TestBlobManifestAfterKill: a run killed before its journal was flushed
// loses nothing: the rerun skips the saved items and lists them.
func TestBlobManifestAfterKill(t *testing.T) {
	out := "mem://manifest-kill/out"
	open := func() *Saver {
		s, err := NewSaver(checked(t, SaveParam, map[string]any{"dir": out, "manifest": "csv"}), "/unused", SaveOptions{Stage: "out"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	for i := 0; i < 10; i++ {
		if err := s.Write(testItem(i)); err != nil {
			t.Fatal(err)
		}
	}
	// No Close: the run was killed.
	s = open()
	for i := 0; i < 12; i++ {
		if it := testItem(i); !s.Done(it) {
			if i < 10 {
				t.Errorf("item %d not done", i)
			}
			if err := s.Write(it); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	loc, _ := blobstore.Parse(out)
	st, _ := blobstore.Open(context.Background(), loc)
	data, err := st.ReadAll(context.Background(), "manifest.csv")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(data), "\n"); lines != 13 || !strings.Contains(string(data), "img09.png,9,in/img09.png,0") {
		t.Errorf("manifest with %d lines:\n%s", lines, data)
	}
	keys := storeKeys(t, out)
	for _, k := range keys {
		if strings.HasPrefix(k, ".") {
			t.Errorf("journal object left: %s", k)
		}
	}
}

// TestBlobListingStreams enumerates a prefix of 5,000 objects: the first
// entry comes after the first page of the listing, not after all of it.
func TestBlobListingStreams(t *testing.T) {
	srv := s3test.Start(t, "many")
	const n = 5000
	for i := 0; i < n; i++ {
		srv.Put(t, "many", fmt.Sprintf("p/%05d.png", i), []byte("x"))
	}
	l, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": srv.BucketURL("many", "p")}), "/unused")
	if err != nil {
		t.Fatal(err)
	}
	before := srv.Lists.Load()
	var atFirst int64
	count := 0
	err = l.Enumerate(context.Background(), func(e Entry) error {
		if count == 0 {
			atFirst = srv.Lists.Load() - before
		}
		if want := fmt.Sprintf("%05d", count); e.Name != want {
			return fmt.Errorf("entry %d is %s", count, e.Name)
		}
		count++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pages := srv.Lists.Load() - before
	if count != n || atFirst != 1 || pages < 5 {
		t.Errorf("%d entries; %d listing requests before the first, %d in all (want 1, and at least 5)", count, atFirst, pages)
	}
}

// TestBlobErrors: a missing bucket and refused credentials fail when the
// stage opens, naming the URL and bucket; bad URLs fail validation at dir.
func TestBlobErrors(t *testing.T) {
	srv := s3test.Start(t, "b")
	url := srv.BucketURL("nobucket", "x")
	if _, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": url}), "/unused"); err == nil || !strings.Contains(err.Error(), `load: dir: blob s3://nobucket/x/: bucket "nobucket" does not exist`) {
		t.Errorf("load from a missing bucket: %v", err)
	}
	if _, err := NewSaver(checked(t, SaveParam, map[string]any{"dir": url}), "/unused", SaveOptions{}); err == nil || !strings.Contains(err.Error(), `save: dir: blob s3://nobucket/x/: bucket "nobucket" does not exist`) {
		t.Errorf("save to a missing bucket: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "intruder")
	if _, err := NewSaver(checked(t, SaveParam, map[string]any{"dir": srv.BucketURL("b", "x") + "&region=us-west-2"}), "/unused", SaveOptions{}); err == nil || !strings.Contains(err.Error(), `bucket "b": access refused`) {
		t.Errorf("refused credentials: %v", err)
	}
	for _, c := range []struct {
		params map[string]any
		path   string
		want   string
	}{
		{map[string]any{"dir": "s4://b/x"}, "dir", `unknown URL scheme "s4"`},
		{map[string]any{"dir": "s3://b/x?endpont=http://h"}, "dir", `unknown query parameter "endpont"`},
		{map[string]any{"list": "s3://b/list.txt"}, "list", "a blob URL (s3://b/list.txt) is for dir only"},
	} {
		errs := CheckLoad(checked(t, LoadParam, c.params))
		if len(errs) != 1 || errs[0].Path != c.path || !strings.Contains(errs[0].Msg, c.want) {
			t.Errorf("%v: %v", c.params, errs)
		}
	}
	errs := CheckSave(checked(t, SaveParam, map[string]any{"dir": "s3://b/x?use_path_style=yes please"}))
	if len(errs) != 1 || errs[0].Path != "dir" || !strings.Contains(errs[0].Msg, "is not true or false") {
		t.Errorf("save: %v", errs)
	}
	// A file:// URL is its folder, read and written as one.
	dir := t.TempDir()
	writeImage(t, filepath.Join(dir, "a.png"), pattern(2, 2, 0), "png")
	l, err := NewLoader(checked(t, LoadParam, map[string]any{"dir": "file://" + filepath.ToSlash(dir)}), "/unused")
	if err != nil || len(entries(t, l)) != 1 || l.store != nil {
		t.Errorf("file URL: %v", err)
	}
}

// TestBlobGridResume: a grid saved into a bucket is complete after a
// resumed run, whose skipped items are read back from their objects, and
// left as it was when nothing changed.
func TestBlobGridResume(t *testing.T) {
	out := "mem://grid-resume/out"
	run := func(from, to int) *Saver {
		t.Helper()
		s, err := NewSaver(checked(t, SaveParam, map[string]any{"dir": out, "grid": map[string]any{"columns": 2}}), "/unused", SaveOptions{Stage: "out"})
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			if it := testItem(i); !s.Done(it) {
				if err := s.Write(it); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return s
	}
	run(0, 2)
	run(0, 4) // two items skipped, two written, the grid rewritten
	loc, _ := blobstore.Parse(out)
	st, _ := blobstore.Open(context.Background(), loc)
	data, err := st.ReadAll(context.Background(), "grid.png")
	if err != nil {
		t.Fatal(err)
	}
	g, err := png.Decode(bytes.NewReader(data))
	if err != nil || g.Bounds().Dx() != 2*4+2 || g.Bounds().Dy() != 2*3+2 {
		t.Fatalf("grid %v, %v", g.Bounds(), err)
	}
	if s := run(0, 4); func() bool { w, u := s.Files(); return w != 0 || u != 1 }() {
		w, u := s.Files()
		t.Errorf("a rerun with nothing new: %d written, %d unchanged; want the grid unchanged", w, u)
	}
}
