package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/internal/s3test"
)

// TestBlobRun runs pipeline run from an s3:// prefix to another on a real
// S3-protocol server: every output once, a rerun that skips them all, and
// a missing bucket named in a clear error before anything is written.
func TestBlobRun(t *testing.T) {
	srv := s3test.Start(t, "data")
	const n = 40
	for i := 0; i < n; i++ {
		img := image.NewGray(image.Rect(0, 0, 8, 8))
		for p := range img.Pix {
			img.Pix[p] = uint8(i*7 + p)
		}
		img.Set(0, 0, color.Gray{Y: 255})
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		srv.Put(t, "data", fmt.Sprintf("in/%s/%02d.png", []string{"cats", "dogs"}[i%2], i), buf.Bytes())
	}
	dir := t.TempDir()
	pipeline := func(name, in string) string {
		file := filepath.Join(dir, name+".yaml")
		y := fmt.Sprintf(`version: 1
name: %s
stages:
  - id: in
    load: {dir: %q, labels: folders}
  - id: post
    translate: {model: classic, method: posterize}
  - id: out
    save: {dir: %q, manifest: jsonl}
`, name, in, srv.BucketURL("data", "out/"+name))
		if err := os.WriteFile(file, []byte(y), 0o666); err != nil {
			t.Fatal(err)
		}
		return file
	}
	run := func(file string) (string, error) {
		out, err := exec.Command(pipelineExe(t), "run", "--progress", "none", file).CombinedOutput()
		return string(out), err
	}
	good := pipeline("blob", srv.BucketURL("data", "in"))
	out, err := run(good)
	if err != nil || !strings.Contains(out, fmt.Sprintf("wrote %d outputs, skipped 0 already done, failed 0 items", n)) {
		t.Fatalf("pipeline run: %v\n%s", err, out)
	}
	list := func() []string {
		var names []string
		for i := 0; i < n; i++ {
			names = append(names, fmt.Sprintf("out/blob/%s/%02d", []string{"cats", "dogs"}[i%2], i))
		}
		return names
	}
	for _, k := range list() {
		for _, ext := range []string{".png", ".json"} {
			if _, err := srv.Backend.HeadObject("data", k+ext); err != nil {
				t.Errorf("%s%s: %v", k, ext, err)
			}
		}
	}
	if _, err := srv.Backend.HeadObject("data", "out/blob/manifest.jsonl"); err != nil {
		t.Errorf("manifest: %v", err)
	}
	out, err = run(good)
	if err != nil || !strings.Contains(out, fmt.Sprintf("wrote 0 outputs, skipped %d already done", n)) {
		t.Errorf("rerun: %v\n%s", err, out)
	}

	missing := pipeline("missing", strings.Replace(srv.BucketURL("data", "in"), "s3://data/", "s3://nobucket/", 1))
	out, err = run(missing)
	if err == nil || !strings.Contains(out, `blob s3://nobucket/in/: bucket "nobucket" does not exist`) {
		t.Errorf("missing bucket: %v\n%s", err, out)
	}
	if _, err := srv.Backend.HeadObject("data", "out/missing/manifest.jsonl"); err == nil {
		t.Error("the run from a missing bucket wrote a manifest")
	}
}
