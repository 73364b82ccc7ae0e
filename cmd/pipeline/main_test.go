package main

// The CLI is tested as a user runs it: the test binary doubles as the
// `pipeline` command (testscript.Main puts a link to it named "pipeline" on
// PATH), so `exec pipeline ...` in a script, or exec.Command("pipeline") in a
// Go test, runs main() in a separate process. Built-in plugins then re-execute
// that same link as `pipeline plugin serve NAME`, a third process, exactly as
// the real binary does. The external example plugin is built once, in
// TestMain, from its own module.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// Set by setupM.Run before any test runs.
var (
	// repoRoot is the module root (two levels above this package).
	repoRoot string
	// edgesPlugin is the built examples/edges plugin, named
	// pipeline-plugin-edges, alone in its directory.
	edgesPlugin string
)

// markEnv is set to a value unique to each test in the environment of the
// host processes a test starts; plugins inherit it, so a scan of /proc finds
// exactly the plugin processes of one test even when tests run in parallel
// and the plugins have been orphaned.
const markEnv = "GENPIPE_TEST_MARK"

func TestMain(m *testing.M) {
	testscript.Main(setupM{m}, map[string]func(){
		"pipeline": main,
		// The SDK's test plugin, as an external plugin: it can train
		// (per-channel statistics), checkpoint, evaluate and crash on demand.
		"pipeline-plugin-testplug": func() { sdk.Serve(sdktest.NewTestPlugin("testplug")) },
		// Reports the latents it is given as pixel bytes (precision_test.go).
		"pipeline-plugin-latentprobe": func() { sdk.Serve(latentProbe{}) },
		// A plugin that never completes the handshake.
		"pipeline-plugin-hang": func() {
			fmt.Fprintln(os.Stderr, "hang: not answering")
			time.Sleep(time.Minute)
		},
	})
}

// setupM builds the edges plugin before the tests run and removes it after.
// It runs only in the top-level test process, never when the binary acts as
// the pipeline command.
type setupM struct{ m *testing.M }

func (s setupM) Run() int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmd/pipeline tests:", err)
		return 1
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
	dir, err := os.MkdirTemp("", "pipeline-test-plugins")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cmd/pipeline tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	edgesPlugin = filepath.Join(dir, "pipeline-plugin-edges")
	if err := buildEdges(edgesPlugin); err != nil {
		fmt.Fprintln(os.Stderr, "cmd/pipeline tests: building the edges plugin:", err)
		return 1
	}
	// Tests must not pick up plugins installed on the machine.
	os.Setenv("PIPELINE_PLUGIN_PATH", "")
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "no-data-home"))
	return s.m.Run()
}

// buildEdges builds the third-party example plugin from its own module, as
// its author would: without the repository's go.work (GOWORK=off), so the
// module's own go.mod and go.sum must be complete.
func buildEdges(out string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", out, "./cmd/pipeline-plugin-edges")
	cmd.Dir = filepath.Join(repoRoot, "examples", "edges")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%v\n%s", err, stderr.String())
	}
	return nil
}

// pipelineExe is the test binary's "pipeline" link that testscript.Main put
// on PATH.
func pipelineExe(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("pipeline")
	if err != nil {
		t.Fatalf("the pipeline command is not on PATH (TestMain sets it up): %v", err)
	}
	return p
}

// procInfo is a process found by a /proc scan.
type procInfo struct {
	pid     int
	ppid    int
	cmdline string
}

// pluginProcs returns the live plugin processes carrying mark in their
// environment: built-ins (`plugin serve`) and external plugins
// (pipeline-plugin-*). Zombies do not count: they no longer run.
func pluginProcs(mark string) []procInfo {
	want := []byte(markEnv + "=" + mark + "\x00")
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		base := filepath.Join("/proc", e.Name())
		cmd, err := os.ReadFile(filepath.Join(base, "cmdline"))
		if err != nil || len(cmd) == 0 {
			continue
		}
		cmdline := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if !strings.Contains(cmdline, "plugin serve") && !strings.Contains(cmdline, "pipeline-plugin-") {
			continue
		}
		env, err := os.ReadFile(filepath.Join(base, "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
			continue
		}
		state, ppid := procStat(base)
		if state == "Z" || state == "X" {
			continue
		}
		out = append(out, procInfo{pid: pid, ppid: ppid, cmdline: cmdline})
	}
	return out
}

// procStat reads a process's state letter and parent pid.
func procStat(base string) (state string, ppid int) {
	b, err := os.ReadFile(filepath.Join(base, "stat"))
	if err != nil {
		return "", 0
	}
	// pid (comm) state ppid ...; comm may contain spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// waitNoPlugins waits up to d for every plugin process carrying mark to be
// gone and returns the ones still alive.
func waitNoPlugins(mark string, d time.Duration) []procInfo {
	deadline := time.Now().Add(d)
	for {
		ps := pluginProcs(mark)
		if len(ps) == 0 || time.Now().After(deadline) {
			return ps
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killStray SIGKILLs the plugin processes a failed test leaves behind, so
// they do not outlive the test binary.
func killStray(mark string) {
	for _, p := range pluginProcs(mark) {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// newMark returns a mark unique to this test process and name.
func newMark(name string) string {
	return fmt.Sprintf("%d-%s-%d", os.Getpid(), strings.NewReplacer("/", "_", " ", "_").Replace(name), time.Now().UnixNano())
}
