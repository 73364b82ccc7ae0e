// Package plan turns a parsed pipeline ([spec.Spec]) and the plugins'
// descriptions into a checked, executable graph: every parameter validated
// against its declared spec, every input resolved, the graph sorted, and a
// static image/latent contract tracked along every edge so that a shape or
// latent-space mismatch is found before anything runs. Build reports every
// problem at once, each at its file position.
package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// Describer gives the planner the plugins' descriptions. The host adapts
// its plugin host to it; tests use a fake.
type Describer interface {
	// Describe returns the description of model. path and sha256 come from
	// the pipeline's plugins: entry for model ("" when none); path is
	// absolute.
	Describe(ctx context.Context, model string, path, sha256 string) (*sdk.Description, error)
	// Known lists the model names that can be described without a path
	// (built-in and discovered plugins), for "did you mean".
	Known() []string
}

// checksumMismatch is implemented by Describe errors saying that the
// plugin's executable does not have the sha256 its plugins: entry pins
// (pluginhost.ChecksumError); the planner reports those at the sha256: value.
type checksumMismatch interface{ ChecksumMismatch() bool }

// Options adjust a build.
type Options struct {
	// Seed, when non-nil, replaces the file's seed (--seed).
	Seed *uint64
	// SkipFiles skips the checks that files named by the pipeline exist
	// (load sources, weights, plugin executables).
	SkipFiles bool
}

// Plan is a checked pipeline, ready to run.
type Plan struct {
	Name string
	// File is the pipeline file as given; BaseDir is its folder (absolute),
	// against which relative paths in the file resolve.
	File    string
	BaseDir string
	// SHA256 is the hex SHA-256 of the pipeline file's bytes.
	SHA256 string
	// Overrides are the --set flags applied, as given.
	Overrides []string
	// Seed is the pipeline seed: from --seed, else the file, else 0.
	Seed uint64
	// Nodes are the stages in topological order (inputs before the stages
	// that read them; file order where the graph allows).
	Stages []*Stage
	// Spec is the parsed file, for positions.
	Spec *spec.Spec
	// Train is the checked train: section, nil when the file has none.
	Train *Training
}

// Stage returns the checked stage id, or nil.
func (p *Plan) Stage(id string) *Stage {
	for _, n := range p.Stages {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Consumers returns the stages that read stage id, in topological order.
func (p *Plan) Consumers(id string) []*Stage {
	var out []*Stage
	for _, n := range p.Stages {
		if slices.Contains(n.Inputs, id) {
			out = append(out, n)
		}
	}
	return out
}

// Stage is one checked stage: what the planner made of a stage of the file.
type Stage struct {
	ID   string
	Kind spec.Kind
	// Stage is the parsed stage, for positions in run-time messages.
	Stage *spec.Stage
	// Inputs are the ids of the stages this one reads, resolved (the
	// previous stage by default); empty for load and for generate with count.
	Inputs []string
	// Values is the validated value of a host stage as written, defaults
	// filled in: map[string]any for load and save, []any of one-key maps
	// for preprocess. Nil for model stages.
	Values any
	// Config is a host stage's typed configuration, parsed once from
	// Values by its kind; the executor makes the stage from it. Nil for
	// model stages.
	Config stages.Config
	// Model is set for model stages.
	Model *ModelStage
	// Out is the static contract of what the stage emits (zero for save,
	// which emits nothing).
	Out Contract
	// ConsumerInput is, for a preprocess stage feeding model stages, the
	// image contract those consumers declare (what conform converts to).
	ConsumerInput *sdk.ImageSpec
	// Keep filters the items the stage reads (nil: all pass); the planner
	// checked that a stage before it attaches the score.
	Keep *spec.Keep
	// Scores are the names of the per-item scores every item the stage
	// reads carries (sorted), for save's manifest columns.
	Scores []string
}

// ModelStage is the resolved configuration of a model stage.
type ModelStage struct {
	// Model is the plugin name; Path and SHA256 come from its plugins:
	// entry (Path absolute), "" when it has none.
	Model  string
	Path   string
	SHA256 string
	// Preset is the resolved preset name ("" when the plugin has none);
	// pass it to the plugin's Load. With no preset: in the file it is the
	// plugin's default preset, or, when that one does not serve this
	// stage's kind, the first preset that does.
	Preset string
	// Weights is the absolute weights path, "" for the preset's weights.
	Weights string
	// Batch is the number of items per call.
	Batch int
	// Count is generate's number of images from noise (0: decode latents).
	Count int
	// Labels are generate's class labels (nil: none); Each means every
	// class in turn, Random a class drawn uniformly per item from its seed.
	Labels []int
	Each   bool
	Random bool
	// Conform is how the host brings the items an image-reading stage
	// (encode, translate, denoise) reads to its preset's declared input:
	// one of the stages.Conform* modes ("" for generate).
	Conform string
	// ConformPos is the conform: key (the stage's kind key when it is not
	// written), where the checks conform off asks for are reported.
	ConformPos spec.Pos
	// ConformExact is set when conform is off because the preset takes
	// its input as it is (sdk.Preset.ExactInput) and the stage set none.
	ConformExact bool
	// Restore sizes each output of a translate or denoise stage back to
	// its input's size (stages.RestoreParam); RestorePos is its key.
	Restore    bool
	RestorePos spec.Pos
	// Params are the plugin's parameters, validated, defaults filled in.
	Params sdk.Params
	// Desc is the plugin's description and PresetSpec its chosen preset
	// (nil when the plugin declares none).
	Desc       *sdk.Description
	PresetSpec *sdk.Preset
}

// Contract is the static description of what a stage emits: images or
// latents. Zero fields are unknown; a zero Contract is entirely unknown (or,
// for save, nothing).
type Contract struct {
	// Image is set when the stage emits images; Channels, Height and Width
	// are 0 where they cannot be known before running.
	Image *sdk.ImageSpec
	// Latent is set when the stage emits latents; Space "" and Dim 0 mean
	// unknown.
	Latent *sdk.LatentSpec
}

// String describes c for messages and `pipeline validate -v`.
func (c Contract) String() string {
	switch {
	case c.Latent != nil:
		return latentText(c.Latent)
	case c.Image != nil:
		return imagesText(c.Image)
	}
	return "unknown"
}

// builder holds the state of one Build.
type builder struct {
	ctx     context.Context
	s       *spec.Spec
	d       Describer
	opts    Options
	baseDir string
	errs    spec.Errors
	nodes   []*bnode // in file order
	descs   map[string]*descResult
	readers map[*bnode][]*bnode
	// badPath holds plugins whose path: was already reported missing, so
	// the stages using them do not report it a second time.
	badPath map[string]bool
	// train is the train: section being checked (nil: none), and trainOK
	// false once a problem with it was reported.
	train   *Training
	trainOK bool
	// trainModelFailed is set when the train section's model or preset
	// could not be resolved; trainBadData holds its keys (input, eval)
	// whose stage cannot feed training.
	trainModelFailed bool
	trainBadData     map[string]bool
}

type descResult struct {
	desc *sdk.Description
	err  error
}

// bnode is a stage during the build.
type bnode struct {
	st     *spec.Stage
	n      *Stage
	inputs []*bnode
	refs   []spec.Pos // where each input is named (KindPos for a default)
	// ok is false when the stage's own checks failed badly enough that its
	// output contract is unknown.
	ok bool
}

// Build checks s against the plugins' descriptions and returns the plan, or
// nil and every problem found. It reports only its own problems: callers
// combine them with [spec.Parse]'s, and should not run a plan whose spec had
// errors.
func Build(ctx context.Context, s *spec.Spec, d Describer, opts Options) (*Plan, spec.Errors) {
	if s == nil {
		return nil, spec.Errors{{Msg: "plan: no pipeline (the file could not be read)"}}
	}
	b := &builder{ctx: ctx, s: s, d: d, opts: opts, descs: map[string]*descResult{}, baseDir: baseDir(s.File), trainBadData: map[string]bool{}}
	b.checkPlugins()
	for _, st := range s.Stages {
		bn := &bnode{st: st, n: &Stage{ID: st.ID, Kind: st.Kind, Stage: st}, ok: !st.Bad}
		b.nodes = append(b.nodes, bn)
		if st.Bad {
			continue
		}
		if k := stages.LookupKind(string(st.Kind)); k.Model {
			b.modelStage(bn)
		} else {
			b.hostStage(bn, k)
		}
	}
	b.resolveInputs()
	b.saveTargets()
	b.trainSection()
	order := b.order()
	for _, bn := range order {
		b.contract(bn)
	}
	b.scores(order)
	b.trainContract()
	if len(b.errs) > 0 {
		b.errs.Sort()
		return nil, b.errs
	}
	p := &Plan{Name: s.Name, File: s.File, BaseDir: b.baseDir, SHA256: s.SHA256, Overrides: s.Overrides, Seed: s.Seed, Spec: s, Train: b.train}
	if opts.Seed != nil {
		p.Seed = *opts.Seed
	}
	for _, bn := range order {
		for _, in := range bn.inputs {
			bn.n.Inputs = append(bn.n.Inputs, in.st.ID)
		}
		p.Stages = append(p.Stages, bn.n)
	}
	return p, nil
}

func baseDir(file string) string {
	if file == "" || file == "-" {
		wd, _ := os.Getwd()
		return wd
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return filepath.Dir(file)
	}
	return dir
}

func (b *builder) errorf(pos spec.Pos, hint, format string, a ...any) {
	b.errs = append(b.errs, spec.Errorf(pos, hint, format, a...))
}

// abs resolves a path written in the pipeline file.
func (b *builder) abs(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(b.baseDir, p)
}

const relHint = stages.RelHint

func (b *builder) checkPlugins() {
	if b.opts.SkipFiles {
		return
	}
	for _, pl := range b.s.Plugins {
		if pl.Path == "" {
			continue
		}
		fi, err := os.Stat(b.abs(pl.Path))
		switch {
		case err != nil:
			b.errorf(pl.PathPos, relHint, "plugin %q: executable %q not found", pl.Name, pl.Path)
		case fi.IsDir():
			b.errorf(pl.PathPos, "", "plugin %q: %q is a folder, expected an executable", pl.Name, pl.Path)
		default:
			continue
		}
		if b.badPath == nil {
			b.badPath = map[string]bool{}
		}
		b.badPath[pl.Name] = true
	}
}

// paramErrors positions the errors of sdk.CheckParams (or of a stage
// checker) on stage st. Their paths are either prefixed with the kind
// ("save.grid.columns", "preprocess[1].resize") or relative to the kind's
// value ("grid.columns", "[1].resize", "" for the value itself), as
// prefixed says.
func (b *builder) paramErrors(st *spec.Stage, errs []*sdk.ParamError, prefixed bool) {
	for _, pe := range errs {
		rel := pe.Path
		if prefixed {
			rel = strings.TrimPrefix(strings.TrimPrefix(rel, string(st.Kind)), ".")
		}
		display := string(st.Kind)
		pos := st.ValuePos(rel)
		where := rel
		if strings.HasPrefix(pe.Msg, "unknown parameter") || strings.HasPrefix(pe.Msg, "missing required parameter") {
			// The message names the key; point at it and name its parent.
			pos = st.KeyPos(rel)
			where = parentPath(rel)
		}
		switch {
		case where == "":
		case strings.HasPrefix(where, "["):
			display += where
		default:
			display += "." + where
		}
		b.errorf(pos, pe.Hint, "%s: %s", display, pe.Msg)
	}
}

func parentPath(p string) string {
	i := max(strings.LastIndexByte(p, '.'), strings.LastIndexByte(p, '['))
	if i < 0 {
		return ""
	}
	return p[:i]
}

// describe returns the description of a model, asking the Describer once
// per model and plugins: entry.
func (b *builder) describe(model string) (*sdk.Description, error, bool) {
	if r, ok := b.descs[model]; ok {
		return r.desc, r.err, false
	}
	path, sum := "", ""
	if pl := b.s.Plugin(model); pl != nil {
		if pl.Path != "" {
			path = b.abs(pl.Path)
		}
		sum = pl.SHA256
	}
	desc, err := b.d.Describe(b.ctx, model, path, sum)
	if err == nil && desc == nil {
		err = fmt.Errorf("the plugin returned no description")
	}
	b.descs[model] = &descResult{desc, err}
	return desc, err, true
}

// known reports whether model can be described: a known plugin or one with
// a path in plugins:.
func (b *builder) known(model string) bool {
	if slices.Contains(b.d.Known(), model) {
		return true
	}
	pl := b.s.Plugin(model)
	return pl != nil && pl.Path != ""
}

func (b *builder) knownNames() []string {
	names := slices.Clone(b.d.Known())
	for _, pl := range b.s.Plugins {
		if pl.Path != "" && !slices.Contains(names, pl.Name) {
			names = append(names, pl.Name)
		}
	}
	slices.Sort(names)
	return names
}

// resolveInputs links every stage to the stages it reads and reports
// inputs that do not exist or cannot be read.
func (b *builder) resolveInputs() {
	byID := map[string]*bnode{}
	for _, bn := range b.nodes {
		if id := bn.st.ID; id != "" && byID[id] == nil {
			byID[id] = bn
		}
	}
	ids := b.s.StageIDs()
	for _, bn := range b.nodes {
		st := bn.st
		if st.HasInput() {
			if st.Kind == spec.Load {
				b.errorf(st.InputPos, "remove input:", "stage %s: load reads files and takes no input", st.Name())
				continue
			}
			if st.Kind == spec.Generate && hasKey(st, "count") {
				b.errorf(st.InputPos, "remove input: to generate from noise, or remove count to decode latents from the input", "stage %s: generate with count generates from noise and takes no input", st.Name())
				continue
			}
			seen := map[string]bool{}
			for _, ref := range st.Inputs {
				in := byID[ref.ID]
				switch {
				case in == nil:
					others := slices.DeleteFunc(slices.Clone(ids), func(s string) bool { return s == st.ID })
					b.errorf(ref.Pos, suggest.DidYouMean(ref.ID, others), "stage %s: input %q is not a stage", st.Name(), ref.ID)
				case seen[ref.ID]:
					b.errorf(ref.Pos, "", "stage %s: input %q is listed twice", st.Name(), ref.ID)
				case isSink(in):
					b.errorf(ref.Pos, "name the stage that the save reads", "stage %s: input %q is a save stage, which emits nothing", st.Name(), ref.ID)
				default:
					bn.inputs = append(bn.inputs, in)
					bn.refs = append(bn.refs, ref.Pos)
				}
				seen[ref.ID] = true
			}
			continue
		}
		switch {
		case st.Kind == spec.Load:
		case st.Kind == spec.Generate && hasKey(st, "count"):
		case st.Index == 0:
			if st.Bad {
				break
			}
			if st.Kind == spec.Generate {
				b.errorf(st.KindPos, "add count: N to generate from noise", "stage %s: generate needs count, or an input of latents, but it is the first stage", st.Name())
				break
			}
			b.errorf(st.KindPos, "start with a load or generate stage, or set input:", "stage %s: %s has nothing to read: it is the first stage", st.Name(), st.Kind)
		default:
			prev := b.nodes[st.Index-1]
			if isSink(prev) {
				b.errorf(st.KindPos, "set input: to the stage it should read", "stage %s would read the previous stage %s, a save, which emits nothing", st.Name(), prev.st.Name())
				break
			}
			bn.inputs = []*bnode{prev}
			bn.refs = []spec.Pos{st.KindPos}
		}
	}
}

func hasKey(st *spec.Stage, key string) bool {
	m, ok := st.Value.(map[string]any)
	if !ok {
		return false
	}
	_, ok = m[key]
	return ok
}

// order sorts the stages topologically, preferring file order, and reports
// every cycle; stages on a cycle are left out.
func (b *builder) order() []*bnode {
	for _, scc := range b.cycles() {
		// The first stage of a cycle in file order reads a later stage of
		// the cycle, necessarily through an explicit input: point there.
		first := scc[0]
		pos := first.st.InputPos
		for i, in := range first.inputs {
			if slices.Contains(scc, in) {
				pos = first.refs[i]
				break
			}
		}
		names := make([]string, 0, len(scc)+1)
		for _, bn := range cyclePath(scc) {
			names = append(names, bn.st.Name())
		}
		b.errorf(pos, "a stage cannot read its own output, directly or through others", "stages form a cycle: %s", strings.Join(names, " -> "))
	}
	indeg := map[*bnode]int{}
	b.readers = map[*bnode][]*bnode{}
	for _, bn := range b.nodes {
		indeg[bn] = len(bn.inputs)
		for _, in := range bn.inputs {
			b.readers[in] = append(b.readers[in], bn)
		}
	}
	var order []*bnode
	done := map[*bnode]bool{}
	for {
		var next *bnode
		for _, bn := range b.nodes { // file order: the first ready stage
			if !done[bn] && indeg[bn] == 0 {
				next = bn
				break
			}
		}
		if next == nil {
			return order
		}
		done[next] = true
		order = append(order, next)
		for _, r := range b.readers[next] {
			indeg[r]--
		}
	}
}

// cycles returns the strongly connected components that contain a cycle,
// each sorted in file order (Tarjan's algorithm).
func (b *builder) cycles() [][]*bnode {
	index := map[*bnode]int{}
	low := map[*bnode]int{}
	on := map[*bnode]bool{}
	var stack []*bnode
	var out [][]*bnode
	next := 0
	var visit func(v *bnode)
	visit = func(v *bnode) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		on[v] = true
		for _, w := range v.inputs {
			if _, seen := index[w]; !seen {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var scc []*bnode
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			if len(scc) > 1 || slices.Contains(v.inputs, v) {
				slices.SortFunc(scc, func(x, y *bnode) int { return x.st.Index - y.st.Index })
				out = append(out, scc)
			}
		}
	}
	for _, bn := range b.nodes {
		if _, seen := index[bn]; !seen {
			visit(bn)
		}
	}
	slices.SortFunc(out, func(x, y []*bnode) int { return x[0].st.Index - y[0].st.Index })
	return out
}

// cyclePath returns a cycle through the first stage of scc in data-flow
// order (a stage before the stages that read it), ending where it started.
func cyclePath(scc []*bnode) []*bnode {
	start := scc[0]
	// Breadth-first search backwards along inputs finds the shortest way
	// from start's readers round to start.
	prev := map[*bnode]*bnode{}
	queue := []*bnode{start}
	seen := map[*bnode]bool{start: true}
	var end *bnode
	for len(queue) > 0 && end == nil {
		v := queue[0]
		queue = queue[1:]
		for _, w := range v.inputs {
			if !slices.Contains(scc, w) {
				continue
			}
			if w == start {
				end = v
				break
			}
			if !seen[w] {
				seen[w] = true
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	// end reads start, and prev leads from end back to start along
	// "is read by", which is the direction the data flows.
	path := []*bnode{start}
	for v := end; v != nil && v != start; v = prev[v] {
		path = append(path, v)
	}
	return append(path, start)
}

// isSink reports whether bn's kind emits nothing (save), so no stage can
// read it.
func isSink(bn *bnode) bool {
	k := stages.LookupKind(string(bn.st.Kind))
	return k != nil && k.Sink
}
