package blobstore

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/internal/s3test"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: "" for valid, else a part of the error
		prefix   string
	}{
		{"s3://b/p/q?endpoint=http://127.0.0.1:9000&region=x&use_path_style=true", "", "p/q/"},
		{"s3://b", "", ""},
		{"s3://b/p/", "", "p/"},
		{"gs://b/imgs", "", "imgs/"},
		{"azblob://c/x?domain=d&protocol=http", "", "x/"},
		{"mem://m/x", "", "x/"},
		{"file:///data/in", "", ""},
		{"s4://b/p", `unknown URL scheme "s4"`, ""},
		{"s3://b/p?bogus=1", `unknown query parameter "bogus"`, ""},
		{"s3://b/p?use_path_style=maybe", `use_path_style="maybe" is not true or false`, ""},
		{"s3://b/p?endpoint=%zz", "malformed", ""},
		{"s3:///p", "names no bucket", ""},
		{"s3://b/a/../c", `"..`, ""},
		{"s3://key:secret@b/p", "credentials come from the environment", ""},
		{"gs://b/p?private_key_path=/k", `unknown query parameter "private_key_path"`, ""},
		{"file://host/x", "absolute folder", ""},
	} {
		loc, err := Parse(c.in)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.want == "" && loc.Prefix != c.prefix:
			t.Errorf("%s: prefix %q, want %q", c.in, loc.Prefix, c.prefix)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", c.in, err, c.want)
		}
	}
	if strings.Contains(func() string { _, err := Parse("s3://key:secret@b/p"); return err.Error() }(), "secret") {
		t.Error("the error repeats the secret")
	}
	for s, want := range map[string]bool{"s3://b": true, "./s3:/x": false, "data/x": false, "C:\\x": false, "file:///x": true, "1a://x": false} {
		if IsURL(s) != want {
			t.Errorf("IsURL(%q) = %v", s, !want)
		}
	}
	if LocalPath("file:///data/in/") != "/data/in" || LocalPath("in") != "in" || IsBlob("file:///x") || !IsBlob("mem://x") {
		t.Error("LocalPath or IsBlob")
	}
}

func TestUnder(t *testing.T) {
	root, _ := Parse("s3://b/jobs?endpoint=http://e:1")
	for s, want := range map[string]bool{
		"s3://b/jobs/a?endpoint=http://e:1":    true,
		"s3://b/jobs?endpoint=http://e:1":      true,
		"s3://b/jobsx/a?endpoint=http://e:1":   false,
		"s3://b/jobs/a?endpoint=http://evil:1": false,
		"s3://b/jobs/a":                        false,
		"s3://c/jobs/a?endpoint=http://e:1":    false,
		"gs://b/jobs/a":                        false,
	} {
		loc, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		if loc.Under(root) != want {
			t.Errorf("%s under %s: %v, want %v", s, root, !want, want)
		}
	}
}

// failingReader yields some bytes, then fails.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.n)
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

// TestS3 runs the store against a real S3-protocol server: writes are
// whole or absent, listing is in key order and paged, errors name the URL
// and the bucket.
func TestS3(t *testing.T) {
	srv := s3test.Start(t, "bkt")
	ctx := context.Background()
	loc, err := Parse(srv.BucketURL("bkt", "run/out"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, "a/b.png", []byte("png"), map[string]string{"genpipe-run": "r1"}); err != nil {
		t.Fatal(err)
	}
	meta, ok, err := st.Stat(ctx, "a/b.png")
	if err != nil || !ok || meta["genpipe-run"] != "r1" {
		t.Fatalf("stat: %v %v %v", meta, ok, err)
	}
	// A write whose source fails leaves no object, and an earlier
	// version as it was.
	err = st.WriteFrom(ctx, "c.png", &failingReader{n: 100 << 10}, nil)
	if err == nil || !strings.Contains(err.Error(), "nothing stored") || !strings.Contains(err.Error(), "s3://bkt/run/out/c.png") {
		t.Errorf("failed write: %v", err)
	}
	if _, ok, _ := st.Stat(ctx, "c.png"); ok {
		t.Error("a failed write left an object")
	}
	if err := st.WriteFrom(ctx, "a/b.png", &failingReader{n: 10}, nil); err == nil {
		t.Error("failed overwrite: no error")
	}
	if b, err := st.ReadAll(ctx, "a/b.png"); err != nil || string(b) != "png" {
		t.Errorf("after a failed overwrite: %q, %v", b, err)
	}
	// A canceled context aborts too.
	cctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() { pw.Write([]byte("partial")); cancel(); pw.CloseWithError(context.Canceled) }()
	if err := st.WriteFrom(cctx, "d.png", pr, nil); err == nil {
		t.Error("canceled write: no error")
	}
	if _, ok, _ := st.Stat(ctx, "d.png"); ok {
		t.Error("a canceled write left an object")
	}
	if _, err := st.ReadAll(ctx, "nope.png"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "s3://bkt/run/out/nope.png") {
		t.Errorf("missing object: %v", err)
	}
	for _, k := range []string{"a.png", "a-c.png", "z/.hidden", "a/"} {
		if err := st.Write(ctx, k, []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := st.List(ctx, true, func(rel string, _ int64) error { got = append(got, rel); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := "a-c.png a.png a/b.png z/.hidden"; strings.Join(got, " ") != want {
		t.Errorf("listing %q, want %q", strings.Join(got, " "), want)
	}
	got = nil
	if err := st.List(ctx, false, func(rel string, _ int64) error { got = append(got, rel); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := "a-c.png a.png"; strings.Join(got, " ") != want {
		t.Errorf("flat listing %q, want %q", strings.Join(got, " "), want)
	}
	if dirs, err := st.Dirs(ctx); err != nil || strings.Join(dirs, " ") != "a z" {
		t.Errorf("dirs %q, %v", dirs, err)
	}
	if err := st.Delete(ctx, "a.png"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a.png"); err != nil {
		t.Errorf("deleting a missing object: %v", err)
	}

	// A missing bucket, refused credentials, an endpoint nobody serves.
	missing, _ := Parse(srv.BucketURL("nobucket", "x"))
	if _, err := Open(ctx, missing); err == nil || !strings.Contains(err.Error(), `bucket "nobucket" does not exist`) || !strings.Contains(err.Error(), "s3://nobucket/x/") {
		t.Errorf("missing bucket: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "wrong")
	refused, _ := Parse(srv.BucketURL("bkt", "y") + "&region=eu-west-1") // another client, not the cached one
	if _, err := Open(ctx, refused); err == nil || !strings.Contains(err.Error(), `bucket "bkt"`) || !strings.Contains(err.Error(), "access refused") {
		t.Errorf("refused credentials: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
	gone, _ := Parse("s3://bkt/x?endpoint=http://127.0.0.1:1&use_path_style=true")
	if _, err := Open(ctx, gone); err == nil || !strings.Contains(err.Error(), `bucket "bkt"`) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable endpoint: %v", err)
	}
}

// TestMem: one mem:// bucket per name for the whole process.
func TestMem(t *testing.T) {
	ctx := context.Background()
	a, _ := Parse("mem://shared-test/x")
	b, _ := Parse("mem://shared-test/x/")
	sa, err := Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if err := sa.Write(ctx, "k", []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	sb, _ := Open(ctx, b)
	if v, err := sb.ReadAll(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("second open: %q %v", v, err)
	}
}
