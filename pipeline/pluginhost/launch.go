package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
)

// proc is one running plugin process.
type proc struct {
	client *plugin.Client
	rpc    *client.Client
	pid    int
	gen    int
	stderr *stderrTail
	// shm carries the tensor bytes of calls; nil when they go inline.
	shm *client.SharedMemory

	killOnce sync.Once
}

// exited reports whether the process is gone.
func (p *proc) exited() bool { return p.client.Exited() }

// kill stops the process (gracefully if it still answers) and waits for it,
// then releases its shared memory (once calls still copying are done).
func (p *proc) kill() {
	p.killOnce.Do(func() {
		p.client.Kill()
		if p.shm != nil {
			_ = p.shm.Close()
		}
	})
}

// StartError reports a plugin that could not be started or did not complete
// the handshake.
type StartError struct {
	Name, Path string
	// Reason says what went wrong in words for the user.
	Reason string
	// Stderr holds the last lines the program wrote to stderr.
	Stderr []string
	Err    error
}

func (e *StartError) Error() string {
	s := fmt.Sprintf("plugin %s: starting %s: %s", e.Name, e.Path, e.Reason)
	if len(e.Stderr) > 0 {
		s += "\n  its stderr ended with:\n    " + strings.Join(e.Stderr, "\n    ")
	}
	return s
}

func (e *StartError) Unwrap() error { return e.Err }

// ChecksumError reports a plugin executable whose sha256 is not the pinned
// one. The process was not started.
type ChecksumError struct {
	Name, Path string
	Want, Got  string
	// Lock is the lock file that pinned the checksum ("": the pipeline's
	// plugins: entry did).
	Lock string
}

// ChecksumMismatch marks the error for callers that cannot import this
// package (the planner positions it at the pipeline's sha256: value).
func (e *ChecksumError) ChecksumMismatch() bool { return true }

func (e *ChecksumError) Error() string {
	by := "the pipeline pins"
	if e.Lock != "" {
		by = "the lock file " + e.Lock + " pins"
	}
	return fmt.Sprintf("plugin %s: checksum mismatch for %s: %s sha256:%s but the file has sha256:%s; refusing to start it",
		e.Name, e.Path, by, e.Want, e.Got)
}

// parseSHA256 accepts "HEX" or "sha256:HEX".
func parseSHA256(s string) ([]byte, error) {
	h := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("invalid sha256 %q: want 64 hex digits, optionally prefixed by \"sha256:\"", s)
	}
	return b, nil
}

// FileSHA256 returns the hex sha256 of a file, as a pipeline pins it.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// verifyChecksum checks path against a pin with go-plugin's SecureConfig.
// go-plugin cannot do it itself here because the process is started by our
// own runner (see threadRunner), which its SecureConfig does not support.
func verifyChecksum(name, path, pin string) error {
	want, err := parseSHA256(pin)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	ok, err := (&plugin.SecureConfig{Checksum: want, Hash: sha256.New()}).Check(path)
	if err != nil {
		return fmt.Errorf("plugin %s: verifying the checksum of %s: %w", name, path, err)
	}
	if !ok {
		got, _ := FileSHA256(path)
		return &ChecksumError{Name: name, Path: path, Want: hex.EncodeToString(want), Got: got}
	}
	return nil
}

// launch starts one process for info and completes the handshake.
func (m *Host) launch(info Info, pin string, gen int) (*proc, error) {
	if pin != "" {
		if err := verifyChecksum(info.Name, info.Location, pin); err != nil {
			return nil, err
		}
	}
	if lp, ok := m.lockPin(info.Name); ok {
		// Checked at every start, restarts after a crash included, so a
		// binary swapped while the job runs is refused too.
		err := verifyChecksum(info.Name, info.Location, lp)
		var ce *ChecksumError
		if errors.As(err, &ce) {
			ce.Lock = m.lock.file
		}
		if err != nil {
			return nil, err
		}
	}
	tail := newStderrTail(m.opts.StderrLines)
	log := m.log.Named("plugin")
	named := log.Named(info.Name)
	// A fresh memory per process: a call still running in a dead process
	// can then never touch the memory of its successor.
	shm := m.newSharedMemory(info.Name)
	cc := client.NewClientConfig(nil)
	cc.Cmd = nil
	cc.RunnerFunc = func(l hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
		cmd := exec.Command(info.Location, info.Args...)
		// spec carries the host's environment and go-plugin's handshake
		// variables; the host's own settings go last so they win. A
		// memory named in the host's own environment is not passed on.
		cmd.Env = slices.DeleteFunc(append(spec.Env, m.env()...), func(kv string) bool {
			return strings.HasPrefix(kv, "GENPIPE_SHM_FD=") || strings.HasPrefix(kv, "GENPIPE_SHM_SIZE=")
		})
		if shm != nil {
			shm.Attach(cmd)
		}
		cmd.Stdin = nil
		setParentDeathSignal(cmd)
		return newThreadRunner(info.Name, cmd)
	}
	cc.Managed = true
	// go-plugin re-logs the plugin's JSON log lines through this logger,
	// with numbers decoded as float64: wholeNumbers prints them back as
	// the integers they were (bytes=268435456, not "2.68435456e+08").
	cc.Logger = wholeNumbers{log}
	cc.Stderr = tail
	cc.SyncStderr = &lineLogger{log: named, stream: "stderr", tail: tail}
	cc.SyncStdout = &lineLogger{log: named, stream: "stdout"}
	cc.StartTimeout = m.opts.StartTimeout
	pc := plugin.NewClient(cc)
	rpc, err := client.Dispense(pc)
	if err != nil {
		pc.Kill()
		if shm != nil {
			_ = shm.Close()
		}
		return nil, startError(info, err, tail.Lines(), m.opts.StartTimeout.String())
	}
	pid, _ := strconv.Atoi(pc.ID())
	pr := &proc{client: pc, rpc: rpc, pid: pid, gen: gen, stderr: tail}
	if shm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.opts.StartTimeout)
		ok, err := rpc.UseSharedMemory(ctx, shm)
		cancel()
		switch {
		case ok:
			pr.shm = shm
		case err != nil:
			// The next call finds out what happened to the process.
			named.Debug("cannot ask the plugin about shared memory; tensors go inline", "error", err.Error())
			_ = shm.Close()
		default:
			// An older SDK, or the plugin refused it: inline, as before.
			named.Debug("the plugin does not use shared memory; tensors go inline")
			_ = shm.Close()
		}
	}
	return pr, nil
}

// newSharedMemory creates the memory for one plugin process, or returns nil
// when tensors go inline (switched off, or not supported here).
func (m *Host) newSharedMemory(name string) *client.SharedMemory {
	size := m.opts.SharedMemoryBytes
	if size < 0 || !client.SharedMemoryEnabled() {
		return nil
	}
	if size == 0 {
		size = client.DefaultSharedMemoryBytes
	}
	shm, err := client.NewSharedMemory(size)
	if err != nil {
		m.log.Named("plugin").Named(name).Debug("no shared memory; tensors go inline", "error", err.Error())
		return nil
	}
	return shm
}

// env is the environment the host adds for plugin processes.
func (m *Host) env() []string {
	env := append([]string(nil), m.opts.Env...)
	if os.Getenv(sdk.LogLevelEnv) == "" {
		// Let plugins log at the level the host shows.
		if l := m.log.GetLevel(); l != hclog.NoLevel && l != hclog.Off {
			env = append([]string{sdk.LogLevelEnv + "=" + l.String()}, env...)
		}
	}
	return env
}

// startError explains a failed start in the user's terms.
func startError(info Info, err error, stderr []string, timeout string) error {
	e := &StartError{Name: info.Name, Path: info.Location, Stderr: stderr, Err: err}
	msg := err.Error()
	switch {
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		e.Reason = "the executable does not exist: " + msg
	case errors.Is(err, os.ErrPermission):
		e.Reason = "the file cannot be executed: " + msg
	case strings.Contains(msg, "exec format error"):
		e.Reason = "the file is not a program for this system (exec format error)"
	case strings.Contains(msg, "Unrecognized remote plugin message") && !strings.Contains(msg, "Failed to read any lines"):
		first := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(msg, "\n", 2)[0], "Unrecognized remote plugin message:"))
		e.Reason = fmt.Sprintf("it is not a pipeline plugin: it printed %q instead of the plugin handshake "+
			"(a plugin's main must call sdk.Serve and print nothing to stdout before it)", first)
	case strings.Contains(msg, "plugin exited before we could connect") || strings.Contains(msg, "Failed to read any lines"):
		e.Reason = "it exited before completing the plugin handshake (is it a pipeline plugin built with sdk.Serve?)"
	case strings.Contains(msg, "Incompatible API version") || strings.Contains(msg, "incompatible core API version"):
		e.Reason = fmt.Sprintf("it speaks another protocol version (this host speaks version %d): %s", client.ProtocolVersion, msg)
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		e.Reason = "it did not complete the plugin handshake within " + timeout + " (is it a pipeline plugin built with sdk.Serve?)"
	case strings.Contains(msg, "unsupported plugin protocol"):
		e.Reason = "it is a go-plugin program of another kind (net/rpc, not gRPC): " + msg
	default:
		e.Reason = msg
	}
	return e
}

// threadRunner runs the plugin process for go-plugin. It starts the process
// from a goroutine locked to its OS thread and keeps that thread alive until
// the process has exited: Linux ties the parent-death signal to the thread
// that forked the child, so the signal fires when the host dies, not when
// the Go scheduler happens to retire a thread.
type threadRunner struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
	release        chan struct{}
	releaseOnce    sync.Once
	pid            int
}

var _ runner.Runner = (*threadRunner)(nil)

func newThreadRunner(name string, cmd *exec.Cmd) (*threadRunner, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &threadRunner{name: name, cmd: cmd, stdout: stdout, stderr: stderr, release: make(chan struct{})}, nil
}

func (r *threadRunner) Start(context.Context) error {
	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, its thread exits
		// too, which SIGKILLs the child if it is somehow still alive.
		runtime.LockOSThread()
		err := r.cmd.Start()
		started <- err
		if err != nil {
			return
		}
		<-r.release
	}()
	if err := <-started; err != nil {
		return err
	}
	r.pid = r.cmd.Process.Pid
	return nil
}

func (r *threadRunner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.releaseOnce.Do(func() { close(r.release) })
	return err
}

func (r *threadRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *threadRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *threadRunner) Stderr() io.ReadCloser { return r.stderr }

// Name is the plugin's name: go-plugin logs the plugin's stderr under it.
func (r *threadRunner) Name() string                    { return r.name }
func (r *threadRunner) ID() string                      { return strconv.Itoa(r.pid) }
func (r *threadRunner) Diagnose(context.Context) string { return "" }

func (r *threadRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *threadRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
