package main

import (
	"fmt"
	"image"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/genpipe/genpipe/sdk/safetensors"
)

func init() {
	scriptCmds["stmeta"] = cmdStmeta
	scriptCmds["imgsize"] = cmdImgsize
}

// imgsize FILE W H: the image FILE is W by H pixels.
func cmdImgsize(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "imgsize")
	if len(args) != 3 {
		ts.Fatalf("usage: imgsize FILE W H")
	}
	f, err := os.Open(ts.MkAbs(args[0]))
	ts.Check(err)
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	ts.Check(err)
	if got, want := fmt.Sprintf("%d %d", cfg.Width, cfg.Height), args[1]+" "+args[2]; got != want {
		ts.Fatalf("%s is %s pixels, want %s", args[0], got, want)
	}
}

// stmeta FILE: print the metadata of safetensors FILE, one KEY=VALUE line
// per key, sorted, and the tensor names as "tensor NAME DTYPE SHAPE".
func cmdStmeta(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "stmeta")
	if len(args) != 1 {
		ts.Fatalf("usage: stmeta FILE")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	f, err := safetensors.Decode(b)
	ts.Check(err)
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(ts.Stdout(), "%s=%s\n", k, f.Metadata[k])
	}
	for _, t := range f.Tensors {
		fmt.Fprintf(ts.Stdout(), "tensor %s %s %v\n", t.Name, t.DType, t.Shape)
	}
}

// TestTrainInterrupt interrupts `pipeline train` with SIGINT, as Ctrl-C
// does, after its first checkpoint: it exits 130, keeps the checkpoint, and
// leaves no plugin process behind; the rerun resumes from the checkpoint and
// ends with the same weights as an uninterrupted run.
func TestTrainInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of training with delays")
	}
	testplug, err := exec.LookPath("pipeline-plugin-testplug")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeNoiseImages(filepath.Join(dir, "in"), 24, 28, 28); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf(`version: 1
name: slow
seed: 3
plugins:
  testplug: {path: %s}
stages:
  - id: in
    load: {dir: in}
  - id: gray
    preprocess: [grayscale]
train:
  model: testplug
  input: gray
  epochs: 4
  batch: 4
  output: out/stats.json
  checkpoint: {every: 3}
  params: {step_delay_ms: 40}
`, testplug)
	if err := os.WriteFile(filepath.Join(dir, "train.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := newMark(t.Name())
	t.Cleanup(func() { killStray(mark) })
	env := append(os.Environ(), markEnv+"="+mark)
	train := func(args ...string) *running {
		cmd := exec.Command(pipelineExe(t), append(append([]string{"train", "--progress", "none"}, args...), "train.yaml")...)
		cmd.Dir, cmd.Env = dir, env
		r := &running{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			r.err = cmd.Wait()
			close(r.done)
		}()
		t.Cleanup(func() {
			select {
			case <-r.done:
			default:
				_ = cmd.Process.Kill()
				<-r.done
			}
		})
		return r
	}
	ckpt := filepath.Join(dir, "out", "stats.json.ckpt")
	out := filepath.Join(dir, "out", "stats.json")

	// The uninterrupted run, for reference.
	if code := train().wait(t, 60*time.Second); code != 0 {
		t.Fatalf("uninterrupted run: exit %d", code)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}
	r := train()
	r.waitFor(t, "checkpoint", 30*time.Second, func() bool { _, err := os.Stat(ckpt); return err == nil })
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 30*time.Second); code != exitInterrupted {
		t.Fatalf("interrupted run: exit %d, want %d; stderr:\n%s", code, exitInterrupted, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), "is kept in out/stats.json.ckpt: rerun the same command to resume") {
		t.Errorf("interrupted run's stderr does not mention the checkpoint:\n%s", r.stderr.String())
	}
	if _, err := os.Stat(ckpt); err != nil {
		t.Fatalf("the checkpoint is gone after the interrupt: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatalf("an interrupted run wrote the output")
	}
	if left := waitNoPlugins(mark, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugin processes outlived the host: %v", left)
	}

	r = train()
	if code := r.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("resumed run: exit %d; stderr:\n%s", code, r.stderr.String())
	}
	if !strings.Contains(r.stderr.String(), ", resumed at step ") {
		t.Errorf("the rerun did not resume:\n%s", r.stderr.String())
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("resumed run's weights differ from the uninterrupted run's:\n%s\n%s", got, want)
	}
}
