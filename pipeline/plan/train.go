package plan

import (
	"fmt"
	"maps"
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
	{Name: "input", Type: sdk.String, Doc: "id of the stage whose items are the training data: a load stage, or the end of a chain of preprocess, encode, translate or denoise stages, each reading one stage, that starts at one (a preset whose data are latents trains on an encode stage's); a preset that trains on several streams takes inputs: instead"},
	{Name: "inputs", Type: sdk.Object, Doc: "for a preset that trains on several streams (pipeline plugins describe lists its train inputs): a mapping of each role to the id of a stage, a chain as for input, e.g. {a: typeset, b: digits}; paired roles must match the first item by item"},
	{Name: "eval", Type: sdk.String, Doc: "id of a stage whose items are held-out data the plugin measures itself on, a chain as for input (optional)"},
	{Name: "eval_inputs", Type: sdk.Object, Doc: "held-out data of a preset that trains on several streams: a stage per role, as inputs (optional)"},
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
	// training and held-out data (Eval "" for none); for a preset with
	// several train inputs, those of its first role. Each is a load stage
	// or the end of a chain of preprocess stages that starts at one.
	Input, Eval string
	// Roles are the train inputs of a preset that reads several streams,
	// in the preset's order (nil for one stream).
	Roles   []TrainRole
	Epochs  int
	Batch   int
	Shuffle bool
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

// TrainRole is one train input of a preset that reads several streams.
type TrainRole struct {
	sdk.TrainInput
	// Input and Eval are the ids of the role's training and held-out
	// stages (Eval "" without held-out data).
	Input, Eval string
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
	roleMaps := map[string]map[string]string{}
	for k, v := range t.Value {
		if k == "inputs" || k == "eval_inputs" {
			roleMaps[k] = b.trainRoleMap(k, v)
			continue
		}
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
	for _, k := range []string{"inputs", "eval_inputs"} {
		for _, role := range slices.Sorted(maps.Keys(roleMaps[k])) {
			b.trainData(k+"."+role, roleMaps[k][role])
		}
	}
	if tr.Input == "" && roleMaps["inputs"] == nil {
		b.trainErrorf(t.Pos, "name the stage whose items are the training data", "train: missing input")
	}
	if !b.trainModel(tr) {
		b.trainOK = false
		b.trainModelFailed = true
		return
	}
	b.trainRoles(tr, roleMaps)
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
// training: a load stage, or a chain that starts at one and goes through
// stages that map each item to one item, each reading one stage:
// preprocess, and the model stages encode, translate and denoise (an
// encode stage makes the latents a model of latent data trains on).
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
	const want = "name a load, preprocess, encode, translate or denoise stage"
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
		case st.Keep != nil:
			// A chain maps every item to one, which the order of the data
			// and an exact resume rely on.
			b.trainErrorf(st.Keep.Pos, "keep the items with pipeline run and save, then train on that folder", "train.%s: stage %s has keep:, which a training's data chain cannot apply (it maps every item to one)", key, st.Name())
			return
		case !trainMaps(st.Kind):
			b.trainErrorf(pos, want, "train.%s: stage %s is a %s stage; training reads the items of a load stage, optionally through preprocess, encode, translate or denoise stages", key, st.Name(), st.Kind)
			return
		case len(cur.inputs) != 1:
			if len(cur.inputs) == 0 {
				return // its missing input is reported
			}
			var ids []string
			for _, in := range cur.inputs {
				ids = append(ids, in.st.Name())
			}
			b.trainErrorf(pos, "give training its own chain of stages", "train.%s: stage %s reads %d stages (%s); training reads one chain of stages that starts at a load stage", key, st.Name(), len(ids), strings.Join(ids, ", "))
			return
		}
		cur = cur.inputs[0]
	}
}

// trainMaps reports whether a stage of kind k may sit in a training's data
// chain: it maps each item it reads to one item, so an item keeps its
// index, label and seed from the load stage to the batch, and the order of
// a training's data (hence its exact resume) does not depend on it.
func trainMaps(k spec.Kind) bool {
	switch k {
	case spec.Preprocess, spec.Encode, spec.Translate, spec.Denoise:
		return true
	}
	return false
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

// trainContract checks what the training's data stages emit against the
// image contract of the preset being trained (of each role, for a preset
// with several train inputs).
func (b *builder) trainContract() {
	tr := b.train
	if tr == nil || tr.PresetSpec == nil {
		return
	}
	if l := tr.PresetSpec.LatentData; l != nil {
		b.trainLatents(tr, l)
		return
	}
	if tr.PresetSpec.Input == nil {
		return
	}
	for _, ts := range tr.trainStages() {
		key, want := ts.key, ts.spec
		bn := b.byID(ts.id)
		if bn == nil || !bn.ok || b.trainBadData[key] || want == nil {
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

// trainLatents checks that the data stages of a training whose preset's
// data are latents emit latents of exactly its space and dim: a model of
// one space learns nothing useful from another's vectors, and the host
// cannot tell them apart at run time when their dims agree.
func (b *builder) trainLatents(tr *Training, want *sdk.LatentSpec) {
	hint := fmt.Sprintf("name an encode stage whose preset encodes into space %q", want.Space)
	for _, ts := range tr.trainStages() {
		key := ts.key
		bn := b.byID(ts.id)
		if bn == nil || !bn.ok || b.trainBadData[key] {
			continue
		}
		pos := b.s.Train.ValuePos(key)
		got := bn.n.Out
		switch {
		case got.Image != nil:
			b.trainErrorf(pos, hint, "train.%s: model %q preset %q trains on %s, got %s from stage %s", key, tr.Model, tr.Preset, latentText(want), imagesText(got.Image), bn.st.Name())
		case got.Latent == nil:
			// Unknown: the stage's own errors say why.
		case got.Latent.Space != want.Space || got.Latent.Dim != want.Dim:
			b.trainErrorf(pos, hint, "train.%s: model %q preset %q trains on %s, got %s from stage %s", key, tr.Model, tr.Preset, latentText(want), latentText(got.Latent), bn.st.Name())
		}
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

// feedsBrokenTrain reports whether bn is a data stage of a train section
// whose model or preset could not be resolved: what training wants from
// it is unknown, and the train section's error says why.
func (b *builder) feedsBrokenTrain(bn *bnode) bool {
	tr := b.train
	if tr == nil || !b.trainModelFailed || bn.st.ID == "" {
		return false
	}
	if bn.st.ID == tr.Input || bn.st.ID == tr.Eval {
		return true
	}
	if t := b.s.Train; t != nil {
		for _, k := range []string{"inputs", "eval_inputs"} {
			if m, ok := t.Value[k].(map[string]any); ok {
				for _, id := range m {
					if id == bn.st.ID {
						return true
					}
				}
			}
		}
	}
	return false
}

// trainConsumer is the image contract training wants from stage bn when bn
// is one of the train section's data stages (nil otherwise), so a conform
// op there converts to it.
func (b *builder) trainConsumer(bn *bnode) *sdk.ImageSpec {
	tr := b.train
	if tr == nil || tr.PresetSpec == nil || tr.PresetSpec.Input == nil || bn.st.ID == "" {
		return nil
	}
	for _, ts := range tr.trainStages() {
		if ts.id == bn.st.ID {
			return ts.spec
		}
	}
	return nil
}

// trainRoleMap reads inputs: or eval_inputs:, a mapping of role names to
// stage ids.
func (b *builder) trainRoleMap(key string, v any) map[string]string {
	t := b.s.Train
	m, ok := v.(map[string]any)
	if !ok {
		b.trainErrorf(t.ValuePos(key), "", "train.%s: expected a mapping of roles to stage ids such as {a: STAGE, b: STAGE}, got %s", key, typeName(v))
		return nil
	}
	out := map[string]string{}
	for role, id := range m {
		s, ok := id.(string)
		if !ok || s == "" {
			b.trainErrorf(t.ValuePos(key+"."+role), "", "train.%s.%s: expected a stage id, got %s", key, role, typeName(id))
			continue
		}
		out[role] = s
	}
	return out
}

// trainRoles matches inputs: and eval_inputs: to the preset's train
// inputs, or refuses them for a preset that reads one stream.
func (b *builder) trainRoles(tr *Training, roleMaps map[string]map[string]string) {
	t := b.s.Train
	p := tr.PresetSpec
	if p == nil || len(p.TrainInputs) == 0 {
		for _, k := range []string{"inputs", "eval_inputs"} {
			if _, ok := roleMaps[k]; ok {
				one := map[string]string{"inputs": "input", "eval_inputs": "eval"}[k]
				b.trainErrorf(t.KeyPos(k), fmt.Sprintf("write %s: STAGE", one), "train.%s: model %q preset %q trains on one stream", k, tr.Model, tr.Preset)
			}
		}
		return
	}
	var names []string
	for _, ti := range p.TrainInputs {
		names = append(names, ti.Name)
	}
	example := "{" + strings.Join(names, ": STAGE, ") + ": STAGE}"
	for _, k := range []string{"input", "eval"} {
		if _, ok := t.Value[k]; ok {
			b.trainErrorf(t.KeyPos(k), fmt.Sprintf("write %ss: %s", k, example), "train.%s: model %q preset %q trains on %d streams (%s)", k, tr.Model, tr.Preset, len(names), strings.Join(names, ", "))
		}
	}
	for _, k := range []string{"inputs", "eval_inputs"} {
		m, given := roleMaps[k]
		if !given {
			continue
		}
		for _, role := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(names, role) {
				hint := suggest.DidYouMean(role, names)
				if hint == "" {
					hint = "roles: " + strings.Join(names, ", ")
				}
				b.trainErrorf(t.KeyPos(k+"."+role), hint, "train.%s.%s: preset %q has no train input %q", k, role, tr.Preset, role)
			}
		}
		for _, role := range names {
			if _, ok := m[role]; !ok {
				b.trainErrorf(t.KeyPos(k), fmt.Sprintf("%s: %s", k, example), "train.%s: missing role %q (preset %q trains on %s)", k, role, tr.Preset, strings.Join(names, ", "))
			}
		}
	}
	if _, ok := roleMaps["inputs"]; !ok {
		if _, bad := t.Value["input"]; !bad {
			b.trainErrorf(t.Pos, fmt.Sprintf("inputs: %s", example), "train: missing inputs (preset %q trains on %s)", tr.Preset, strings.Join(names, ", "))
		}
		return
	}
	for _, ti := range p.TrainInputs {
		tr.Roles = append(tr.Roles, TrainRole{TrainInput: ti, Input: roleMaps["inputs"][ti.Name], Eval: roleMaps["eval_inputs"][ti.Name]})
	}
	tr.Input, tr.Eval = tr.Roles[0].Input, tr.Roles[0].Eval
}

// roleSpec is the image contract of a role (the preset's input unless the
// role declares its own).
func roleSpec(p *sdk.Preset, r TrainRole) *sdk.ImageSpec {
	if r.Image != nil {
		return r.Image
	}
	return p.Input
}

// trainStage is one stage training reads: the key of the train section
// that names it ("input", "inputs.a", "eval_inputs.b") and the image
// contract it must meet.
type trainStage struct {
	key, id string
	spec    *sdk.ImageSpec
}

// trainStages lists the training's data stages.
func (tr *Training) trainStages() []trainStage {
	var out []trainStage
	var in *sdk.ImageSpec
	if tr.PresetSpec != nil {
		in = tr.PresetSpec.Input
	}
	if len(tr.Roles) == 0 {
		if tr.Input != "" {
			out = append(out, trainStage{"input", tr.Input, in})
		}
		if tr.Eval != "" {
			out = append(out, trainStage{"eval", tr.Eval, in})
		}
		return out
	}
	for _, r := range tr.Roles {
		out = append(out, trainStage{"inputs." + r.Name, r.Input, roleSpec(tr.PresetSpec, r)})
		if r.Eval != "" {
			out = append(out, trainStage{"eval_inputs." + r.Name, r.Eval, roleSpec(tr.PresetSpec, r)})
		}
	}
	return out
}

// DataStages returns the ids of every stage training reads (for the
// idle-stage check of pipeline train).
func (tr *Training) DataStages() []string {
	var ids []string
	for _, s := range tr.trainStages() {
		ids = append(ids, s.id)
	}
	return ids
}
