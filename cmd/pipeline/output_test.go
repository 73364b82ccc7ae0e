package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// execPipeline runs the pipeline command in dir with extra environment and
// returns its stdout, stderr and exit code.
func execPipeline(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(pipelineExe(t), args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), markEnv+"="+newMark(t.Name())), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("pipeline %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

const validGood = `version: 1
name: good
stages:
  - id: in
    load: {dir: in}
  - id: clean
    denoise: {model: classic, method: median, radius: 1}
  - id: out
    save: {dir: out}
`

const validBad = `version: 1
name: bad
stages:
  - id: in
    load: {dir: in, limt: 3}
  - denoise:
      model: classic
      radius: 12
  - id: out
    save: {dir: out, format: webp}
`

func validateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range map[string]string{"good.yaml": validGood, "bad.yaml": validBad} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// validate takes several files: each file's problems, the valid ones
// confirmed, exit 1 when any has a problem.
func TestValidateSeveralFiles(t *testing.T) {
	dir := validateDir(t)
	out, errOut, code := execPipeline(t, dir, nil, "validate", "good.yaml", "bad.yaml", "good.yaml")
	want := `good.yaml: valid pipeline "good", 3 stages
bad.yaml:5:21: load: unknown parameter "limt" (did you mean "list"?)
bad.yaml:6:5: stage #2 has no id (add id: NAME)
bad.yaml:8:15: denoise.radius: 12 is out of range [1, 7]
bad.yaml:10:30: save.format: "webp" is not one of png, jpeg, gif
good.yaml: valid pipeline "good", 3 stages
`
	if out != want || code != 1 || errOut != "pipeline: bad.yaml: 4 problem(s)\n" {
		t.Errorf("got exit %d, stdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", code, out, errOut, want)
	}
	out, _, code = execPipeline(t, dir, nil, "validate", "good.yaml", "good.yaml")
	if code != 0 || strings.Count(out, "valid pipeline") != 2 {
		t.Errorf("two valid files: exit %d, stdout:\n%s", code, out)
	}
}

// validate -o json prints one array: an entry per problem, named by file,
// line, column and stage (a stage without an id by its number), and one
// per valid file.
func TestValidateJSON(t *testing.T) {
	dir := validateDir(t)
	out, errOut, code := execPipeline(t, dir, nil, "validate", "--output", "json", "good.yaml", "bad.yaml", "nosuch.yaml")
	if code != 1 {
		t.Errorf("exit %d, want 1 (stderr %q)", code, errOut)
	}
	var got []validateEntry
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not a JSON array of entries: %v\n%s", err, out)
	}
	want := []validateEntry{
		{File: "good.yaml", OK: true, Name: "good", Stages: 3},
		{File: "bad.yaml", Line: 5, Column: 21, Stage: "in", Message: `load: unknown parameter "limt"`, Hint: `did you mean "list"?`},
		{File: "bad.yaml", Line: 6, Column: 5, Stage: "#2", Message: "stage #2 has no id", Hint: "add id: NAME"},
		{File: "bad.yaml", Line: 8, Column: 15, Stage: "#2", Message: "denoise.radius: 12 is out of range [1, 7]"},
		{File: "bad.yaml", Line: 10, Column: 30, Stage: "out", Message: `save.format: "webp" is not one of png, jpeg, gif`},
		{File: "nosuch.yaml", Message: "open nosuch.yaml: no such file or directory"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if want := "pipeline: bad.yaml: 4 problem(s); nosuch.yaml: 1 problem(s)\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	// The keys are the documented ones.
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"file", "ok", "line", "column", "stage", "message", "hint"} {
		if _, ok := raw[1][k]; !ok {
			t.Errorf("problem entry lacks %q: %v", k, raw[1])
		}
	}
}

// An output format other than text or json is refused, naming the allowed
// ones, by every command that has the flag.
func TestOutputFlagRejectsUnknown(t *testing.T) {
	dir := validateDir(t)
	for _, args := range [][]string{{"validate", "-o", "xml", "good.yaml"}, {"plugins", "list", "--output=yaml"}} {
		out, errOut, code := execPipeline(t, dir, nil, args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "expected text or json") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 1 naming text or json", args, code, out, errOut)
		}
	}
}

// plugins list -o json describes every plugin: built-ins and the external
// edges plugin found on PIPELINE_PLUGIN_PATH.
func TestPluginsListJSON(t *testing.T) {
	out, errOut, code := execPipeline(t, t.TempDir(), []string{"PIPELINE_PLUGIN_PATH=" + filepath.Dir(edgesPlugin)}, "plugins", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got []struct {
		Name         string   `json:"name"`
		Kind         string   `json:"kind"`
		Version      string   `json:"version"`
		Path         string   `json:"path"`
		Capabilities []string `json:"capabilities"`
		Presets      []struct {
			Name  string `json:"name"`
			Input *struct {
				Channels, Height, Width int
			} `json:"input"`
		} `json:"presets"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	byName := map[string]int{}
	for i, p := range got {
		byName[p.Name] = i
		if p.Error != "" || p.Version == "" || len(p.Capabilities) == 0 || !filepath.IsAbs(p.Path) {
			t.Errorf("%s: %+v", p.Name, p)
		}
	}
	for _, n := range []string{"classic", "edges", "gan", "vae"} {
		if _, ok := byName[n]; !ok {
			t.Fatalf("no entry for %s in %s", n, out)
		}
	}
	if e := got[byName["edges"]]; e.Kind != "external" || e.Path != edgesPlugin || !slices.Contains(e.Capabilities, "translate") {
		t.Errorf("edges: %+v", e)
	}
	vae := got[byName["vae"]]
	if vae.Kind != "builtin" || !slices.Contains(vae.Capabilities, "encode") {
		t.Errorf("vae: %+v", vae)
	}
	found := false
	for _, p := range vae.Presets {
		if p.Name == "mnist-vae" && p.Input != nil && p.Input.Channels == 1 && p.Input.Height == 28 && p.Input.Width == 28 {
			found = true
		}
	}
	if !found {
		t.Errorf("vae presets lack mnist-vae with a 1x28x28 input: %+v", vae.Presets)
	}
}
