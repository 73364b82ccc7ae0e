package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestExamples runs every examples/*.yaml as a user would from the
// repository root, in a copy of examples/ (so outputs land in a temporary
// folder): validate, then run when valid, then run again (which must resume:
// nothing rewritten). The transcript (output, exit codes, every output file
// with its image size, and one provenance sidecar per save folder) must
// match testdata/examples/NAME.golden. A new example without a golden file
// fails; create it with
//
//	go test ./cmd/pipeline -run TestExamples -update
//
// and read it before committing it.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/*.yaml found in %s (%v)", repoRoot, err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := exampleRoot(t, f)
			got := runExample(t, root, name)
			golden := filepath.Join("testdata", "examples", name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if errors.Is(err, os.ErrNotExist) {
				t.Fatalf("examples/%s.yaml has no expected transcript %s: run\n\tgo test ./cmd/pipeline -run 'TestExamples/%s' -update\nand check the file it writes. Transcript:\n%s", name, golden, name, got)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("examples/%s.yaml: transcript differs from %s (-update rewrites it)\n%s", name, golden, lineDiff(string(want), got))
			}
		})
	}
	// A golden file whose example is gone is stale.
	goldens, _ := filepath.Glob(filepath.Join("testdata", "examples", "*.golden"))
	for _, g := range goldens {
		name := strings.TrimSuffix(filepath.Base(g), ".golden")
		if _, err := os.Stat(filepath.Join(repoRoot, "examples", name+".yaml")); err != nil {
			t.Errorf("%s has no examples/%s.yaml: delete it", g, name)
		}
	}
}

// exampleRoot lays out a copy of the repository's examples/ for one example
// file in a temporary folder and returns the folder.
func exampleRoot(t *testing.T, file string) string {
	root := t.TempDir()
	if err := copyTree(filepath.Join(repoRoot, "examples", "data"), filepath.Join(root, "examples", "data")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "examples", filepath.Base(file)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// sketch-photos.yaml names the plugin as ../bin/pipeline-plugin-edges,
	// where the README's build command puts it.
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(edgesPlugin, filepath.Join(root, "bin", "pipeline-plugin-edges")); err != nil {
		t.Fatal(err)
	}
	return root
}

// runExample returns the transcript of validating and running one example.
func runExample(t *testing.T, root, name string) string {
	var tr strings.Builder
	file := "examples/" + name + ".yaml"
	mark := newMark(t.Name())
	t.Cleanup(func() { killStray(mark) })
	env := append(os.Environ(), markEnv+"="+mark, "PIPELINE_PLUGIN_PATH=", "XDG_DATA_HOME="+filepath.Join(root, "xdg"))

	code := transcribe(t, &tr, root, env, "validate", file)
	if left := waitNoPlugins(mark, 5*time.Second); len(left) > 0 {
		t.Errorf("plugin processes left after validate: %v", left)
	}
	if code != 0 {
		return tr.String()
	}
	before := snapshot(t, root)
	transcribe(t, &tr, root, env, "run", "--progress", "none", file)
	outs := newFiles(t, root, before)
	fmt.Fprintf(&tr, "$ ls (new files)\n")
	var sidecars []string
	for _, f := range outs {
		p := filepath.Join(root, f)
		switch {
		case isImageFile(f):
			img, err := decodeImage(p)
			if err != nil {
				t.Errorf("output %s: %v", f, err)
				fmt.Fprintf(&tr, "%s BROKEN\n", f)
				continue
			}
			fmt.Fprintf(&tr, "%s %s\n", f, describeImage(img))
		default:
			fmt.Fprintf(&tr, "%s\n", f)
		}
		if strings.HasSuffix(f, ".json") {
			sidecars = append(sidecars, f)
		}
	}
	// The first sidecar of each save stage, with the paths and checksums
	// that vary from machine to machine checked and replaced.
	shown := map[string]bool{}
	for _, f := range sidecars {
		text, stage := normalizeSidecar(t, root, filepath.Join(root, f))
		if !shown[stage] {
			shown[stage] = true
			fmt.Fprintf(&tr, "$ cat %s\n%s", f, text)
		}
	}
	if left := waitNoPlugins(mark, 5*time.Second); len(left) > 0 {
		t.Errorf("plugin processes left after run: %v", left)
	}
	// A second run resumes: it finds every output and rewrites nothing.
	stamps := modTimes(t, root, outs)
	transcribe(t, &tr, root, env, "run", "--progress", "none", file)
	if again := newFiles(t, root, before); strings.Join(again, "\n") != strings.Join(outs, "\n") {
		t.Errorf("the second run changed the set of outputs:\nfirst:  %v\nsecond: %v", outs, again)
	}
	// Per-item images (those with a provenance sidecar) must be left alone;
	// grids and animations of a whole stream are rebuilt on every run.
	for f, m := range modTimes(t, root, outs) {
		sidecar := strings.TrimSuffix(f, filepath.Ext(f)) + ".json"
		if m != stamps[f] && isImageFile(f) && slices.Contains(outs, sidecar) {
			t.Errorf("the second run rewrote %s", f)
		}
	}
	return tr.String()
}

var idxItemRE = regexp.MustCompile(`#[0-9]+$`)

var durationRE = regexp.MustCompile(` in [0-9.]+(ns|µs|us|ms|s|m[0-9.]+s|h[0-9hms.]+)$`)

// transcribe runs pipeline ARGS in dir and appends the command, its
// output (durations masked) and exit status to tr.
func transcribe(t *testing.T, tr *strings.Builder, dir string, env []string, args ...string) int {
	t.Helper()
	cmd := exec.Command(pipelineExe(t), args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("pipeline %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	fmt.Fprintf(tr, "$ pipeline %s\n", strings.Join(args, " "))
	for _, s := range []struct {
		name string
		b    *bytes.Buffer
	}{{"stdout", &stdout}, {"stderr", &stderr}} {
		if s.b.Len() == 0 {
			continue
		}
		fmt.Fprintf(tr, "[%s]\n", s.name)
		for _, l := range strings.SplitAfter(s.b.String(), "\n") {
			if l == "" {
				continue
			}
			l = strings.ReplaceAll(l, dir, "$ROOT")
			tr.WriteString(durationRE.ReplaceAllString(strings.TrimSuffix(l, "\n"), " in <duration>") + "\n")
		}
	}
	fmt.Fprintf(tr, "[exit %d]\n", code)
	return code
}

// snapshot lists the files under root.
func snapshot(t *testing.T, root string) map[string]bool {
	files, err := outputFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, f := range files {
		m[f] = true
	}
	return m
}

// newFiles lists the files under root that are not in before, sorted.
func newFiles(t *testing.T, root string, before map[string]bool) []string {
	files, err := outputFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if !before[f] {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	return out
}

func modTimes(t *testing.T, root string, files []string) map[string]int64 {
	m := map[string]int64{}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		m[f] = st.ModTime().UnixNano()
	}
	return m
}

// normalizeSidecar checks the parts of a provenance sidecar that differ
// between machines and builds (source paths, plugin checksums) and replaces
// them with placeholders. It also returns the sidecar's save stage.
func normalizeSidecar(t *testing.T, root, path string) (string, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // seeds are uint64
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if src, ok := v["source"].(string); ok {
		// An item of an idx file is "file.idx.gz#N"; a typeset digit,
		// made rather than read, is "typeset:FACE#N".
		if !strings.HasPrefix(src, "typeset:") {
			if _, err := os.Stat(idxItemRE.ReplaceAllString(src, "")); err != nil {
				t.Errorf("%s: source %s: %v", path, src, err)
			}
		}
		v["source"] = strings.Replace(src, root, "$ROOT", 1)
	}
	stages, _ := v["stages"].([]any)
	for _, s := range stages {
		st, _ := s.(map[string]any)
		sum, ok := st["sha256"].(string)
		if !ok {
			continue
		}
		exe := pipelineExe(t)
		if st["plugin"] == "edges" {
			exe = edgesPlugin
		}
		if want := fileSHA256(t, exe); sum != want {
			t.Errorf("%s: stage %v: sha256 %s, want %s (of %s)", path, st["stage"], sum, want, exe)
		}
		st["sha256"] = "<sha256 of the plugin executable>"
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	stage, _ := v["save_stage"].(string)
	return out.String(), stage
}

func fileSHA256(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// copyTree copies the regular files under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		// The MNIST idx files (11 MB) are only read by path: link them
		// rather than copy them for every example.
		if strings.HasSuffix(p, ".gz") {
			return os.Symlink(p, target)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %q\n  got:  %q\n", i+1, wl, gl)
			if shown++; shown == 10 {
				b.WriteString("...\n")
				break
			}
		}
	}
	return b.String()
}

// readmeValidateRE finds the README's console blocks that show validate on
// an example: the command, then its output up to the end of the block.
var readmeValidateRE = regexp.MustCompile("(?s)```console\n\\$ bin/pipeline validate (examples/[a-z0-9-]+\\.yaml)\n(.*?)```")

// TestReadmeValidateOutput keeps the validate output the README shows equal
// to what validate prints (stdout, then stderr, as on a terminal).
func TestReadmeValidateOutput(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Skipf("no README.md: %v", err)
	}
	blocks := readmeValidateRE.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Skip("README.md shows no `bin/pipeline validate examples/...` block")
	}
	for _, b := range blocks {
		file, want := b[1], b[2]
		root := exampleRoot(t, filepath.Join(repoRoot, file))
		cmd := exec.Command(pipelineExe(t), "validate", file)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PIPELINE_PLUGIN_PATH=", "XDG_DATA_HOME="+filepath.Join(root, "xdg"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		_ = cmd.Run()
		if got := stdout.String() + stderr.String(); got != want {
			t.Errorf("README.md shows for `pipeline validate %s`:\n%s\nbut it prints:\n%s", file, want, got)
		} else {
			t.Logf("README.md shows what `pipeline validate %s` prints (%d lines)", file, strings.Count(got, "\n"))
		}
	}
}

// TestTrainConfigs validates the training configs of the shipped presets
// (examples/train/*.yaml), which TestExamples does not run: training them
// takes tens of minutes.
func TestTrainConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "train", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples/train/*.yaml (%v)", err)
	}
	for _, f := range files {
		out, err := exec.Command(pipelineExe(t), "validate", f).CombinedOutput()
		if err != nil {
			t.Errorf("pipeline validate %s: %v\n%s", f, err, out)
		}
	}
}
