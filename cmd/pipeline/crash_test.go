package main

// Crashes, for real: a plugin process SIGKILLed in the middle of a job, the
// host SIGKILLed, the host interrupted with SIGINT. Each test starts the
// pipeline command as a subprocess on a job of a few hundred generated
// images and watches its output folder and /proc.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// crashJob is a job folder: in/ holds n generated images, job.yaml reads
// them, runs a model stage, and saves to out/.
type crashJob struct {
	dir  string
	n    int
	mark string
	env  []string
	// group starts the host in a process group of its own (as a shell
	// does for a foreground job), so the group can be signalled.
	group bool
}

// Pipelines for the crash tests; %s is the edges plugin's path.
const (
	// edgesJob runs every image through the external edges plugin in
	// batches of 4.
	edgesJob = `version: 1
name: crash
plugins:
  edges: {path: %s}
stages:
  - id: in
    load: {dir: in}
  - id: sketch
    translate: {model: edges, method: canny, sigma: 4, batch: 4}
  - id: out
    save: {dir: out}
`
	// classicJob runs every image through the built-in classic plugin,
	// which the host serves by re-executing itself.
	classicJob = `version: 1
name: crash
stages:
  - id: in
    load: {dir: in}
  - id: clean
    denoise: {model: classic, method: nlmeans, search_radius: 4, batch: 4}
  - id: out
    save: {dir: out}
`
)

func newCrashJob(t *testing.T, n, size int, pipeline string) *crashJob {
	t.Helper()
	dir := t.TempDir()
	if err := writeNoiseImages(filepath.Join(dir, "in"), n, size, size); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(pipeline, "%s") {
		pipeline = fmt.Sprintf(pipeline, edgesPlugin)
	}
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := newMark(t.Name())
	t.Cleanup(func() { killStray(mark) })
	return &crashJob{dir: dir, n: n, mark: mark, env: append(os.Environ(), markEnv+"="+mark)}
}

// running is a started pipeline process.
type running struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error
	exited         time.Time
}

// syncBuffer is a bytes.Buffer safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (j *crashJob) start(t *testing.T, args ...string) *running {
	t.Helper()
	cmd := exec.Command(pipelineExe(t), append([]string{"run"}, append(args, "job.yaml")...)...)
	cmd.Dir, cmd.Env = j.dir, j.env
	if j.group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	r := &running{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = cmd.Wait()
		r.exited = time.Now()
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

// wait waits for the process (at most d) and returns its exit code.
func (r *running) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("pipeline did not exit within %s; stderr:\n%s", d, r.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0
	case errors.As(r.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return -int(ws.Signal())
		}
		return ee.ExitCode()
	}
	t.Fatalf("pipeline: %v", r.err)
	return 0
}

// run runs the job to the end and returns its exit code.
func (j *crashJob) run(t *testing.T, args ...string) (int, *running) {
	t.Helper()
	r := j.start(t, args...)
	return r.wait(t, 60*time.Second), r
}

// countImages counts the finished images in out/ (hidden temporary files
// are not outputs).
func (j *crashJob) countImages() int {
	ents, _ := os.ReadDir(filepath.Join(j.dir, "out"))
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".png") && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds; it fails the test if the process
// ends first or after d.
func (r *running) waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-r.done:
			t.Fatalf("the job ended before %s (make the job longer); stderr:\n%s", what, r.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s; stderr:\n%s", what, d, r.stderr.String())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// pluginOf returns the one live plugin process of the job, a child of the
// host process.
func (j *crashJob) pluginOf(t *testing.T, r *running) procInfo {
	t.Helper()
	var ps []procInfo
	r.waitFor(t, "plugin process", 30*time.Second, func() bool {
		ps = pluginProcs(j.mark)
		return len(ps) > 0
	})
	if len(ps) != 1 {
		t.Fatalf("want one plugin process, found %v", ps)
	}
	p := ps[0]
	if p.pid == r.cmd.Process.Pid {
		t.Fatalf("the plugin runs in the host process %d", p.pid)
	}
	if p.ppid != r.cmd.Process.Pid {
		t.Fatalf("plugin %v is not a child of the host %d", p, r.cmd.Process.Pid)
	}
	return p
}

// checkComplete checks that out/ holds exactly one decodable image and one
// sidecar per input, and nothing else that is not hidden.
func (j *crashJob) checkComplete(t *testing.T) {
	t.Helper()
	files := checkOutputs(t, filepath.Join(j.dir, "out"))
	want := map[string]bool{}
	for i := range j.n {
		want[fmt.Sprintf("img%04d.png", i)] = true
		want[fmt.Sprintf("img%04d.json", i)] = true
	}
	for _, f := range files {
		if !want[f] {
			t.Errorf("unexpected output %s", f)
		}
		delete(want, f)
	}
	if len(want) > 0 {
		t.Errorf("%d outputs missing, e.g. %v", len(want), firstKeys(want, 5))
	}
}

func firstKeys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}

var summaryRE = regexp.MustCompile(`(?m)^crash: wrote (\d+) outputs, skipped (\d+) already done, failed (\d+) items in `)

// summary reads the counts of the job's summary line.
func summary(t *testing.T, stderr string) (wrote, skipped, failed int) {
	t.Helper()
	m := summaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line in stderr:\n%s", stderr)
	}
	wrote, _ = strconv.Atoi(m[1])
	skipped, _ = strconv.Atoi(m[2])
	failed, _ = strconv.Atoi(m[3])
	return
}

// sinkItems counts the JSON progress events of the save stage per item.
func sinkItems(t *testing.T, stdout string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var ev struct {
			Type, Stage, Item string
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("progress line %d: %v: %q", i+1, err, l)
		}
		if ev.Type == "item" && ev.Stage == "out" {
			seen[ev.Item]++
		}
	}
	return seen
}

// TestPluginKilledMidJob SIGKILLs the plugin process once while a job runs:
// the host restarts it and retries the batches in flight, and the job ends
// normally with every output written exactly once.
func TestPluginKilledMidJob(t *testing.T) {
	t.Parallel()
	j := newCrashJob(t, 200, 96, edgesJob)
	r := j.start(t, "--progress", "json")
	p := j.pluginOf(t, r)
	r.waitFor(t, "first outputs", 30*time.Second, func() bool { return j.countImages() >= 10 })
	// Prefer to kill it while it computes (inside a call) rather than
	// between calls; both must be survived.
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline) && !computing(p.pid); {
		time.Sleep(time.Millisecond)
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := j.countImages()
	code := r.wait(t, 60*time.Second)
	stderr := r.stderr.String()
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if killedAt >= j.n {
		t.Fatalf("the job was done before the plugin was killed")
	}
	switch {
	case strings.Contains(stderr, "plugin process died during a call; restarting it and retrying the call: plugin=edges"):
		t.Logf("killed during a call")
	case strings.Contains(stderr, "plugin process exited; restarting it: plugin=edges"):
		t.Logf("killed between calls")
	default:
		t.Errorf("stderr does not report the restart:\n%s", stderr)
	}
	wrote, skipped, failed := summary(t, stderr)
	if wrote != j.n || skipped != 0 || failed != 0 {
		t.Errorf("summary: wrote %d, skipped %d, failed %d; want %d, 0, 0", wrote, skipped, failed, j.n)
	}
	// Exactly once: one save event per item, one image and sidecar each.
	seen := sinkItems(t, r.stdout.String())
	if len(seen) != j.n {
		t.Errorf("%d items saved, want %d", len(seen), j.n)
	}
	for it, n := range seen {
		if n != 1 {
			t.Errorf("item %s saved %d times", it, n)
		}
	}
	j.checkComplete(t)
	if left := waitNoPlugins(j.mark, 5*time.Second); len(left) > 0 {
		t.Errorf("plugin processes left: %v", left)
	}
}

// computing reports whether any thread of process pid is running.
func computing(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, task := range tasks {
		if st, _ := procStat(task); st == "R" {
			return true
		}
	}
	return false
}

// TestHostKilledMidJob SIGKILLs the host: its plugin dies with it, no
// partial file is left where an output belongs, and a rerun completes the
// job, skipping what was already written.
func TestHostKilledMidJob(t *testing.T) {
	t.Parallel()
	j := newCrashJob(t, 300, 64, edgesJob)
	r := j.start(t, "--progress", "none")
	j.pluginOf(t, r)
	r.waitFor(t, "first outputs", 30*time.Second, func() bool { return j.countImages() >= 20 })
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 10*time.Second); code != -int(syscall.SIGKILL) {
		t.Fatalf("the host was not killed (exit %d)", code)
	}
	if left := waitNoPlugins(j.mark, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugin processes outlived the killed host: %v", left)
	}
	done := len(checkOutputs(t, filepath.Join(j.dir, "out")))
	if done >= 2*j.n {
		t.Fatalf("the job was done before the host was killed")
	}

	code, r2 := j.run(t, "--progress", "none")
	if code != 0 {
		t.Fatalf("rerun: exit %d; stderr:\n%s", code, r2.stderr.String())
	}
	wrote, skipped, failed := summary(t, r2.stderr.String())
	if skipped == 0 || wrote+skipped != j.n || failed != 0 {
		t.Errorf("rerun: wrote %d, skipped %d, failed %d; want some skipped and %d in all", wrote, skipped, failed, j.n)
	}
	j.checkComplete(t)
}

// TestInterrupt sends SIGINT to the host, as Ctrl-C does (or SIGTERM), while
// the built-in classic plugin (a re-execution of the host binary) works: the
// host stops its plugin, leaves no partial file and exits 130; a rerun
// completes the job.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		sig   syscall.Signal
		group bool
	}{
		{"host", syscall.SIGINT, false},
		// A terminal's Ctrl-C signals the whole foreground process group,
		// the plugins too.
		{"process-group", syscall.SIGINT, true},
		// What Kubernetes sends a pod it stops.
		{"sigterm", syscall.SIGTERM, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newCrashJob(t, 60, 48, classicJob)
			j.group = tc.group
			r := j.start(t, "--progress", "none")
			p := j.pluginOf(t, r)
			// The built-in runs in its own process, from the same binary.
			if !strings.HasSuffix(p.cmdline, "plugin serve classic") {
				t.Errorf("built-in plugin process: %q", p.cmdline)
			}
			hostExe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", r.cmd.Process.Pid))
			plugExe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
			if hostExe == "" || hostExe != plugExe {
				t.Errorf("the built-in runs %q, the host is %q", plugExe, hostExe)
			}
			r.waitFor(t, "first outputs", 30*time.Second, func() bool { return j.countImages() >= 5 })
			target := r.cmd.Process.Pid
			if tc.group {
				target = -target
			}
			if err := syscall.Kill(target, tc.sig); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			code := r.wait(t, 15*time.Second)
			stderr := r.stderr.String()
			if code != exitInterrupted {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitInterrupted, stderr)
			}
			t.Logf("exited %s after %v", r.exited.Sub(sent).Round(time.Millisecond), tc.sig)
			if !strings.Contains(stderr, "interrupted; rerun the same command to resume") {
				t.Errorf("stderr does not say it was interrupted:\n%s", stderr)
			}
			if left := waitNoPlugins(j.mark, 5*time.Second); len(left) > 0 {
				t.Fatalf("plugin processes left after the interrupt: %v", left)
			}
			if n := j.countImages(); n >= j.n {
				t.Fatalf("the job was done before the interrupt")
			}
			checkOutputs(t, filepath.Join(j.dir, "out"))

			code, r2 := j.run(t, "--progress", "none")
			if code != 0 {
				t.Fatalf("rerun: exit %d; stderr:\n%s", code, r2.stderr.String())
			}
			wrote, skipped, failed := summary(t, r2.stderr.String())
			if skipped == 0 || wrote+skipped != j.n || failed != 0 {
				t.Errorf("rerun: wrote %d, skipped %d, failed %d; want some skipped and %d in all", wrote, skipped, failed, j.n)
			}
			j.checkComplete(t)
		})
	}
}

// TestInterruptWhilePluginStarts sends SIGINT while the host waits for a
// plugin that never completes the handshake: the host must give up the
// start, stop the process and exit 130 at once, not when the start times out.
func TestInterruptWhilePluginStarts(t *testing.T) {
	t.Parallel()
	hang, err := exec.LookPath("pipeline-plugin-hang")
	if err != nil {
		t.Fatal(err)
	}
	j := newCrashJob(t, 2, 16, fmt.Sprintf(`version: 1
name: crash
plugins:
  hang: {path: %s}
stages:
  - id: in
    load: {dir: in}
  - id: sk
    translate: {model: hang}
  - id: out
    save: {dir: out}
`, hang))
	r := j.start(t, "--progress", "none")
	j.pluginOf(t, r)
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 10*time.Second); code != exitInterrupted {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitInterrupted, r.stderr.String())
	}
	if left := waitNoPlugins(j.mark, 5*time.Second); len(left) > 0 {
		t.Fatalf("plugin processes left: %v", left)
	}
}
