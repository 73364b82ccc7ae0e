package pluginhost_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// hostEnv makes the test binary act as a host that starts a plugin, prints
// its pid and waits to be killed.
const hostEnv = "PLUGINS_TEST_HOST"

// TestMain lets the test binary be every program the tests need: the host's
// `plugin serve NAME` for built-ins, an external plugin when it is run
// through a symlink named pipeline-plugin-NAME, and a host to be killed.
func TestMain(m *testing.M) {
	pluginhost.RegisterBuiltin("testplug", func() sdk.Plugin { return sdktest.NewTestPlugin("testplug") })
	pluginhost.RegisterBuiltin("edges", func() sdk.Plugin { return sdktest.NewTestPlugin("edges") })
	if len(os.Args) == 4 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		f, ok := pluginhost.Builtin(os.Args[3])
		if !ok {
			fmt.Fprintf(os.Stderr, "no built-in plugin %q\n", os.Args[3])
			os.Exit(2)
		}
		sdk.Serve(f())
		return
	}
	if name, ok := strings.CutPrefix(filepath.Base(os.Args[0]), pluginhost.Prefix); ok {
		sdk.Serve(sdktest.NewTestPlugin(name))
		return
	}
	if os.Getenv(hostEnv) != "" {
		runHost()
		return
	}
	os.Exit(m.Run())
}

func runHost() {
	m := pluginhost.New(pluginhost.Options{SearchDirs: []string{}})
	p, err := m.Open(context.Background(), pluginhost.Ref{Name: "testplug"})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("pid", p.Pid())
	time.Sleep(time.Hour)
}

// syncBuffer is a log destination tests can read while plugins write.
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

func newPluginHost(t testing.TB, dirs ...string) (*pluginhost.Host, *syncBuffer) {
	t.Helper()
	return newHostWith(t, pluginhost.Options{SearchDirs: append([]string{}, dirs...)})
}

// newHostWith makes a host from opts, with a test logger and start
// timeout and no search directories unless opts sets them.
func newHostWith(t testing.TB, opts pluginhost.Options) (*pluginhost.Host, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Info, Output: logs})
	opts.StartTimeout = 20 * time.Second
	if opts.SearchDirs == nil {
		opts.SearchDirs = []string{}
	}
	m := pluginhost.New(opts)
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("host log:\n%s", logs.String())
		}
	})
	return m, logs
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t testing.TB, m *pluginhost.Host, ref pluginhost.Ref) *pluginhost.Plugin {
	t.Helper()
	p, err := m.Open(ctx(t), ref)
	if err != nil {
		t.Fatalf("open %+v: %v", ref, err)
	}
	return p
}

func load(t testing.TB, p *pluginhost.Plugin, c sdk.Capability, preset string, params sdk.Params) *pluginhost.Model {
	t.Helper()
	mdl, err := p.Load(ctx(t), sdk.LoadRequest{Capability: c, Preset: preset, Params: params})
	if err != nil {
		t.Fatalf("load %s/%s: %v", preset, c, err)
	}
	return mdl
}

func images(n, c, h, w int, seed uint64) *sdk.Tensor {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n*c*h*w)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return sdk.FromUint8(b, n, c, h, w)
}

func checkInverted(in, out *sdk.Tensor) error {
	if out == nil || len(out.Data) != len(in.Data) {
		return fmt.Errorf("output %v for input %v", out, in.Shape)
	}
	for k := range in.Data {
		if out.Data[k] != 255-in.Data[k] {
			return fmt.Errorf("byte %d: got %d, want %d", k, out.Data[k], 255-in.Data[k])
		}
	}
	return nil
}

// selfLink puts a symlink to the test binary named pipeline-plugin-NAME in
// dir: run through it, the binary serves the test plugin under NAME.
func selfLink(t testing.TB, dir, name string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, pluginhost.Prefix+name)
	if err := os.Symlink(exe, p); err != nil {
		t.Fatal(err)
	}
	return p
}

func script(t testing.TB, dir, name, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// gone reports whether a process no longer runs (a zombie counts as gone:
// where PID 1 does not reap, a dead orphan stays a zombie).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z' || s[i+2] == 'X'
	}
	return false
}

func waitGone(t testing.TB, pid int, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	t.Fatalf("process %d still runs after %v", pid, d)
}

func TestBuiltinRunsOutOfProcess(t *testing.T) {
	m, _ := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	if info := p.Info(); info.Kind != pluginhost.KindBuiltin || strings.Join(info.Args, " ") != "plugin serve testplug" {
		t.Errorf("info %+v", info)
	}
	if d := p.Description(); d.Name != "testplug" || d.Capability(sdk.CapTranslate) == nil {
		t.Errorf("description %+v", d)
	}
	if p.Pid() == os.Getpid() || p.Pid() <= 0 {
		t.Errorf("plugin pid %d (host %d)", p.Pid(), os.Getpid())
	}
	if again := open(t, m, pluginhost.Ref{Name: "testplug"}); again != p {
		t.Errorf("a second Open started another plugin")
	}
	mdl := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert"})
	in := images(3, 3, 8, 8, 1)
	out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkInverted(in, out); err != nil {
		t.Error(err)
	}
	if err := mdl.Close(); err != nil {
		t.Error(err)
	}
}

func TestPluginLogsCarryItsName(t *testing.T) {
	m, logs := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	sent := false
	err := p.Train(ctx(t), sdk.TrainRequest{}, func(context.Context) (*sdk.Batch, error) {
		if sent {
			return nil, io.EOF
		}
		sent = true
		return &sdk.Batch{Tensor: images(2, 1, 28, 28, 1)}, nil
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "plugin.testplug: trained") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "plugin.testplug: trained") {
		t.Errorf("the plugin's log line is not shown under plugin.testplug:\n%s", logs.String())
	}
}

func TestSearchDirs(t *testing.T) {
	t.Setenv(pluginhost.PathEnv, strings.Join([]string{"/a", "", "/b"}, string(os.PathListSeparator)))
	t.Setenv("XDG_DATA_HOME", "/xdg")
	if got, want := strings.Join(pluginhost.SearchDirs(), ","), "/a,/b,/xdg/genpipe/plugins"; got != want {
		t.Errorf("SearchDirs() = %s, want %s", got, want)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, want := pluginhost.DefaultDir(), "/home/u/.local/share/genpipe/plugins"; got != want {
		t.Errorf("DefaultDir() = %s, want %s", got, want)
	}
}

func TestDiscovery(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	extA := selfLink(t, a, "ext")
	selfLink(t, b, "ext") // shadowed by a
	over := selfLink(t, b, "testplug")
	script(t, a, pluginhost.Prefix+"noexec", "exit 0", 0o644)
	script(t, a, "README", "not a plugin", 0o755)

	m, logs := newPluginHost(t, a, b)
	list, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range list {
		got = append(got, fmt.Sprintf("%s %s %v", i.Name, i.Kind, i.Overrides))
	}
	if want := "edges builtin false|ext external false|testplug external true"; strings.Join(got, "|") != want {
		t.Errorf("List:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}
	if list[1].Location != extA || list[2].Location != over {
		t.Errorf("locations %s, %s; want %s, %s", list[1].Location, list[2].Location, extA, over)
	}

	p := open(t, m, pluginhost.Ref{Name: "ext"})
	if p.Description().Name != "ext" || p.Info().Location != extA {
		t.Errorf("ext: %+v from %s", p.Description().Name, p.Info().Location)
	}
	tp := open(t, m, pluginhost.Ref{Name: "testplug"})
	if tp.Info().Kind != pluginhost.KindExternal || !tp.Info().Overrides {
		t.Errorf("testplug: %+v", tp.Info())
	}
	if !strings.Contains(logs.String(), "external plugin overrides the built-in of the same name: plugin=testplug path="+over) {
		t.Errorf("no notice of the override in the log:\n%s", logs.String())
	}

	byPath := open(t, m, pluginhost.Ref{Name: "mine", Path: extA})
	if byPath.Info().Kind != pluginhost.KindPath || byPath == p {
		t.Errorf("by path: %+v", byPath.Info())
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	selfLink(t, dir, "good")
	good := filepath.Join(dir, pluginhost.Prefix+"good")
	goodSum, err := pluginhost.FileSHA256(good)
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "ran")
	script(t, dir, pluginhost.Prefix+"noexec", "exit 0", 0o644)
	hello := script(t, dir, "hello", "echo hello", 0o755)
	dies := script(t, dir, "dies", "echo 'config file missing' >&2; exit 1", 0o755)
	touch := script(t, dir, "touch", "touch "+marker, 0o755)

	tests := []struct {
		name   string
		ref    pluginhost.Ref
		want   []string
		target any
	}{
		{"missing", pluginhost.Ref{Name: "tesplug"},
			[]string{`plugin "tesplug" not found`, "pipeline-plugin-tesplug", dir, pluginhost.PathEnv, `did you mean "testplug"?`}, new(*pluginhost.NotFoundError)},
		{"not executable", pluginhost.Ref{Name: "noexec"}, []string{"not an executable file", "chmod +x"}, pluginhost.ErrNotExecutable},
		{"path not executable", pluginhost.Ref{Name: "x", Path: filepath.Join(dir, pluginhost.Prefix+"noexec")}, []string{"not an executable file"}, pluginhost.ErrNotExecutable},
		{"path missing", pluginhost.Ref{Name: "x", Path: filepath.Join(dir, "nothing")}, []string{"no such file"}, os.ErrNotExist},
		{"not a plugin", pluginhost.Ref{Name: "hello", Path: hello},
			[]string{"plugin hello: starting " + hello + `: it is not a pipeline plugin: it printed "hello" instead of the plugin handshake`}, new(*pluginhost.StartError)},
		{"exits before the handshake", pluginhost.Ref{Name: "dies", Path: dies},
			[]string{"it exited before completing the plugin handshake", "config file missing"}, new(*pluginhost.StartError)},
		{"checksum mismatch", pluginhost.Ref{Name: "touch", Path: touch, SHA256: "sha256:" + strings.Repeat("0", 64)},
			[]string{"checksum mismatch", "refusing to start it"}, new(*pluginhost.ChecksumError)},
		{"bad pin", pluginhost.Ref{Name: "good", SHA256: "sha256:xyz"}, []string{`invalid sha256 "sha256:xyz"`}, nil},
	}
	m, _ := newPluginHost(t, dir)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Open(ctx(t), tt.ref)
			if err == nil {
				t.Fatal("open succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			switch target := tt.target.(type) {
			case error:
				if !errors.Is(err, target) {
					t.Errorf("%v is not %v", err, target)
				}
			case nil:
			default:
				if !errors.As(err, target) {
					t.Errorf("%v (%T) is not a %T", err, err, target)
				}
			}
		})
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the plugin with a mismatching checksum was run")
	}
	p := open(t, m, pluginhost.Ref{Name: "good", SHA256: strings.ToUpper(goodSum)})
	if p.Description().Name != "good" {
		t.Errorf("pinned plugin: %s", p.Description().Name)
	}
}

// TestKilledMidJobRetries SIGKILLs the plugin while several goroutines have
// calls in flight: every batch must still come back, once, and correct.
func TestKilledMidJobRetries(t *testing.T) {
	m, logs := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	mdl := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert", "delay_ms": 20})
	first := p.Pid()

	const batches, workers = 40, 4
	inputs := make([]*sdk.Tensor, batches)
	for i := range inputs {
		inputs[i] = images(4, 3, 16, 16, uint64(i))
	}
	var (
		mu      sync.Mutex
		results = make([]int, batches)
		done    atomic.Int32
		killed  sync.Once
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: inputs[i]})
				if err != nil {
					t.Errorf("batch %d: %v", i, err)
					continue
				}
				if err := checkInverted(inputs[i], out); err != nil {
					t.Errorf("batch %d: %v", i, err)
				}
				mu.Lock()
				results[i]++
				mu.Unlock()
				if done.Add(1) == 8 {
					killed.Do(func() { _ = syscall.Kill(first, syscall.SIGKILL) })
				}
			}
		})
	}
	for i := range batches {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for i, n := range results {
		if n != 1 {
			t.Errorf("batch %d came back %d times", i, n)
		}
	}
	if p.Restarts() < 1 || p.Pid() == first {
		t.Errorf("restarts %d, pid %d (first %d): the plugin was not restarted", p.Restarts(), p.Pid(), first)
	}
	waitGone(t, first, 5*time.Second)
	if !strings.Contains(logs.String(), "plugin process died during a call; restarting it and retrying the call") {
		t.Errorf("no call was retried:\n%s", logs.String())
	}
}

// TestPoisonBatch sends a batch that kills the plugin every time, alongside
// good batches: only the poison batch fails, with the plugin's last words,
// and the plugin keeps serving.
func TestPoisonBatch(t *testing.T) {
	m, _ := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	mdl := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert", "delay_ms": 10})

	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := range 10 {
				in := images(2, 3, 8, 8, uint64(100*g+i))
				out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
				if err != nil {
					t.Errorf("good batch %d/%d failed: %v", g, i, err)
					continue
				}
				if err := checkInverted(in, out); err != nil {
					t.Errorf("good batch %d/%d: %v", g, i, err)
				}
			}
		})
	}
	time.Sleep(15 * time.Millisecond)
	_, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: images(2, 3, 8, 8, 7), Seeds: []uint64{1, sdktest.SeedExit}})
	wg.Wait()

	var ce *pluginhost.CrashError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *CrashError", err)
	}
	if ce.Items != 2 || ce.Call != "translate" || !strings.Contains(strings.Join(ce.Stderr, "\n"), "[ERROR] injected crash: exiting with status 3") {
		t.Errorf("crash error: %+v\n%v", ce, err)
	}
	in := images(1, 3, 8, 8, 8)
	out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
	if err != nil {
		t.Fatalf("call after the poison batch: %v", err)
	}
	if err := checkInverted(in, out); err != nil {
		t.Error(err)
	}
}

func TestPanicIsNotACrash(t *testing.T) {
	m, _ := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	pid := p.Pid()
	mdl := load(t, p, sdk.CapDenoise, "gray28", nil)
	_, err := mdl.Denoise(ctx(t), &sdk.Batch{Tensor: images(1, 1, 28, 28, 1), Seeds: []uint64{sdktest.SeedPanic}})
	var ce *pluginhost.CrashError
	if !errors.Is(err, client.ErrPanic) || errors.As(err, &ce) || err.Error() != "plugin testplug: denoise: panic: injected panic" {
		t.Errorf("got %v", err)
	}
	if p.Pid() != pid || p.Restarts() != 0 {
		t.Errorf("the plugin was restarted after a panic")
	}
}

// TestModelsReloadAfterRestart kills the plugin between calls: the next
// calls start a new process and load every model into it again.
func TestModelsReloadAfterRestart(t *testing.T) {
	m, _ := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	inv := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert"})
	gen := load(t, p, sdk.CapGenerate, "gray28", nil)
	before, err := gen.Generate(ctx(t), sdk.GenerateRequest{Seeds: []uint64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	first := p.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first, 5*time.Second)
	after, err := gen.Generate(ctx(t), sdk.GenerateRequest{Seeds: []uint64{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if string(after.Data) != string(before.Data) {
		t.Error("generate differs after the restart")
	}
	in := images(1, 3, 4, 4, 1)
	out, err := inv.Translate(ctx(t), &sdk.Batch{Tensor: in})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkInverted(in, out); err != nil {
		t.Error(err)
	}
	if p.Restarts() != 1 {
		t.Errorf("restarts %d, want 1", p.Restarts())
	}
}

func TestCloseStopsEveryPlugin(t *testing.T) {
	dir := t.TempDir()
	selfLink(t, dir, "ext")
	m, _ := newPluginHost(t, dir)
	a := open(t, m, pluginhost.Ref{Name: "testplug"})
	b := open(t, m, pluginhost.Ref{Name: "ext"})
	pids := []int{a.Pid(), b.Pid()}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		waitGone(t, pid, 5*time.Second)
	}
	if _, err := m.Open(ctx(t), pluginhost.Ref{Name: "testplug"}); !errors.Is(err, pluginhost.ErrClosed) {
		t.Errorf("open after close: %v", err)
	}
}

// TestPluginDiesWithKilledHost starts a host process that starts a plugin,
// SIGKILLs the host and expects the plugin to die too.
func TestPluginDiesWithKilledHost(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(exe)
	host.Env = append(os.Environ(), hostEnv+"=1")
	host.Stderr = os.Stderr
	stdout, err := host.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	defer host.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the host's output: %v", err)
	}
	pidStr, ok := strings.CutPrefix(strings.TrimSpace(line), "pid ")
	pid, err := strconv.Atoi(pidStr)
	if !ok || err != nil || pid <= 0 {
		t.Fatalf("host said %q", line)
	}
	if gone(pid) {
		t.Fatalf("plugin %d is not running", pid)
	}
	if err := host.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = host.Wait()
	waitGone(t, pid, 5*time.Second)
}

func TestConcurrentOpenAndCalls(t *testing.T) {
	m, _ := newPluginHost(t)
	var wg sync.WaitGroup
	ps := make([]*pluginhost.Plugin, 8)
	for i := range ps {
		wg.Go(func() {
			p, err := m.Open(ctx(t), pluginhost.Ref{Name: "edges"})
			if err != nil {
				t.Error(err)
				return
			}
			ps[i] = p
			mdl, err := p.Load(ctx(t), sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: "rgb8", Params: sdk.Params{"op": "invert"}})
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 5 {
				in := images(2, 3, 8, 8, uint64(10*i+j))
				out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
				if err != nil {
					t.Error(err)
					return
				}
				if err := checkInverted(in, out); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	for _, p := range ps[1:] {
		if p != ps[0] {
			t.Fatal("concurrent Opens started several processes")
		}
	}
}

// TestPluginLogIntegers checks that numbers in a plugin's debug log reach
// the host log as integers: go-plugin decodes the plugin's JSON log lines
// into float64s, which hclog printed as bytes="2.68435456e+08".
func TestPluginLogIntegers(t *testing.T) {
	logs := &syncBuffer{}
	m := pluginhost.New(pluginhost.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Debug, Output: logs}),
		Env:          []string{sdk.LogLevelEnv + "=debug"},
		SearchDirs:   []string{},
		StartTimeout: 20 * time.Second,
	})
	t.Cleanup(func() { m.Close() })
	open(t, m, pluginhost.Ref{Name: "testplug"})
	const line = "tensors go through shared memory"
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), line) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	var got string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, line) {
			got = l
		}
	}
	if got == "" {
		t.Fatalf("no %q line in the host log:\n%s", line, logs.String())
	}
	if !regexp.MustCompile(` bytes=[1-9][0-9]*( |$)`).MatchString(got) {
		t.Errorf("the byte count is not an integer: %s", got)
	}
}
