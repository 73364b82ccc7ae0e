package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs testdata/script/*.txtar: the CLI as a user types it.
// Besides testscript's own commands, scripts have the commands of
// scriptCmds, and these variables:
//
//	EDGES      the built examples/edges plugin (pipeline-plugin-edges)
//	EDGES_DIR  its directory, for PIPELINE_PLUGIN_PATH
//	REPO       the repository root (examples/ lives there)
//	PIPELINE_EXE  the pipeline command (this test binary, linked)
//	TESTPLUG   the SDK's test plugin (pipeline-plugin-testplug), which trains
//
// Update the golden files embedded in scripts with
//
//	go test ./cmd/pipeline -run TestScripts -update
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams())
}

// update rewrites the expected output in scripts and golden files.
var update = flag.Bool("update", false, "rewrite golden files and the expected output in scripts")

func scriptParams() testscript.Params {
	return testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       *update,
		Setup: func(env *testscript.Env) error {
			env.Setenv("EDGES", edgesPlugin)
			env.Setenv("EDGES_DIR", filepath.Dir(edgesPlugin))
			env.Setenv("REPO", repoRoot)
			exe, err := exec.LookPath("pipeline")
			if err != nil {
				return err
			}
			env.Setenv("PIPELINE_EXE", exe)
			testplug, err := exec.LookPath("pipeline-plugin-testplug")
			if err != nil {
				return err
			}
			env.Setenv("TESTPLUG", testplug)
			// The work directory is unique to the script.
			mark := env.WorkDir
			env.Setenv(markEnv, mark)
			env.Defer(func() { killStray(mark) })
			return nil
		},
		Cmds: scriptCmds,
	}
}

// scriptCmds are the test-only commands scripts use.
var scriptCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"mkimages":     cmdMkimages,
	"mkbad":        cmdMkbad,
	"envsubst":     cmdEnvsubst,
	"sha256":       cmdSha256,
	"countfiles":   cmdCountfiles,
	"checkoutputs": cmdCheckoutputs,
	"cmpimages":    cmdCmpimages,
	"jsonevents":   cmdJSONEvents,
	"noplugins":    cmdNoplugins,
	"shardunion":   cmdShardunion,
	"jsonvalid":    cmdJSONValid,
	"exits":        cmdExits,
}

// exits CODE COMMAND [ARGS...]: run COMMAND like exec and require that it
// exits with status CODE (exec only tells zero from non-zero).
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "exits")
	if len(args) < 2 {
		ts.Fatalf("usage: exits CODE COMMAND [ARGS...]")
	}
	want := atoi(ts, args[0])
	err := ts.Exec(args[1], args[2:]...)
	got := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("%s: %v", args[1], err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

func noNeg(ts *testscript.TestScript, neg bool, name string) {
	if neg {
		ts.Fatalf("unsupported: ! %s", name)
	}
}

func atoi(ts *testscript.TestScript, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		ts.Fatalf("%q: not a number", s)
	}
	return n
}

// mkimages DIR N W H: write N noise PNGs of W x H into DIR.
func cmdMkimages(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "mkimages")
	if len(args) != 4 {
		ts.Fatalf("usage: mkimages DIR N W H")
	}
	ts.Check(writeNoiseImages(ts.MkAbs(args[0]), atoi(ts, args[1]), atoi(ts, args[2]), atoi(ts, args[3])))
}

// mkbad DIR: write the corrupt, truncated, empty, text and big images.
func cmdMkbad(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "mkbad")
	if len(args) != 1 {
		ts.Fatalf("usage: mkbad DIR")
	}
	ts.Check(writeBadFiles(ts.MkAbs(args[0])))
}

// envsubst FILE...: replace $VAR and ${VAR} in the files by the script's
// environment (pipeline files that need a path or checksum known only at
// run time).
func cmdEnvsubst(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "envsubst")
	for _, f := range args {
		p := ts.MkAbs(f)
		b, err := os.ReadFile(p)
		ts.Check(err)
		ts.Check(os.WriteFile(p, []byte(os.Expand(string(b), ts.Getenv)), 0o666))
	}
}

// sha256 FILE VAR: set VAR to the hex sha256 of FILE.
func cmdSha256(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "sha256")
	if len(args) != 2 {
		ts.Fatalf("usage: sha256 FILE VAR")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	sum := sha256.Sum256(b)
	ts.Setenv(args[1], hex.EncodeToString(sum[:]))
}

// countfiles DIR GLOB N: DIR holds (recursively) exactly N non-hidden files
// whose name matches GLOB.
func cmdCountfiles(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: countfiles DIR GLOB N")
	}
	n := len(matchingOutputs(ts, args[0], args[1]))
	want := atoi(ts, args[2])
	if (n == want) == neg {
		ts.Fatalf("%s: %d files match %s, want %s%d", args[0], n, args[1], map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

func matchingOutputs(ts *testscript.TestScript, dir, glob string) []string {
	files, err := outputFiles(ts.MkAbs(dir))
	ts.Check(err)
	var out []string
	for _, f := range files {
		if ok, _ := filepath.Match(glob, filepath.Base(f)); ok {
			out = append(out, f)
		}
	}
	return out
}

// checkoutputs DIR: every non-hidden image under DIR decodes and every
// .json sidecar parses.
func cmdCheckoutputs(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "checkoutputs")
	if len(args) != 1 {
		ts.Fatalf("usage: checkoutputs DIR")
	}
	files, err := outputFiles(ts.MkAbs(args[0]))
	ts.Check(err)
	for _, f := range files {
		p := filepath.Join(ts.MkAbs(args[0]), f)
		switch {
		case isImageFile(f):
			_, err := decodeImage(p)
			ts.Check(err)
		case strings.HasSuffix(f, ".json"):
			ts.Check(checkJSONFile(p))
		}
	}
}

func checkJSONFile(p string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// cmpimages [-differ] DIR1 DIR2: both folders hold the same .png files
// (by relative path), byte for byte identical; with -differ, every pair
// differs instead.
func cmdCmpimages(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "cmpimages")
	differ := len(args) > 0 && args[0] == "-differ"
	if differ {
		args = args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: cmpimages [-differ] DIR1 DIR2")
	}
	a, b := matchingOutputs(ts, args[0], "*.png"), matchingOutputs(ts, args[1], "*.png")
	if !slices.Equal(a, b) {
		ts.Fatalf("%s and %s hold different files:\n%v\n%v", args[0], args[1], a, b)
	}
	if len(a) == 0 {
		ts.Fatalf("%s holds no .png files", args[0])
	}
	for _, f := range a {
		x, err := os.ReadFile(filepath.Join(ts.MkAbs(args[0]), f))
		ts.Check(err)
		y, err := os.ReadFile(filepath.Join(ts.MkAbs(args[1]), f))
		ts.Check(err)
		same := string(x) == string(y)
		if same == differ {
			ts.Fatalf("%s: identical=%v in %s and %s, want identical=%v", f, same, args[0], args[1], !differ)
		}
	}
}

// jsonevents FILE TYPE...: every line of FILE (e.g. stdout) is a JSON
// progress event with a type and a stage, and each TYPE occurs.
func cmdJSONEvents(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "jsonevents")
	if len(args) < 1 {
		ts.Fatalf("usage: jsonevents FILE TYPE...")
	}
	seen := map[string]int{}
	lines := strings.Split(strings.TrimRight(ts.ReadFile(args[0]), "\n"), "\n")
	for i, l := range lines {
		var ev struct {
			Type  string    `json:"type"`
			Stage string    `json:"stage"`
			Time  time.Time `json:"time"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			ts.Fatalf("%s:%d: not a JSON event: %v: %q", args[0], i+1, err, l)
		}
		if ev.Type == "" || ev.Stage == "" || ev.Time.IsZero() {
			ts.Fatalf("%s:%d: event without type, stage or time: %q", args[0], i+1, l)
		}
		seen[ev.Type]++
	}
	for _, typ := range args[1:] {
		if seen[typ] == 0 {
			ts.Fatalf("%s: no %q event; saw %v", args[0], typ, seen)
		}
	}
}

// jsonvalid FILE: FILE is one JSON value.
func cmdJSONValid(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: jsonvalid FILE")
	}
	var v any
	err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &v)
	if (err == nil) == neg {
		ts.Fatalf("%s: valid=%v, want valid=%v (%v)", args[0], err == nil, !neg, err)
	}
}

// noplugins: no plugin process started by this script is alive (after a
// grace of 5 s for processes being torn down).
func cmdNoplugins(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "noplugins")
	if left := waitNoPlugins(ts.Getenv(markEnv), 5*time.Second); len(left) > 0 {
		ts.Fatalf("plugin processes left behind: %v", left)
	}
}

// shardunion N GLOB DIR...: the files matching GLOB in the shards' output
// folders are disjoint (by relative path) and together number N: each item
// was written exactly once in total.
func cmdShardunion(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "shardunion")
	if len(args) < 3 {
		ts.Fatalf("usage: shardunion N GLOB DIR...")
	}
	owner := map[string]string{}
	for _, d := range args[2:] {
		files := matchingOutputs(ts, d, args[1])
		if len(files) == 0 {
			ts.Fatalf("shard %s wrote nothing", d)
		}
		for _, f := range files {
			if o, dup := owner[f]; dup {
				ts.Fatalf("%s written by two shards: %s and %s", f, o, d)
			}
			owner[f] = d
		}
	}
	if want := atoi(ts, args[0]); len(owner) != want {
		ts.Fatalf("the shards wrote %d files in total, want %d", len(owner), want)
	}
}
