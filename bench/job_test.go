package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/item"
	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/plugins/classic"
	"github.com/genpipe/genpipe/sdk"
)

// benchN is the number of images of a benchmark job: GENPIPE_BENCH_N, or
// 500 so that `go test -bench .` stays quick. The reported numbers use
// GENPIPE_BENCH_N=10000.
func benchN(tb testing.TB) int {
	s := os.Getenv("GENPIPE_BENCH_N")
	if s == "" {
		return 500
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 10 {
		tb.Fatalf("GENPIPE_BENCH_N=%q: expected a number of images >= 10", s)
	}
	return n
}

// tuning holds experiment knobs read from the environment; zero values
// keep pipeline/job's defaults. GENPIPE_BENCH_WORKERS sets the host stages'
// worker pools, GENPIPE_BENCH_MODEL_WORKERS the batches in flight per model
// stage, GENPIPE_BENCH_BATCH the model stage's batch size (both modes);
// GENPIPE_BENCH_SAVE adds keys to the save stage (e.g. "provenance: none").
var tuning = struct {
	workers, modelWorkers, batch int
	save                         string
}{
	envInt("GENPIPE_BENCH_WORKERS"), envInt("GENPIPE_BENCH_MODEL_WORKERS"), envInt("GENPIPE_BENCH_BATCH"),
	os.Getenv("GENPIPE_BENCH_SAVE"),
}

func envInt(name string) int {
	n, _ := strconv.Atoi(os.Getenv(name))
	return n
}

// workload is one benchmark job: a data set and the model stage applied to
// it. Every job is load -> model -> save with the defaults of each stage
// (PNG output with a JSON provenance sidecar per image).
type workload struct {
	data  string // rgb256 (PNG files) or gray28 (an idx.gz file)
	op    string // the name in the benchmark
	stage string // the model stage, a YAML key: value
}

var workloads = []workload{
	// The cheapest translator there is (a lookup table): the boundary's
	// share of the job is the largest here.
	{"rgb256", "posterize", `translate: {model: classic, method: posterize, levels: 4}`},
	// A 3x3 median filter: a light but real per-pixel filter.
	{"rgb256", "median", `denoise: {model: classic, method: median, radius: 1}`},
	// MNIST-sized items: per-call costs dominate the boundary here.
	{"gray28", "threshold", `translate: {model: classic, method: threshold}`},
}

func (w workload) String() string { return "data=" + w.data + "/op=" + w.op }

// pipelineFile writes the job's pipeline file into dir and returns its path
// and bytes. out is the save stage's folder.
func (w workload) pipelineFile(n int, dir, out string) (string, []byte, error) {
	var load string
	switch w.data {
	case "rgb256":
		src, err := rgbDataset(n)
		if err != nil {
			return "", nil, err
		}
		load = fmt.Sprintf("load: {dir: %s, limit: %d}", strconv.Quote(src), n)
	case "gray28":
		src, err := mnistDataset(n)
		if err != nil {
			return "", nil, err
		}
		load = fmt.Sprintf("load: {idx: %s}", strconv.Quote(src))
	default:
		return "", nil, fmt.Errorf("bench: unknown data set %q", w.data)
	}
	stage := w.stage
	if tuning.batch > 0 {
		stage = strings.Replace(stage, "{", fmt.Sprintf("{batch: %d, ", tuning.batch), 1)
	}
	saveExtra := ""
	if tuning.save != "" {
		saveExtra = ", " + tuning.save
	}
	data := fmt.Appendf(nil, `version: 1
name: bench-%s-%s
seed: 1
stages:
  - id: in
    %s
  - id: model
    %s
  - id: out
    save: {dir: %s%s}
`, w.data, w.op, load, stage, strconv.Quote(out), saveExtra)
	file := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.yaml", w.data, w.op, n))
	return file, data, os.WriteFile(file, data, 0o644)
}

// mode says where the model runs.
type mode string

const (
	// inPlugin runs the job through pipeline/job: the classic plugin in its
	// own process, started by re-executing this test binary.
	inPlugin mode = "plugin"
	// inProcess runs the same graph with the translator called directly.
	inProcess mode = "inprocess"
)

// busy accumulates, per stage, the wall time its workers spent in Map or
// Write (in-process runs only), to find the stage that limits a job.
type busy struct{ load, model, save atomic.Int64 }

// runJob runs the pipeline in file once, start to end, including plan,
// plugin start and stop.
func runJob(ctx context.Context, md mode, file string, data []byte, bz *busy) (*run.Result, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if md == inPlugin {
		m := pluginhost.New(pluginhost.Options{SearchDirs: []string{}, BuiltinCommand: []string{exe, "plugin", "serve"}})
		defer m.Close()
		p, errs := job.Check(ctx, m, file, data, nil, nil)
		if len(errs) > 0 {
			return nil, errs
		}
		return job.Run(ctx, p, m, job.Options{Workers: tuning.workers, ModelWorkers: tuning.modelWorkers})
	}
	s, errs := spec.Parse(file, data, nil)
	if len(errs) > 0 {
		return nil, errs
	}
	p, errs := plan.Build(ctx, s, classicOnly{}, plan.Options{})
	if len(errs) > 0 {
		return nil, errs
	}
	nodes, err := inProcessNodes(ctx, p, exe, bz)
	if err != nil {
		return nil, err
	}
	return run.Execute(ctx, nodes, run.Options{Seed: p.Seed})
}

// classicOnly describes the classic plugin without starting a process.
type classicOnly struct{}

func (classicOnly) Describe(_ context.Context, model, _, _ string) (*sdk.Description, error) {
	if model != classic.Name {
		return nil, fmt.Errorf("bench: in-process runs know only %s, not %s", classic.Name, model)
	}
	d := classic.New().Describe()
	return &d, nil
}

func (classicOnly) Known() []string { return []string{classic.Name} }

// inProcessNodes builds the run graph the way pipeline/job does (same
// stages, batch size, worker counts, conversions and provenance), with the
// model stage calling the classic plugin's model in this process.
func inProcessNodes(ctx context.Context, p *plan.Plan, exe string, bz *busy) ([]*run.Task, error) {
	if bz == nil {
		bz = &busy{}
	}
	workers := runtime.GOMAXPROCS(0) // job.Options.Workers' default
	modelWorkers := 2                // job.Options.ModelWorkers' default
	if tuning.workers > 0 {
		workers = tuning.workers
	}
	if tuning.modelWorkers > 0 {
		modelWorkers = tuning.modelWorkers
	}
	byID := map[string]*run.Task{}
	var nodes []*run.Task
	for _, pn := range p.Stages {
		var n *run.Task
		switch pn.Kind {
		case spec.Load, spec.Save:
			// The host stages as pipeline/job makes them, timed.
			var err error
			n, err = pn.Config.Task(stages.Env{
				ID: pn.ID, BaseDir: p.BaseDir, Workers: workers,
				Save: stages.SaveOptions{Provenance: stages.ProvenanceInfo{Name: p.Name, File: p.File, SHA256: p.SHA256, Seed: p.Seed}},
			})
			if err != nil {
				return nil, err
			}
			if n.Map != nil {
				n.Map = timedMap{n.Map, &bz.load}
			}
			if n.Sink != nil {
				n.Sink = timedSink{n.Sink, &bz.save}
			}
		case spec.Translate, spec.Denoise:
			ms := pn.Model
			mdl, err := classic.New().Load(ctx, sdk.LoadRequest{Capability: pn.Kind.Capability(), Preset: ms.Preset, Params: ms.Params})
			if err != nil {
				return nil, err
			}
			// pipeline/job records the plugin executable's SHA-256 once per
			// job; so does this, on the same executable.
			sum, err := pluginhost.FileSHA256(exe)
			if err != nil {
				return nil, err
			}
			mm := &modelMap{kind: pn.Kind, model: mdl, preset: ms.PresetSpec, busy: &bz.model, step: item.Step{
				Stage: pn.ID, Kind: string(pn.Kind), Plugin: ms.Desc.Name, Version: ms.Desc.Version,
				SHA256: sum, Preset: ms.Preset, Weights: ms.Weights, Params: ms.Params,
			}}
			n = &run.Task{Map: mm, Batch: ms.Batch, Workers: modelWorkers}
		default:
			return nil, fmt.Errorf("bench: stage kind %s is not supported in process", pn.Kind)
		}
		n.ID, n.Kind = pn.ID, string(pn.Kind)
		for _, in := range pn.Inputs {
			n.Inputs = append(n.Inputs, byID[in])
		}
		byID[pn.ID] = n
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// timedMap and timedSink add a stage's busy time to a counter.
type timedMap struct {
	m    run.Mapper
	busy *atomic.Int64
}

func (t timedMap) Map(ctx context.Context, in []item.Item) ([]item.Item, []error) {
	defer addSince(t.busy, time.Now())
	return t.m.Map(ctx, in)
}

type timedSink struct {
	run.Sink
	busy *atomic.Int64
}

func (t timedSink) Write(ctx context.Context, it item.Item) error {
	defer addSince(t.busy, time.Now())
	return t.Sink.Write(ctx, it)
}

func addSince(a *atomic.Int64, t0 time.Time) { a.Add(int64(time.Since(t0))) }

// modelMap is pipeline/job's model stage for a same-shape batch (what every
// benchmark job sends): items to a tensor in the preset's contract, one
// call, the tensor back to items, a provenance step per item.
type modelMap struct {
	kind   spec.Kind
	model  sdk.Model
	preset *sdk.Preset
	step   item.Step
	busy   *atomic.Int64
}

func (m *modelMap) Map(ctx context.Context, in []item.Item) ([]item.Item, []error) {
	defer addSince(m.busy, time.Now())
	errs := make([]error, len(in))
	out, err := m.call(ctx, in)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
	return out, errs
}

func (m *modelMap) call(ctx context.Context, items []item.Item) ([]item.Item, error) {
	var want, got *sdk.ImageSpec
	if m.preset != nil {
		want, got = m.preset.Input, m.preset.Output
	}
	t, err := item.ToTensor(items, want)
	if err != nil {
		return nil, err
	}
	seeds := make([]uint64, len(items))
	labels := make([]int, len(items))
	anyLabel := false
	for i, it := range items {
		seeds[i], labels[i] = it.Seed, it.Label
		anyLabel = anyLabel || it.Label >= 0
	}
	if !anyLabel {
		labels = nil
	}
	b := &sdk.Batch{Tensor: t, Seeds: seeds, Labels: labels}
	var res *sdk.Tensor
	switch m.kind {
	case spec.Translate:
		res, err = m.model.(sdk.Translator).Translate(ctx, b)
	case spec.Denoise:
		res, err = m.model.(sdk.Denoiser).Denoise(ctx, b)
	default:
		err = fmt.Errorf("bench: stage kind %s is not supported in process", m.kind)
	}
	if err != nil {
		return nil, err
	}
	imgs, err := item.FromTensor(res, got)
	if err != nil {
		return nil, err
	}
	out := make([]item.Item, len(items))
	for i, it := range items {
		frames := imgs[i]
		it.Image, it.Latent, it.Frames = frames[len(frames)-1], nil, nil
		st := m.step
		st.Seed = it.Seed
		out[i] = it.With(st)
	}
	return out, nil
}

// cpuTimes returns the user+system CPU time of this process and of its
// waited-for children (plugin processes, once the host has stopped them).
func cpuTimes() (self, children time.Duration) {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return self, children
}

// outRoot is the folder job outputs go to: GENPIPE_BENCH_OUT (e.g.
// /dev/shm, to take the disk out of the measurement) or else dir.
func outRoot(tb testing.TB, dir string) string {
	root := os.Getenv("GENPIPE_BENCH_OUT")
	if root == "" {
		return dir
	}
	d, err := os.MkdirTemp(root, "genpipe-bench-out-*")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// machineBusy returns the CPU time all processes of the machine have used
// since boot (/proc/stat; 0 where that is unavailable). Minus a job's own
// CPU time it gives the CPU other programs took while the job ran, which
// the benchmarks report as other-cpu/wall so that runs disturbed by other
// work can be told apart.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// waitQuiet, when GENPIPE_BENCH_QUIET is set, waits (timer stopped) until
// the machine has been nearly idle (other programs using under 5 % of one
// CPU) for 3 s, at most GENPIPE_BENCH_QUIET seconds, so that runs start
// undisturbed on a machine that others share.
func waitQuiet(b *testing.B) {
	limit := envInt("GENPIPE_BENCH_QUIET")
	if limit <= 0 {
		return
	}
	deadline := time.Now().Add(time.Duration(limit) * time.Second)
	for {
		m0, t0 := machineBusy(), time.Now()
		time.Sleep(3 * time.Second)
		if busy := machineBusy() - m0; busy.Seconds()/time.Since(t0).Seconds() < 0.05 {
			return
		}
		if time.Now().After(deadline) {
			b.Logf("machine not quiet after %ds; running anyway", limit)
			return
		}
	}
}

// BenchmarkJob runs whole jobs of GENPIPE_BENCH_N images (default 500)
// load -> model -> save, with the model in a plugin process (mode=plugin,
// through pipeline/job) and in process (mode=inprocess). Per iteration it
// runs one job into an empty output folder. Metrics:
//
//	us/img      wall time per image
//	cpu-us/img  CPU time (this process + plugin processes) per image; less
//	            sensitive than wall time to other load on the machine
//	cpu/wall    CPU time (this process + plugin processes) per wall second;
//	            2 means both cores of a 2-core machine were busy
//	plugin-cpu/wall  the plugin process's share of that
//	other-cpu/wall   CPU time other programs used meanwhile (0 on a quiet
//	            machine); runs where it is high measured contention
//	load-busy, model-busy, save-busy  (inprocess only) average number of
//	            workers of the stage inside Map/Write; a stage whose busy
//	            figure equals its worker count limits the job
//
// Compare the modes with: benchstat -col /mode FILE.
func BenchmarkJob(b *testing.B) {
	n := benchN(b)
	for _, w := range workloads {
		for _, md := range []mode{inPlugin, inProcess} {
			b.Run(w.String()+"/mode="+string(md), func(b *testing.B) {
				benchJob(b, w, md, n)
			})
		}
	}
}

func benchJob(b *testing.B, w workload, md mode, n int) {
	dir := b.TempDir()
	out := filepath.Join(outRoot(b, dir), "out")
	file, data, err := w.pipelineFile(n, dir, out)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var (
		wall, cpuSelf, cpuChildren, other time.Duration
		bz                                busy
		jobs                              int
	)
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(out); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		waitQuiet(b)
		b.StartTimer()
		m0 := machineBusy()
		s0, c0 := cpuTimes()
		t0 := time.Now()
		res, err := runJob(ctx, md, file, data, &bz)
		wall += time.Since(t0)
		s1, c1 := cpuTimes()
		cpuSelf += s1 - s0
		cpuChildren += c1 - c0
		other += max(machineBusy()-m0-(s1-s0)-(c1-c0), 0)
		jobs++
		if err != nil {
			b.Fatal(err)
		}
		if res.Written != n || len(res.Failures) > 0 {
			b.Fatalf("wrote %d of %d images; failures %v", res.Written, n, res.Failures)
		}
	}
	b.ReportMetric(float64(wall.Microseconds())/float64(jobs*n), "us/img")
	b.ReportMetric(float64((cpuSelf+cpuChildren).Microseconds())/float64(jobs*n), "cpu-us/img")
	b.ReportMetric((cpuSelf+cpuChildren).Seconds()/wall.Seconds(), "cpu/wall")
	b.ReportMetric(other.Seconds()/wall.Seconds(), "other-cpu/wall")
	if md == inPlugin {
		b.ReportMetric(cpuChildren.Seconds()/wall.Seconds(), "plugin-cpu/wall")
	} else {
		b.ReportMetric(time.Duration(bz.load.Load()).Seconds()/wall.Seconds(), "load-busy")
		b.ReportMetric(time.Duration(bz.model.Load()).Seconds()/wall.Seconds(), "model-busy")
		b.ReportMetric(time.Duration(bz.save.Load()).Seconds()/wall.Seconds(), "save-busy")
	}
}

// TestModesWriteTheSameFiles runs a small job of each workload in both
// modes and checks that they write byte-identical outputs (images and
// provenance sidecars), so the in-process baseline does the same work as
// the real job.
func TestModesWriteTheSameFiles(t *testing.T) {
	const n = 20
	for _, w := range workloads {
		t.Run(w.String(), func(t *testing.T) {
			dir := t.TempDir()
			trees := map[mode]map[string][]byte{}
			// The provenance records the pipeline file's hash: both modes
			// run the same file, into the same folder.
			out := filepath.Join(dir, "out")
			file, data, err := w.pipelineFile(n, dir, out)
			if err != nil {
				t.Fatal(err)
			}
			for _, md := range []mode{inPlugin, inProcess} {
				if err := os.RemoveAll(out); err != nil {
					t.Fatal(err)
				}
				res, err := runJob(context.Background(), md, file, data, nil)
				if err != nil {
					t.Fatalf("%s: %v", md, err)
				}
				if res.Written != n || len(res.Failures) > 0 {
					t.Fatalf("%s: wrote %d of %d; failures %v", md, res.Written, n, res.Failures)
				}
				if trees[md], err = readTree(out); err != nil {
					t.Fatal(err)
				}
			}
			a, b := trees[inPlugin], trees[inProcess]
			if len(a) != 2*n || len(b) != len(a) {
				t.Fatalf("plugin wrote %d files, in process %d; want %d each", len(a), len(b), 2*n)
			}
			for name, data := range a {
				if string(b[name]) != string(data) {
					t.Errorf("%s differs between the modes", name)
				}
			}
		})
	}
}

// readTree returns every file under dir by its relative path.
func readTree(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		files[rel] = data
		return err
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bench: %s was not written", dir)
	}
	return files, err
}
