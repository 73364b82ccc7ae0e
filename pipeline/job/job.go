// Package job turns a checked plan into a running job: it opens the plugins a
// pipeline names, loads one model per model stage, wires host stages and model
// stages to the executor, and closes everything when the job ends. It is the
// one place that knows spec, plan, stages, plugins and run together.
package job

import (
	"context"
	"fmt"
	"github.com/genpipe/genpipe/pipeline/item"
	"os"
	"runtime"
	"sync"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
)

// Check parses and plans a pipeline file, returning every problem at once,
// sorted by position. Plugins it starts to read their descriptions stay open
// in m for a following Run; the caller closes m.
func Check(ctx context.Context, m *pluginhost.Host, file string, data []byte, overrides []string, seed *uint64) (*plan.Plan, spec.Errors) {
	s, errs := spec.Parse(file, data, overrides)
	if s == nil {
		errs.Sort()
		return nil, errs
	}
	p, perrs := plan.Build(ctx, s, Describer{M: m}, plan.Options{Seed: seed})
	errs = append(errs, perrs...)
	errs.Sort()
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// CheckFile reads file and calls Check; a file that cannot be read is
// reported as an error at the file.
func CheckFile(ctx context.Context, m *pluginhost.Host, file string, overrides []string, seed *uint64) (*plan.Plan, spec.Errors) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, spec.Errors{spec.Errorf(spec.Pos{File: file}, "", "%v", err)}
	}
	return Check(ctx, m, file, data, overrides, seed)
}

// Describer adapts a plugin host to the planner: describing a model starts
// its plugin (once) and asks it.
type Describer struct{ M *pluginhost.Host }

var _ plan.Describer = Describer{}

// Describe starts (or reuses) the plugin and returns its description.
func (d Describer) Describe(ctx context.Context, model, path, sha string) (*sdk.Description, error) {
	p, err := d.M.Open(ctx, pluginhost.Ref{Name: model, Path: path, SHA256: sha})
	if err != nil {
		return nil, err
	}
	desc := p.Description()
	return &desc, nil
}

// Known lists the names of every plugin the host can find.
func (d Describer) Known() []string {
	infos, err := d.M.List()
	if err != nil {
		return nil
	}
	names := make([]string, 0, len(infos))
	for _, i := range infos {
		names = append(names, i.Name)
	}
	return names
}

// Options configure a job run.
type Options struct {
	// OnError is the error policy.
	OnError run.Policy
	// Overwrite rewrites existing outputs (default: skip them, i.e. resume).
	Overwrite bool
	// ShardIndex and ShardCount select a deterministic slice of the items.
	ShardIndex, ShardCount int
	// Select, when set, keeps only the source items it accepts (see
	// run.Options.Select).
	Select func(stage string, index int) bool
	// SelectLast: see run.Options.SelectLast.
	SelectLast func(stage string) int
	// Models, when set, keeps the models a run loads for the next run of
	// the same plan (a queue worker runs one plan batch after batch:
	// loading a model costs more than a batch). Close it when done.
	Models *Models
	// Progress receives executor events.
	Progress func(run.Event)
	// Workers sizes host stage worker pools (<= 0: the number of CPUs).
	Workers int
	// ModelWorkers is the number of batches in flight per model stage
	// (<= 0: 2, so one batch crosses the boundary while another computes).
	ModelWorkers int
}

// Run executes a plan. Models are loaded before any item moves, so a bad
// weights file fails the job before it writes anything.
func Run(ctx context.Context, p *plan.Plan, m *pluginhost.Host, opt Options) (*run.Result, error) {
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	if opt.ModelWorkers <= 0 {
		opt.ModelWorkers = 2
	}
	b := &builder{plan: p, m: m, opt: opt, mu: &sync.Mutex{}, hashes: map[string]string{}}
	if ms := opt.Models; ms != nil {
		ms.mu.Lock()
		if ms.hashes == nil {
			ms.hashes = map[string]string{}
		}
		b.mu, b.hashes = &ms.mu, ms.hashes
		ms.mu.Unlock()
	}
	nodes, err := b.build(ctx)
	defer b.close()
	if err != nil {
		return nil, err
	}
	return run.Execute(ctx, nodes, run.Options{
		Seed:       p.Seed,
		ShardIndex: opt.ShardIndex,
		ShardCount: opt.ShardCount,
		Select:     opt.Select,
		SelectLast: opt.SelectLast,
		OnError:    opt.OnError,
		Overwrite:  opt.Overwrite,
		Progress:   opt.Progress,
	})
}

type builder struct {
	plan   *plan.Plan
	m      *pluginhost.Host
	opt    Options
	models []*pluginhost.Model

	mu     *sync.Mutex       // guards hashes (shared with opt.Models when set)
	hashes map[string]string // executable path -> sha256, for provenance
}

func (b *builder) close() {
	for _, m := range b.models {
		_ = m.Close()
	}
}

func (b *builder) build(ctx context.Context) ([]*run.Task, error) {
	byID := map[string]*run.Task{}
	var nodes []*run.Task
	for _, pn := range b.plan.Stages {
		n, err := b.node(ctx, pn)
		if err != nil {
			return nil, fmt.Errorf("stage %q: %w", pn.ID, err)
		}
		n.ID, n.Kind = pn.ID, string(pn.Kind)
		if k := pn.Keep; k != nil {
			n.Keep = func(it item.Item) (bool, error) {
				v, ok := it.Scores[k.Score]
				if !ok {
					return false, fmt.Errorf("keep: the item has no score %q", k.Score)
				}
				return k.Pass(v), nil
			}
		}
		for _, in := range pn.Inputs {
			n.Inputs = append(n.Inputs, byID[in])
		}
		byID[pn.ID] = n
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// fileHash returns the sha256 of an executable, computed once per job
// ("" when it cannot be read: provenance then omits it).
func (b *builder) fileHash(path string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	h, ok := b.hashes[path]
	if !ok {
		h, _ = pluginhost.FileSHA256(path)
		b.hashes[path] = h
	}
	return h
}

// Models keeps the models of a plan's stages loaded across runs (see
// Options.Models). The zero value is ready; runs may share it concurrently.
type Models struct {
	mu      sync.Mutex
	byStage map[string]*pluginhost.Model
	// hashes are the plugin executables' sha256 for provenance: hashing
	// a 60 MB binary per batch cost more than the batch.
	hashes map[string]string
}

// Close unloads the models.
func (ms *Models) Close() {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	for _, m := range ms.byStage {
		_ = m.Close()
	}
	ms.byStage = nil
}
