package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
)

// DefaultCheckpointEvery is how many steps apart the plugin is asked for
// checkpoints when the train section does not say.
const DefaultCheckpointEvery = 500

// DefaultSampleEvery is how many steps apart sample grids are saved when
// the train section has samples: without every.
const DefaultSampleEvery = 500

// MaxEpochs bounds train.epochs.
const MaxEpochs = 100_000

// trainFields declares the keys of the train: section. The planner checks
// the section against them (params excepted: those are the plugin's), and
// docs and the JSON Schema are built from them.
var trainFields = []sdk.Param{
	{Name: "model", Type: sdk.String, Required: true, Doc: "the plugin to train (see pipeline plugins list); it must declare the train capability"},
	{Name: "preset", Type: sdk.String, Doc: "the architecture preset to train; it must declare train (default: the plugin's default preset if it can train, else the first that can)"},
	{Name: "input", Type: sdk.String, Required: true, Doc: "id of the load or preprocess stage whose items are the training data"},
	{Name: "eval", Type: sdk.String, Doc: "id of a load or preprocess stage whose items are held-out data the plugin measures itself on (optional)"},
	{Name: "epochs", Type: sdk.Int, Default: 1, Min: sdk.Bound(1), Max: sdk.Bound(MaxEpochs), Doc: "passes over the training data"},
	{Name: "batch", Type: sdk.Int, Min: sdk.Bound(1), Max: sdk.Bound(65536), Doc: "items per training step (default: the plugin's preferred batch size, else 16); the last batch of an epoch may be smaller"},
	{Name: "shuffle", Type: sdk.Bool, Default: true, Doc: "shuffle the items each epoch, in an order derived from the file's seed (false: load order)"},
	{Name: "output", Type: sdk.String, Required: true, Doc: "the weights file to write at the end (e.g. NAME.safetensors), relative to the pipeline file; written atomically"},
	{Name: "init", Type: sdk.String, Doc: "weights to start from instead of a fresh initialisation (e.g. the output of an earlier run, to train it longer or fine-tune it on other data), relative to the pipeline file; they must be of the preset's architecture; optimizer state starts afresh"},
	{Name: "checkpoint", Type: sdk.Object, Doc: "where and how often training state is saved; `pipeline train` resumes from it", Fields: []sdk.Param{
		{Name: "path", Type: sdk.String, Doc: "checkpoint file, relative to the pipeline file (default: output + .ckpt)"},
		{Name: "every", Type: sdk.Int, Default: DefaultCheckpointEvery, Min: sdk.Bound(1), Doc: "ask the plugin for a checkpoint every so many steps"},
	}},
	{Name: "samples", Type: sdk.Object, Doc: "save grids of the model's samples while it trains, to watch it learn: one before the first step, then every so many steps, and one after the last (plugins that make no samples save none)", Fields: []sdk.Param{
		{Name: "every", Type: sdk.Int, Default: DefaultSampleEvery, Min: sdk.Bound(1), Doc: "steps between grids"},
		{Name: "dir", Type: sdk.String, Doc: "folder of the grids, relative to the pipeline file (default: output + .samples): step-NNNNNN.png for each, and latest.png, a copy of the newest, for an image viewer to keep open; a run from the beginning first removes the grids of the one before"},
	}},
	{Name: "params", Type: sdk.Object, Doc: "the plugin's train parameters (`pipeline plugins describe MODEL`), checked against its declaration"},
}

// TrainParam returns the declared spec of the train: section (for docs and
// the JSON Schema); params is an open object here, since its keys are each
// plugin's own.
func TrainParam() sdk.Param {
	return sdk.Param{
		Name:   "train",
		Type:   sdk.Object,
		Doc:    "what `pipeline train FILE` trains: a model, the stage whose items feed it, hyperparameters and the output weights",
		Fields: slices.Clone(trainFields),
	}
}

// Training is the checked train: section of a plan.
type Training struct {
	// Model is the plugin name; Path and SHA256 come from its plugins:
	// entry (Path absolute), "" when it has none.
	Model  string
	Path   string
	SHA256 string
	// Preset is the resolved preset ("" when the plugin declares none) and
	// PresetSpec its declaration; Desc is the plugin's description.
	Preset     string
	PresetSpec *sdk.Preset
	Desc       *sdk.Description
	// Input and Eval are the ids of the stages whose items are the
	// training and held-out data (Eval "" for none). Each is a load stage
	// or the end of a chain of preprocess stages that starts at one.
	Input, Eval string
	Epochs      int
	Batch       int
	Shuffle     bool
	// Output and Checkpoint are absolute paths.
	Output          string
	Checkpoint      string
	CheckpointEvery int
	// Init is the weights file to start from, absolute ("" for none).
	Init string
	// SampleEvery is the number of steps between sample grids (0: none);
	// SampleDir their folder, absolute.
	SampleEvery int
	SampleDir   string
	// Params are the plugin's train parameters, validated, defaults filled in.
	Params sdk.Params
	// Config is the whole section as checked, defaults filled in (params
	// included, batch resolved), for the record in the output's metadata.
	Config map[string]any
}

// trainSection checks the train: section. It runs after the stages are
// checked and their inputs resolved, before the contracts.
func (b *builder) trainSection() {
	t := b.s.Train
	if t == nil || t.Bad {
		return
	}
	vals := map[string]any{}
	var pluginVals map[string]any
	paramsGiven := false
	for k, v := range t.Value {
		if k == "params" {
			paramsGiven = true
			if v == nil {
				continue // "params:" alone: none
			}
			m, ok := v.(map[string]any)
			if !ok {
				b.errorf(t.ValuePos("params"), "", "train.params: expected a mapping of the plugin's train parameters, got %s", typeName(v))
				continue
			}
			pluginVals = m
			continue
		}
		vals[k] = v
	}
	host := slices.DeleteFunc(slices.Clone(trainFields), func(p sdk.Param) bool { return p.Name == "params" })
	checked, errs := sdk.CheckParams(host, vals, "")
	hv := stages.Values(checked)
	b.trainErrors(errs)
	tr := &Training{
		Model:   hv.String("model"),
		Input:   hv.String("input"),
		Eval:    hv.String("eval"),
		Epochs:  hv.Int("epochs"),
		Batch:   hv.Int("batch"),
		Shuffle: hv.Bool("shuffle"),
	}
	b.train = tr
	b.trainOK = len(errs) == 0
	cp := stages.Values{}
	if m, ok := hv["checkpoint"].(map[string]any); ok {
		cp = m
	}
	tr.CheckpointEvery = cp.Int("every")
	if _, ok := hv["checkpoint"]; !ok {
		tr.CheckpointEvery = DefaultCheckpointEvery
	}
	if out, ok := hv["output"].(string); ok {
		tr.Output = b.trainPath("output", out)
		ckpt := cp.String("path")
		if ckpt == "" {
			tr.Checkpoint = tr.Output + ".ckpt"
		} else {
			tr.Checkpoint = b.trainPath("checkpoint.path", ckpt)
			if tr.Checkpoint == tr.Output && tr.Output != "" {
				b.trainErrorf(t.ValuePos("checkpoint.path"), "leave it out to use output + .ckpt", "train.checkpoint.path: the checkpoint would overwrite the output weights")
			}
		}
	}
	if in, ok := hv["init"].(string); ok {
		tr.Init = b.trainInit(in)
	}
	if sm, ok := hv["samples"].(map[string]any); ok {
		sp := stages.Values(sm)
		tr.SampleEvery = sp.Int("every")
		if dir := sp.String("dir"); dir != "" {
			tr.SampleDir = b.trainDir("samples.dir", dir)
		} else if tr.Output != "" {
			tr.SampleDir = tr.Output + ".samples"
		}
		if tr.SampleDir != "" && (tr.SampleDir == tr.Output || tr.SampleDir == tr.Checkpoint) {
			b.trainErrorf(t.ValuePos("samples.dir"), "", "train.samples.dir: %q is the output or checkpoint file", sp.String("dir"))
		}
	}
	if tr.Input != "" {
		b.trainData("input", tr.Input)
	}
	if tr.Eval != "" {
		b.trainData("eval", tr.Eval)
	}
	if !b.trainModel(tr) {
		b.trainOK = false
		b.trainModelFailed = true
		return
	}
	cs := tr.Desc.Capability(sdk.CapTrain)
	b.trainParams(tr, cs, pluginVals)
	if tr.Batch == 0 {
		tr.Batch = defaultBatch(tr.Desc)
	}
	b.trainBatchBytes(tr)
	config := map[string]any(hv)
	config["batch"] = tr.Batch
	if tr.Preset != "" {
		config["preset"] = tr.Preset
	}
	if _, ok := config["checkpoint"]; !ok {
		config["checkpoint"] = map[string]any{"every": tr.CheckpointEvery}
	}
	if paramsGiven || len(tr.Params) > 0 {
		config["params"] = map[string]any(tr.Params)
	}
	tr.Config = config
}

func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return fmt.Sprintf("string %q", v)
	case int:
		return fmt.Sprintf("int %v", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("bool %v", v)
	}
	return fmt.Sprintf("%v", v)
}

func (b *builder) trainErrorf(pos spec.Pos, hint, format string, a ...any) {
	b.trainOK = false
	b.errorf(pos, hint, format, a...)
}

// trainErrors positions the errors of sdk.CheckParams on the train
// section; their paths are relative to it ("epochs", "checkpoint.every",
// "params.lr").
func (b *builder) trainErrors(errs []*sdk.ParamError) {
	t := b.s.Train
	for _, pe := range errs {
		pos := t.ValuePos(pe.Path)
		where := pe.Path
		if strings.HasPrefix(pe.Msg, "unknown parameter") || strings.HasPrefix(pe.Msg, "missing required parameter") {
			pos = t.KeyPos(pe.Path)
			where = parentPath(pe.Path)
		}
		display := "train"
		if where != "" {
			display += "." + where
		}
		b.trainErrorf(pos, pe.Hint, "%s: %s", display, pe.Msg)
	}
}

// trainPath resolves the output or checkpoint path written at key. A
// relative path must stay inside the pipeline file's folder, as a save
// stage's file names stay inside its dir; an absolute path is taken as is.
func (b *builder) trainPath(key, p string) string {
	t := b.s.Train
	pos := t.ValuePos(key)
	if p == "" {
		b.trainErrorf(pos, "", "train.%s is empty; name a file", key)
		return ""
	}
	if strings.HasSuffix(p, "/") {
		b.trainErrorf(pos, "", "train.%s: %q names a folder; name a file", key, p)
		return ""
	}
	if b.trainLeaves(pos, key, p) {
		return ""
	}
	abs := b.abs(filepath.FromSlash(p))
	if abs == b.baseDir {
		b.trainErrorf(pos, "", "train.%s: %q is the pipeline file's folder; name a file", key, p)
		return ""
	}
	if !b.opts.SkipFiles {
		if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
			b.trainErrorf(pos, "", "train.%s: %q is a folder; name a file", key, p)
			return ""
		}
	}
	return abs
}

// trainLeaves reports (as an error) a relative path p given at key that
// leaves the pipeline file's folder: training writes only below it, unless
// given an absolute path.
func (b *builder) trainLeaves(pos spec.Pos, key, p string) bool {
	if filepath.IsAbs(p) {
		return false
	}
	clean := filepath.Clean(filepath.FromSlash(p))
	if clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		b.trainErrorf(pos, "relative paths stay inside the pipeline file's folder; give an absolute path to write elsewhere", "train.%s: %q leaves the pipeline file's folder", key, p)
		return true
	}
	return false
}

// trainInit resolves train.init, which must name an existing file (the
// output itself is fine: that is how a finished run is trained further).
func (b *builder) trainInit(p string) string {
	pos := b.s.Train.ValuePos("init")
	if p == "" {
		b.trainErrorf(pos, "", "train.init is empty; name a weights file or leave it out")
		return ""
	}
	abs := b.abs(filepath.FromSlash(p))
	if b.opts.SkipFiles {
		return abs
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		b.trainErrorf(pos, relHint, "train.init: file %q not found", p)
		return ""
	case fi.IsDir():
		b.trainErrorf(pos, "", "train.init: %q is a folder, expected a weights file", p)
		return ""
	}
	return abs
}

// trainDir resolves the folder p given at key: like trainPath, it stays
// inside the pipeline file's folder unless absolute, and must not be a
// file.
func (b *builder) trainDir(key, p string) string {
	pos := b.s.Train.ValuePos(key)
	if b.trainLeaves(pos, key, p) {
		return ""
	}
	abs := b.abs(filepath.FromSlash(p))
	if !b.opts.SkipFiles {
		if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
			b.trainErrorf(pos, "", "train.%s: %q is a file; name a folder", key, p)
			return ""
		}
	}
	return abs
}

// trainData checks that the stage named at key (input or eval) can feed
// training: a load stage, or a chain of preprocess stages, each reading
// one stage, that starts at a load stage.
func (b *builder) trainData(key, id string) {
	t := b.s.Train
	pos := t.ValuePos(key)
	n := len(b.errs)
	defer func() {
		if len(b.errs) > n {
			b.trainBadData[key] = true
		}
	}()
	var bn *bnode
	for _, n := range b.nodes {
		if n.st.ID == id {
			bn = n
			break
		}
	}
	if bn == nil {
		hint := suggest.DidYouMean(id, b.s.StageIDs())
		if hint == "" && len(b.s.StageIDs()) > 0 {
			hint = "stages: " + strings.Join(b.s.StageIDs(), ", ")
		}
		b.trainErrorf(pos, hint, "train.%s: %q is not a stage", key, id)
		return
	}
	const want = "name a load or preprocess stage"
	for cur := bn; ; {
		st := cur.st
		switch {
		case st.Bad || !cur.ok:
			return // its own errors are reported
		case st.Kind == spec.Load:
			return
		case st.Kind == spec.Save:
			b.trainErrorf(pos, want, "train.%s: stage %s is a save stage, which emits nothing", key, st.Name())
			return
		case st.Kind != spec.Preprocess:
			b.trainErrorf(pos, want, "train.%s: stage %s is a %s stage; training reads the items of load and preprocess stages", key, st.Name(), st.Kind)
			return
		case len(cur.inputs) != 1:
			if len(cur.inputs) == 0 {
				return // its missing input is reported
			}
			var ids []string
			for _, in := range cur.inputs {
				ids = append(ids, in.st.Name())
			}
			b.trainErrorf(pos, "give training its own chain of preprocess stages", "train.%s: stage %s reads %d stages (%s); training reads one chain of preprocess stages that starts at a load stage", key, st.Name(), len(ids), strings.Join(ids, ", "))
			return
		}
		cur = cur.inputs[0]
	}
}

// trainModel resolves the model, its train capability and the preset.
func (b *builder) trainModel(tr *Training) bool {
	t := b.s.Train
	if tr.Model == "" {
		return false // missing or mistyped: reported by CheckParams
	}
	pos := t.ValuePos("model")
	desc, ok := b.resolveModel("train", tr.Model, pos, b.trainErrorf, &tr.Path, &tr.SHA256)
	if !ok {
		return false
	}
	tr.Desc = desc
	if desc.Capability(sdk.CapTrain) == nil {
		b.trainErrorf(pos, "", "train.model: model %q cannot train (it can: %s)", tr.Model, capNames(desc))
		return false
	}
	name, _ := t.Value["preset"].(string)
	p, names, able := choosePreset(desc, sdk.CapTrain, name)
	if name == "" && p != nil && !p.Has(sdk.CapTrain) {
		b.trainErrorf(pos, "", "train.model: none of model %q's presets can train (presets: %s)", tr.Model, strings.Join(names, ", "))
		return false
	}
	if p == nil && name != "" {
		hint := suggest.DidYouMean(name, names)
		switch {
		case hint != "":
		case len(names) == 0:
			hint = "it declares none"
		default:
			hint = "presets: " + strings.Join(names, ", ")
		}
		b.trainErrorf(t.ValuePos("preset"), hint, "train.preset: model %q has no preset %q", tr.Model, name)
		b.trainModelFailed = true
		return true // the parameters can still be checked
	}
	if p == nil {
		return true // the plugin declares no presets
	}
	if !p.Has(sdk.CapTrain) {
		hint := "none of its presets can"
		if len(able) > 0 {
			hint = "presets that can: " + strings.Join(able, ", ")
		}
		b.trainErrorf(t.ValuePos("preset"), hint, "train.preset: preset %q of model %q cannot train (it declares %s)", p.Name, tr.Model, capList(p.Capabilities))
		b.trainModelFailed = true
		return true // the parameters can still be checked
	}
	tr.Preset, tr.PresetSpec = p.Name, p
	return true
}

func capList(cs []sdk.Capability) string {
	if len(cs) == 0 {
		return "nothing"
	}
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ", ")
}

// trainParams checks params: against the plugin's declared train
// parameters.
func (b *builder) trainParams(tr *Training, cs *sdk.CapabilitySpec, vals map[string]any) {
	params, errs := sdk.CheckParams(cs.Params, vals, "params")
	for _, e := range errs {
		if strings.HasPrefix(e.Msg, "unknown parameter") && e.Hint == "" {
			var names []string
			for _, p := range cs.Params {
				names = append(names, p.Name)
			}
			e.Hint = fmt.Sprintf("%s train takes %s", tr.Model, orNone(names))
		}
	}
	b.trainErrors(errs)
	tr.Params = params
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "no parameters"
	}
	return strings.Join(names, ", ")
}

// trainBatchBytes checks that a batch fits in one message when the preset
// fixes the size of an item.
func (b *builder) trainBatchBytes(tr *Training) {
	if tr.PresetSpec == nil || tr.PresetSpec.Input == nil {
		return
	}
	in := tr.PresetSpec.Input
	if in.Channels <= 0 || in.Height <= 0 || in.Width <= 0 {
		return
	}
	size := in.DType.Size()
	if size == 0 {
		size = 1
	}
	item := in.Channels * in.Height * in.Width * size
	limit := client.MaxMessageBytes - (1 << 20)
	if tr.Batch*item > limit {
		pos := b.s.Train.ValuePos("batch")
		b.trainErrorf(pos, fmt.Sprintf("at most %d items of %s", limit/item, imagesText(in)), "train.batch: %d items of %d bytes exceed the %d-byte message limit", tr.Batch, item, limit)
	}
}

// trainContract checks what the input and eval stages emit against the
// image contract of the preset being trained.
func (b *builder) trainContract() {
	tr := b.train
	if tr == nil || tr.PresetSpec == nil || tr.PresetSpec.Input == nil {
		return
	}
	want := tr.PresetSpec.Input
	for _, key := range []string{"input", "eval"} {
		id := tr.Input
		if key == "eval" {
			id = tr.Eval
		}
		bn := b.byID(id)
		if bn == nil || !bn.ok || b.trainBadData[key] {
			continue
		}
		if bn.n.Out.Latent != nil {
			b.trainErrorf(b.s.Train.ValuePos(key), "", "train.%s: model %q preset %q trains on images, got %s from stage %s", key, tr.Model, tr.Preset, latentText(bn.n.Out.Latent), bn.st.Name())
			continue
		}
		got := bn.n.Out.Image
		if got == nil {
			continue
		}
		differs := func(w, g int) bool { return w > 0 && g > 0 && w != g }
		if !differs(want.Width, got.Width) && !differs(want.Height, got.Height) && !differs(want.Channels, got.Channels) {
			continue
		}
		hint := "add a preprocess stage ending with - conform: {} and name it here"
		if bn.st.Kind == spec.Preprocess {
			hint = fmt.Sprintf("end preprocess stage %s with - conform: {}", bn.st.Name())
		}
		b.trainErrorf(b.s.Train.ValuePos(key), hint, "train.%s: model %q preset %q trains on %s, got %s from stage %s", key, tr.Model, tr.Preset, imagesText(want), imagesText(got), bn.st.Name())
	}
}

func (b *builder) byID(id string) *bnode {
	if id == "" {
		return nil
	}
	for _, n := range b.nodes {
		if n.st.ID == id {
			return n
		}
	}
	return nil
}

// feedsBrokenTrain reports whether bn is the input or eval stage of a
// train section whose model or preset could not be resolved: what
// training wants from it is unknown, and the train section's error says
// why.
func (b *builder) feedsBrokenTrain(bn *bnode) bool {
	tr := b.train
	return tr != nil && b.trainModelFailed && bn.st.ID != "" && (bn.st.ID == tr.Input || bn.st.ID == tr.Eval)
}

// trainConsumer is the image contract training wants from stage bn when bn
// is the train section's input or eval stage (nil otherwise), so a conform
// op there converts to it.
func (b *builder) trainConsumer(bn *bnode) *sdk.ImageSpec {
	tr := b.train
	if tr == nil || tr.PresetSpec == nil || tr.PresetSpec.Input == nil || bn.st.ID == "" {
		return nil
	}
	if bn.st.ID == tr.Input || bn.st.ID == tr.Eval {
		return tr.PresetSpec.Input
	}
	return nil
}
