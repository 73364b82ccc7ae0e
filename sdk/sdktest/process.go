package sdktest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/genpipe/genpipe/sdk/client"
)

// Process is a plugin process launched for a test. It is killed when the
// test that started it ends.
type Process struct {
	// Client talks to the plugin.
	Client *client.Client
	// Pid is the plugin's process id.
	Pid int
	// Path is the executable that was run.
	Path string
	// Version is the negotiated protocol version.
	Version int

	pc   *plugin.Client
	logs *lineBuffer
}

// SharedMemory reports whether the process's tensors go through shared
// memory (as with the pipeline host on Linux) rather than inline.
func (p *Process) SharedMemory() bool {
	_, ok := p.Client.SharedMemoryStats()
	return ok
}

// Logs returns everything the plugin wrote to stderr so far (its hclog lines
// and any raw output such as a panic's stack).
func (p *Process) Logs() string { return p.logs.String() }

// Kill stops the plugin process and waits for it to exit.
func (p *Process) Kill() { p.pc.Kill() }

// Exited reports whether the plugin process has exited.
func (p *Process) Exited() bool { return p.pc.Exited() }

// Start builds the plugin (when cfg.Package is set) and launches it as a real
// process through the same go-plugin handshake the host uses. It stops the
// test with a clear message when the program is not a working plugin.
func Start(tb testing.TB, cfg Config) *Process {
	tb.Helper()
	argv, err := command(tb, cfg)
	if err != nil {
		tb.Fatalf("sdktest: %v", err)
		return nil
	}
	logs := &lineBuffer{}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	// Like the pipeline host, offer shared memory for tensor bytes, so the
	// plugin is tested on the path it runs on.
	var shm *client.SharedMemory
	if client.SharedMemoryEnabled() {
		shm, _ = client.NewSharedMemory(client.DefaultSharedMemoryBytes)
	}
	if shm != nil {
		shm.Attach(cmd)
	}
	cc := client.NewClientConfig(cmd)
	// cmd.Env already holds the host's environment; go-plugin appending it
	// again would let it override cfg.Env.
	cc.SkipHostEnv = true
	cc.Logger = hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: logs, Level: hclog.Debug})
	cc.SyncStderr = logs
	cc.StartTimeout = cfg.timeout()
	pc := plugin.NewClient(cc)
	tb.Cleanup(func() {
		pc.Kill()
		if shm != nil {
			_ = shm.Close()
		}
		if tb.Failed() {
			tb.Logf("sdktest: plugin %s log:\n%s", argv[0], logs.String())
		}
	})
	client, err := client.Dispense(pc)
	if err != nil {
		tb.Fatalf("sdktest: %s did not complete the plugin handshake: %v\n"+
			"(a plugin's main must call sdk.Serve and print nothing to stdout; its stderr:\n%s)", argv[0], err, logs.String())
		return nil
	}
	if shm != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout())
		_, err := client.UseSharedMemory(ctx, shm)
		cancel()
		if err != nil {
			tb.Fatalf("sdktest: %s: %v", argv[0], err)
			return nil
		}
	}
	pid, _ := strconv.Atoi(pc.ID())
	return &Process{Client: client, Pid: pid, Path: argv[0], Version: pc.NegotiatedVersion(), pc: pc, logs: logs}
}

var buildMu sync.Mutex

// command returns the argv that runs the plugin, building it first when the
// config names a package.
func command(tb testing.TB, cfg Config) ([]string, error) {
	if cfg.Package == "" {
		if len(cfg.Command) == 0 {
			return nil, fmt.Errorf("config has neither Package nor Command")
		}
		return cfg.Command, nil
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			goTool = filepath.Join(root, "bin", "go")
		} else {
			return nil, fmt.Errorf("building %s: the go tool is not on PATH", cfg.Package)
		}
	}
	out := filepath.Join(tb.TempDir(), "plugin")
	buildMu.Lock()
	defer buildMu.Unlock()
	build := exec.Command(goTool, "build", "-o", out, cfg.Package)
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", cfg.Package, err, b)
	}
	return append([]string{out}, cfg.Command...), nil
}

// lineBuffer collects log output for test reports, bounded so a chatty
// plugin cannot exhaust memory.
type lineBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const maxLogBytes = 1 << 20

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len()+len(p) > maxLogBytes {
		keep := b.buf.Bytes()[b.buf.Len()/2:]
		rest := append([]byte("[... earlier log lines dropped ...]\n"), keep...)
		b.buf.Reset()
		b.buf.Write(rest)
	}
	return b.buf.Write(p)
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
