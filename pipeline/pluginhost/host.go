package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
)

// Options configure a Host. The zero value works.
type Options struct {
	// Logger is the host's logger. Plugin logs appear under "plugin.NAME".
	// Default: warnings and errors to stderr.
	Logger hclog.Logger
	// SearchDirs overrides the directories searched for external plugins
	// (default: SearchDirs(), read when the Host is made).
	SearchDirs []string
	// BuiltinCommand is the argv that serves a built-in, NAME appended
	// (default: the host executable with "plugin", "serve"). Tests set it
	// to re-execute the test binary.
	BuiltinCommand []string
	// StartTimeout bounds a plugin's start and handshake (default 30 s).
	StartTimeout time.Duration
	// Env adds KEY=VALUE entries to every plugin's environment.
	Env []string
	// StderrLines is how many of a plugin's last stderr lines error
	// reports include (default 20).
	StderrLines int
	// SharedMemoryBytes is the size of the memory shared with each plugin
	// process to carry tensor bytes (Linux; default
	// client.DefaultSharedMemoryBytes). A call that finds no room goes inline.
	// Negative switches shared memory off, as GENPIPE_SHM=off does.
	SharedMemoryBytes int
}

// Host finds, starts and supervises plugins. It is safe for concurrent
// use. Close it to stop every plugin process.
type Host struct {
	opts Options
	log  hclog.Logger
	dirs []string

	mu      sync.Mutex
	plugins map[string]*openEntry
	noticed map[string]bool
	closed  bool
	lock    *lockPins
}

// lockPins are the checksums a lock file pins, by plugin name.
type lockPins struct {
	file string
	sums map[string]string
}

// NotLockedError reports a plugin that a lock file does not list: in
// locked mode it is not started.
type NotLockedError struct{ Name, Lock string }

func (e *NotLockedError) Error() string {
	return fmt.Sprintf("plugin %s is not in the lock file %s; refusing to start it (run pipeline lock on a machine you trust to add it)", e.Name, e.Lock)
}

// Lock puts the host in locked mode: from now on it starts only the
// plugins sums names (plugin name -> hex sha256 of its executable, as
// pipeline lock writes them), and only when the executable has that
// checksum, at every start and restart. file names the lock in errors.
// Call it before the first Open.
func (m *Host) Lock(file string, sums map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lock = &lockPins{file: file, sums: maps.Clone(sums)}
}

// lockPin returns the lock's checksum for a plugin, and whether the host
// is locked.
func (m *Host) lockPin(name string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lock == nil {
		return "", false
	}
	return m.lock.sums[name], true
}

type openEntry struct {
	done chan struct{}
	p    *Plugin
	err  error
}

// ErrClosed is returned by calls on a closed Host or Plugin.
var ErrClosed = errors.New("plugin manager closed")

// New returns a Host.
func New(opts Options) *Host {
	if opts.Logger == nil {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "pipeline", Level: hclog.Warn, Output: os.Stderr})
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if opts.StderrLines <= 0 {
		opts.StderrLines = 20
	}
	dirs := opts.SearchDirs
	if dirs == nil {
		dirs = SearchDirs()
	}
	return &Host{opts: opts, log: opts.Logger, dirs: dirs, plugins: map[string]*openEntry{}, noticed: map[string]bool{}}
}

// Dirs returns the directories searched for external plugins.
func (m *Host) Dirs() []string { return append([]string(nil), m.dirs...) }

func (m *Host) builtinCommand(name string) (string, []string, error) {
	argv := m.opts.BuiltinCommand
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return "", nil, fmt.Errorf("plugin %s: locating the host executable to serve the built-in: %w", name, err)
		}
		argv = []string{exe, "plugin", "serve"}
	}
	return argv[0], append(append([]string(nil), argv[1:]...), name), nil
}

// List returns every known plugin, built-in and external, sorted by name.
// An external plugin that overrides a built-in is listed once, as external,
// with Overrides set.
func (m *Host) List() ([]Info, error) {
	ext := listExternal(m.dirs)
	var out []Info
	for name, path := range ext {
		_, b := Builtin(name)
		out = append(out, Info{Name: name, Kind: KindExternal, Location: path, Overrides: b})
	}
	for _, name := range Builtins() {
		if _, shadowed := ext[name]; shadowed {
			continue
		}
		exe, args, err := m.builtinCommand(name)
		if err != nil {
			return nil, err
		}
		out = append(out, Info{Name: name, Kind: KindBuiltin, Location: exe, Args: args})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Ref names a plugin as a pipeline does.
type Ref struct {
	// Name is the plugin's name (`model:`).
	Name string
	// Path, when set, is the plugin executable (`path:`); relative paths are
	// taken from the working directory, so the caller should resolve them
	// against the pipeline file first.
	Path string
	// SHA256, when set, pins the executable's checksum ("HEX" or
	// "sha256:HEX"); a mismatch refuses to start it.
	SHA256 string
}

// Resolve says which executable runs a plugin, without starting it.
func (m *Host) Resolve(ref Ref) (Info, error) {
	if ref.Path != "" {
		p, err := filepath.Abs(ref.Path)
		if err != nil {
			return Info{}, fmt.Errorf("plugin %s: %w", ref.Name, err)
		}
		if err := checkExecutable(ref.Name, p); err != nil {
			return Info{}, err
		}
		return Info{Name: ref.Name, Kind: KindPath, Location: p}, nil
	}
	path, err := findExternal(ref.Name, m.dirs)
	if err != nil {
		return Info{}, err
	}
	_, isBuiltin := Builtin(ref.Name)
	if path != "" {
		if isBuiltin {
			m.mu.Lock()
			first := !m.noticed[ref.Name]
			m.noticed[ref.Name] = true
			m.mu.Unlock()
			if first {
				m.log.Warn("external plugin overrides the built-in of the same name", "plugin", ref.Name, "path", path)
			}
		}
		return Info{Name: ref.Name, Kind: KindExternal, Location: path, Overrides: isBuiltin}, nil
	}
	if isBuiltin {
		exe, args, err := m.builtinCommand(ref.Name)
		if err != nil {
			return Info{}, err
		}
		return Info{Name: ref.Name, Kind: KindBuiltin, Location: exe, Args: args}, nil
	}
	known := Builtins()
	for n := range listExternal(m.dirs) {
		known = append(known, n)
	}
	return Info{}, &NotFoundError{Name: ref.Name, Dirs: m.Dirs(), Hint: suggest.DidYouMean(ref.Name, known)}
}

// Open returns the running plugin for ref, starting it on first use. Plugins
// are shared per (name, path, pin): a second Open returns the same *Plugin.
// Concurrent Opens of one plugin wait for a single start and share its
// result; a failed start is not remembered, so a later Open tries again.
func (m *Host) Open(ctx context.Context, ref Ref) (*Plugin, error) {
	key := ref.Name + "\x00" + ref.Path + "\x00" + ref.SHA256
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if e, ok := m.plugins[key]; ok {
		m.mu.Unlock()
		select {
		case <-e.done:
			return e.p, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e := &openEntry{done: make(chan struct{})}
	m.plugins[key] = e
	m.mu.Unlock()

	e.p, e.err = m.open(ctx, ref)
	if e.err != nil {
		m.mu.Lock()
		delete(m.plugins, key)
		m.mu.Unlock()
	}
	close(e.done)
	return e.p, e.err
}

func (m *Host) open(ctx context.Context, ref Ref) (*Plugin, error) {
	info, err := m.Resolve(ref)
	if err != nil {
		return nil, err
	}
	if sum, locked := m.lockPin(ref.Name); locked && sum == "" {
		return nil, &NotLockedError{Name: ref.Name, Lock: m.lock.file}
	}
	p := &Plugin{m: m, info: info, pin: ref.SHA256, models: map[*Model]struct{}{}}
	// go-plugin's start does not take a context: wait for it aside, so a
	// Ctrl-C during a slow or hung handshake returns at once. The process,
	// if it does come up, is then stopped (and dies with the host anyway).
	type started struct {
		pr  *proc
		err error
	}
	ch := make(chan started, 1)
	go func() {
		pr, err := p.ensure()
		ch <- started{pr, err}
	}()
	var pr *proc
	select {
	case s := <-ch:
		if s.err != nil {
			return nil, s.err
		}
		pr = s.pr
	case <-ctx.Done():
		go func() {
			if s := <-ch; s.err == nil {
				p.Close()
			}
		}()
		return nil, fmt.Errorf("plugin %s: start: %w", info.Name, ctx.Err())
	}
	desc, err := pr.rpc.Describe(ctx)
	if err != nil {
		p.Close()
		return nil, err
	}
	if desc.Name != info.Name {
		m.log.Warn("plugin describes itself under another name", "plugin", info.Name, "describes", desc.Name, "path", info.Location)
	}
	p.desc = desc
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		p.Close()
		return nil, ErrClosed
	}
	return p, nil
}

// Close stops every plugin process the host started.
func (m *Host) Close() error {
	m.mu.Lock()
	m.closed = true
	var ps []*Plugin
	for _, e := range m.plugins {
		select {
		case <-e.done:
			if e.p != nil {
				ps = append(ps, e.p)
			}
		default:
		}
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.Close)
	}
	wg.Wait()
	return nil
}

// Plugin is a supervised plugin: one process at a time, restarted when it
// dies. Its methods are safe for concurrent use.
type Plugin struct {
	m    *Host
	info Info
	pin  string
	desc sdk.Description

	// exclusive is held shared by calls and exclusively by a call that is
	// retried after a crash, so a batch that kills the process is retried
	// alone and is the only one reported.
	exclusive sync.RWMutex

	mu       sync.Mutex
	cur      *proc
	gen      int
	restarts int
	models   map[*Model]struct{}
	closed   bool

	// Recycling (SetRecycle): the limits, the items the current process
	// has served, and how many processes were replaced for them.
	maxItems  int
	maxRSS    int64
	items     int
	recycles  int
	recycling bool // the next start replaces a recycled process, not a dead one
}

// SetRecycle makes the plugin replace its process, between batches, once
// the process has served maxItems items or its resident memory exceeds
// maxRSS bytes (0: no limit): long-running model servers are known to grow
// (ComfyUI #11301, diffusers #6398), and a fresh process gives the memory
// back. Calls in flight finish first; no item is lost or repeated, and the
// new process loads every live model again. Resident memory is read from
// /proc (Linux); elsewhere maxRSS is not checked.
func (p *Plugin) SetRecycle(maxItems int, maxRSS int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxItems, p.maxRSS = maxItems, maxRSS
}

// Recycles counts the processes replaced because of SetRecycle's limits.
func (p *Plugin) Recycles() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.recycles
}

// served counts n items done by process pr and, when a limit is reached,
// replaces it: it waits for the calls in flight (they hold exclusive
// shared), then stops the process; the next call starts a new one.
func (p *Plugin) served(pr *proc, n int) {
	p.mu.Lock()
	if p.cur != pr || (p.maxItems == 0 && p.maxRSS == 0) {
		p.mu.Unlock()
		return
	}
	p.items += n
	why := ""
	if p.maxItems > 0 && p.items >= p.maxItems {
		why = fmt.Sprintf("served %d items (max_items %d)", p.items, p.maxItems)
	} else if p.maxRSS > 0 {
		if rss, ok := residentBytes(pr.pid); ok && rss > p.maxRSS {
			why = fmt.Sprintf("resident memory %d MiB above max_rss %d MiB", rss>>20, p.maxRSS>>20)
		}
	}
	p.mu.Unlock()
	if why == "" {
		return
	}
	p.exclusive.Lock()
	defer p.exclusive.Unlock()
	p.mu.Lock()
	if p.cur != pr {
		p.mu.Unlock()
		return // replaced meanwhile (another call recycled it, or it died)
	}
	p.cur, p.recycling = nil, true
	p.recycles++
	p.mu.Unlock()
	p.m.log.Info("recycling plugin process", "plugin", p.info.Name, "pid", pr.pid, "reason", why)
	pr.kill()
}

// Info says what runs the plugin.
func (p *Plugin) Info() Info { return p.info }

// Description is the plugin's description, read once at start.
func (p *Plugin) Description() sdk.Description { return p.desc }

// Pid is the process id of the current plugin process (0 when none runs).
func (p *Plugin) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.pid
}

// SharedMemoryStats returns the counters of the memory the current process
// shares with the host; ok is false when its tensors go inline (or no
// process runs).
func (p *Plugin) SharedMemoryStats() (stats client.SharedMemoryStats, ok bool) {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur == nil {
		return client.SharedMemoryStats{}, false
	}
	return cur.rpc.SharedMemoryStats()
}

// Restarts counts the processes started after the first.
func (p *Plugin) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Stderr returns the last lines the current (or last) process wrote to
// stderr.
func (p *Plugin) Stderr() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return nil
	}
	return p.cur.stderr.Lines()
}

// Close stops the plugin's process. Models loaded from it stop working.
func (p *Plugin) Close() {
	p.mu.Lock()
	p.closed = true
	cur := p.cur
	p.cur = nil
	p.mu.Unlock()
	if cur != nil {
		cur.kill()
	}
}

// ensure returns the running process, starting one (and loading every live
// model into it) when there is none.
func (p *Plugin) ensure() (*proc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("plugin %s: %w", p.info.Name, ErrClosed)
	}
	if p.cur != nil && !p.cur.exited() {
		return p.cur, nil
	}
	if old := p.cur; old != nil {
		// Died between calls: no call needs retrying.
		p.m.log.Warn("plugin process exited; restarting it", "plugin", p.info.Name, "pid", old.pid)
		p.cur = nil
		go old.kill()
	}
	p.gen++
	pr, err := p.m.launch(p.info, p.pin, p.gen)
	if err != nil {
		return nil, err
	}
	if p.gen > 1 && !p.recycling {
		p.restarts++
	}
	p.cur, p.items, p.recycling = pr, 0, false
	for mdl := range p.models {
		// Best effort: a model that fails to load here retries (and
		// reports) on its next call.
		ctx, cancel := context.WithTimeout(context.Background(), p.m.opts.StartTimeout)
		_ = mdl.loadIn(ctx, pr)
		cancel()
	}
	return pr, nil
}

// discard drops a process that failed under a call, unless it was already
// replaced, and kills it.
func (p *Plugin) discard(pr *proc) {
	p.mu.Lock()
	if p.cur == pr {
		p.cur = nil
	}
	p.mu.Unlock()
	pr.kill()
}

// crashed reports whether err means the process died (or its connection
// broke) under the call, as opposed to an error of the plugin or the caller.
func crashed(ctx context.Context, pr *proc, err error) bool {
	if pr == nil || err == nil || ctx.Err() != nil {
		return false
	}
	if errors.Is(err, client.ErrConnection) {
		return true
	}
	return pr.exited()
}

// CrashError reports a call during which the plugin process died twice: once
// on the first attempt and again when the call was retried alone in a fresh
// process. The items of that call failed; later calls use a new process.
type CrashError struct {
	Plugin string
	Call   string
	// Items is the number of items of the failed call.
	Items int
	// Stderr holds the last lines the process wrote before it died.
	Stderr []string
	// Err is the error of the second attempt.
	Err error
}

func (e *CrashError) Error() string {
	s := fmt.Sprintf("plugin %s: %s: the plugin process died on this batch of %d items twice (first attempt and retry): %v",
		e.Plugin, e.Call, e.Items, e.Err)
	if len(e.Stderr) > 0 {
		s += "\n  its stderr ended with:\n    " + strings.Join(e.Stderr, "\n    ")
	}
	return s
}

func (e *CrashError) Unwrap() error { return e.Err }

// Load prepares a model for one stage. The plugin reloads it by itself after
// a restart.
func (p *Plugin) Load(ctx context.Context, req sdk.LoadRequest) (*Model, error) {
	mdl := &Model{p: p, req: req}
	p.exclusive.RLock()
	defer p.exclusive.RUnlock()
	pr, err := p.ensure()
	if err != nil {
		return nil, err
	}
	if err := mdl.loadIn(ctx, pr); err != nil {
		if !crashed(ctx, pr, err) {
			return nil, err
		}
		// The process died while loading: try once more in a new one.
		p.discard(pr)
		if pr, err = p.ensure(); err != nil {
			return nil, err
		}
		if err := mdl.loadIn(ctx, pr); err != nil {
			if crashed(ctx, pr, err) {
				p.discard(pr)
				return nil, &CrashError{Plugin: p.info.Name, Call: "load", Stderr: pr.stderr.Lines(), Err: err}
			}
			return nil, err
		}
	}
	p.mu.Lock()
	p.models[mdl] = struct{}{}
	p.mu.Unlock()
	return mdl, nil
}

// Train runs a training run in the plugin (see client.Client.Train). A crash
// is not retried, since the data already consumed cannot be replayed; it is
// reported as a *CrashError.
func (p *Plugin) Train(ctx context.Context, req sdk.TrainRequest, next func(context.Context) (*sdk.Batch, error), onEvent func(sdk.TrainEvent), onWeights func(w []byte, final bool)) error {
	p.exclusive.RLock()
	defer p.exclusive.RUnlock()
	pr, err := p.ensure()
	if err != nil {
		return err
	}
	err = pr.rpc.Train(ctx, req, next, onEvent, onWeights)
	if crashed(ctx, pr, err) {
		p.discard(pr)
		return &CrashError{Plugin: p.info.Name, Call: "train", Stderr: pr.stderr.Lines(), Err: err}
	}
	return err
}

// Model is a model loaded in a supervised plugin. Its methods are safe for
// concurrent use; after a plugin restart they load the model again.
type Model struct {
	p   *Plugin
	req sdk.LoadRequest

	mu     sync.Mutex
	gen    int // process generation the handle belongs to
	handle client.Handle
	closed bool
}

// Request is the load request the model was made with.
func (m *Model) Request() sdk.LoadRequest { return m.req }

// loadIn loads the model into process pr unless it already is.
func (m *Model) loadIn(ctx context.Context, pr *proc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("plugin %s: model closed", m.p.info.Name)
	}
	if m.gen == pr.gen {
		return nil
	}
	h, err := pr.rpc.Load(ctx, m.req)
	if err != nil {
		return err
	}
	m.gen, m.handle = pr.gen, h
	return nil
}

func (m *Model) handleIn(ctx context.Context, pr *proc) (client.Handle, error) {
	if err := m.loadIn(ctx, pr); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handle, nil
}

// Close unloads the model.
func (m *Model) Close() error {
	m.mu.Lock()
	m.closed = true
	gen, h := m.gen, m.handle
	m.mu.Unlock()
	p := m.p
	p.mu.Lock()
	delete(p.models, m)
	cur := p.cur
	p.mu.Unlock()
	if cur != nil && cur.gen == gen && !cur.exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return cur.rpc.Unload(ctx, h)
	}
	return nil
}

// Encode maps images to latents.
func (m *Model) Encode(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	return m.do(ctx, "encode", batchLen(in), func(c *client.Client, h client.Handle) (*sdk.Tensor, error) {
		return c.Encode(ctx, h, in)
	})
}

// Translate maps images to images.
func (m *Model) Translate(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	return m.do(ctx, "translate", batchLen(in), func(c *client.Client, h client.Handle) (*sdk.Tensor, error) {
		return c.Translate(ctx, h, in)
	})
}

// Denoise removes noise from images.
func (m *Model) Denoise(ctx context.Context, in *sdk.Batch) (*sdk.Tensor, error) {
	return m.do(ctx, "denoise", batchLen(in), func(c *client.Client, h client.Handle) (*sdk.Tensor, error) {
		return c.Denoise(ctx, h, in)
	})
}

// Generate makes one image per seed (or per latent).
func (m *Model) Generate(ctx context.Context, req sdk.GenerateRequest) (*sdk.Tensor, error) {
	n := len(req.Seeds)
	if n == 0 && req.Latents != nil {
		n = req.Latents.Len()
	}
	return m.do(ctx, "generate", n, func(c *client.Client, h client.Handle) (*sdk.Tensor, error) {
		return c.Generate(ctx, h, req)
	})
}

func batchLen(b *sdk.Batch) int {
	if b == nil || b.Tensor == nil {
		return 0
	}
	return b.Len()
}

// do runs one call with supervision: when the process dies under it, the
// process is replaced and the call retried once, alone; a second death is
// a *CrashError.
func (m *Model) do(ctx context.Context, call string, items int, fn func(*client.Client, client.Handle) (*sdk.Tensor, error)) (*sdk.Tensor, error) {
	p := m.p
	p.exclusive.RLock()
	out, pr, err := m.attempt(ctx, fn)
	p.exclusive.RUnlock()
	if err == nil {
		p.served(pr, items)
	}
	if !crashed(ctx, pr, err) {
		return out, err
	}
	p.m.log.Warn("plugin process died during a call; restarting it and retrying the call",
		"plugin", p.info.Name, "call", call, "pid", pr.pid, "error", err.Error())
	p.exclusive.Lock()
	p.discard(pr)
	out, pr, err = m.attempt(ctx, fn)
	if !crashed(ctx, pr, err) {
		p.exclusive.Unlock()
		if err == nil {
			p.served(pr, items)
		}
		return out, err
	}
	p.discard(pr)
	p.exclusive.Unlock()
	return nil, &CrashError{Plugin: p.info.Name, Call: call, Items: items, Stderr: pr.stderr.Lines(), Err: err}
}

func (m *Model) attempt(ctx context.Context, fn func(*client.Client, client.Handle) (*sdk.Tensor, error)) (*sdk.Tensor, *proc, error) {
	pr, err := m.p.ensure()
	if err != nil {
		return nil, nil, err
	}
	h, err := m.handleIn(ctx, pr)
	if err != nil {
		return nil, pr, err
	}
	out, err := fn(pr.rpc, h)
	return out, pr, err
}
