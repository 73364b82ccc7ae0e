package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/genpipe/genpipe/pipeline/blobstore"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// hostStage validates a host stage (load, preprocess, save) against its
// kind's declared parameters and parses it into the kind's typed config.
// Kinds that need their consumers' contract (preprocess) are parsed in
// contract.
func (b *builder) hostStage(bn *bnode, k *stages.Kind) {
	st := bn.st
	var vals any
	var errs []*sdk.ParamError
	if k.Param.Type == sdk.Object {
		// A mapping (spec checked that): checking its fields directly
		// keeps the valid ones when others are wrong, so the checks of
		// single fields in Parse still run.
		m, _ := st.Value.(map[string]any)
		var v sdk.Params
		v, errs = sdk.CheckParams(k.Param.Fields, m, k.Name)
		vals = map[string]any(v)
	} else {
		var v sdk.Params
		v, errs = sdk.CheckParams([]sdk.Param{k.Param}, map[string]any{k.Name: st.Value}, "")
		vals = v[k.Name]
	}
	b.paramErrors(st, errs, true)
	bn.ok = len(errs) == 0
	bn.n.Values = vals
	if k.NeedsConsumer {
		return
	}
	b.parseHost(bn, k, nil)
}

// parseHost parses a host stage's checked value into its config.
func (b *builder) parseHost(bn *bnode, k *stages.Kind, consumer *sdk.ImageSpec) []*sdk.ParamError {
	cfg, errs := k.Parse(bn.n.Values, stages.ParseEnv{BaseDir: b.baseDir, SkipFiles: b.opts.SkipFiles, Partial: !bn.ok, Consumer: consumer})
	b.paramErrors(bn.st, errs, false)
	bn.n.Config = cfg
	return errs
}

// resolveModel is the model resolution every model stage shares (the
// train: section included): the plugins: entry's path and checksum, a
// known model ("did you mean" otherwise), its description. Errors go
// through errorf at pos, named key.model; ok is false when the model cannot
// be used (also when the error was reported before).
func (b *builder) resolveModel(key, model string, pos spec.Pos, errorf func(spec.Pos, string, string, ...any), path, sha *string) (desc *sdk.Description, ok bool) {
	if pl := b.s.Plugin(model); pl != nil {
		if pl.Path != "" {
			*path = b.abs(pl.Path)
		}
		*sha = pl.SHA256
	}
	if !b.known(model) {
		names := b.knownNames()
		hint := suggest.DidYouMean(model, names)
		if hint == "" && len(names) > 0 {
			hint = "known models: " + strings.Join(names, ", ")
		}
		if hint == "" {
			hint = "no plugins found; give its executable in plugins:"
		}
		errorf(pos, hint, "%s.model: unknown model %q", key, model)
		return nil, false
	}
	if b.badPath[model] {
		return nil, false // its path: is reported already
	}
	desc, err, first := b.describe(model)
	if err != nil {
		if !first { // once per model, not once per stage using it
			return nil, false
		}
		var cm checksumMismatch
		if pl := b.s.Plugin(model); pl != nil && pl.SHA256 != "" && errors.As(err, &cm) && cm.ChecksumMismatch() {
			// The pin is what is wrong (or the executable changed):
			// point at it, not at the stages using the plugin.
			errorf(pl.SHA256Pos, "if the new executable is trusted, pin the sha256 it has", "plugins.%s.sha256: %v", model, err)
			return nil, false
		}
		errorf(pos, "", "%s.model: cannot describe plugin %q: %v", key, model, err)
		return nil, false
	}
	return desc, true
}

// modelStage validates an encode, generate, translate or denoise stage:
// the host keys, the model and its capability, the preset, the weights,
// labels, and the plugin's own parameters.
func (b *builder) modelStage(bn *bnode) {
	st := bn.st
	kind := st.Kind
	cap := kind.Capability()
	all, _ := st.Value.(map[string]any)
	hostSpecs := stages.LookupKind(string(kind)).Param.Fields
	hostVals, pluginVals := map[string]any{}, map[string]any{}
	for k, v := range all {
		if slices.ContainsFunc(hostSpecs, func(p sdk.Param) bool { return p.Name == k }) {
			hostVals[k] = v
		} else {
			pluginVals[k] = v
		}
	}
	checked, errs := sdk.CheckParams(hostSpecs, hostVals, string(kind))
	hv := stages.Values(checked)
	b.paramErrors(st, errs, true)
	m := &ModelStage{Model: hv.String("model"), Batch: hv.Int("batch"), Count: hv.Int("count")}
	if c, ok := hv["conform"].(string); ok {
		m.Conform, m.ConformPos = c, st.KeyPos("conform") // the kind key when not written
	}
	if r, ok := hv["restore"].(bool); ok && r {
		m.Restore, m.RestorePos = true, st.KeyPos("restore")
		switch m.Conform {
		case stages.ConformFill:
			b.errorf(m.RestorePos, "use conform: fit (pads, and restore crops the padding off) or conform: resize",
				"stage %s: restore cannot undo conform: fill, which cut the borders off", st.Name())
		case stages.ConformOff:
			b.errorf(m.RestorePos, "remove restore, or let the host conform the inputs (conform: fit)",
				"stage %s: restore has nothing to undo: conform is off, so the inputs go at their own size", st.Name())
		}
	}
	bn.n.Model = m
	if labels, ok := hv["labels"]; ok {
		if s, ok := labels.(string); ok && s == "each" {
			m.Each = true
		} else if ok && s == "random" {
			m.Random = true
		} else {
			m.Labels = hv.Ints("labels")
		}
	}
	if w := hv.String("weights"); w != "" {
		m.Weights = b.abs(w)
		if !b.opts.SkipFiles {
			fi, err := os.Stat(m.Weights)
			switch {
			case err != nil:
				b.errorf(st.ValuePos("weights"), stages.RelHint, "%s.weights: file %q not found", kind, w)
			case fi.IsDir():
				b.errorf(st.ValuePos("weights"), "", "%s.weights: %q is a folder, expected a weights file", kind, w)
			}
		}
	}
	if m.Model == "" {
		bn.ok = false // missing or mistyped: reported by CheckParams
		return
	}
	desc, ok := b.resolveModel(string(kind), m.Model, st.ValuePos("model"), b.errorf, &m.Path, &m.SHA256)
	if !ok {
		bn.ok = false
		return
	}
	m.Desc = desc
	if m.Batch == 0 {
		m.Batch = defaultBatch(desc)
	}
	cs := desc.Capability(cap)
	if cs == nil {
		b.errorf(st.KindPos, "", "stage %s: model %q cannot %s (it can: %s)", st.Name(), m.Model, cap, capNames(desc))
		bn.ok = false
		return
	}
	b.preset(bn, m, hv.String("preset"))
	b.pluginParams(bn, m, cs, pluginVals, hostSpecs)
	if kind == spec.Generate {
		b.labels(bn, m)
	}
}

func capNames(d *sdk.Description) string {
	var names []string
	for _, c := range d.Capabilities {
		names = append(names, string(c.Name))
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

// canDo reports whether preset p serves capability c (as the SDK has it: a
// preset serves exactly the capabilities it lists).
func canDo(p *sdk.Preset, c sdk.Capability) bool { return p.Has(c) }

// choosePreset is the preset resolution model stages and the train:
// section share: the preset named name of desc or, for name "", the
// plugin's default, unless that does not serve cap (say a denoiser's
// preset for a generate stage): then the first that does, if any. names
// lists every preset, able those that serve cap.
func choosePreset(desc *sdk.Description, cap sdk.Capability, name string) (p *sdk.Preset, names, able []string) {
	for _, p := range desc.Presets {
		names = append(names, p.Name)
		if canDo(&p, cap) {
			able = append(able, p.Name)
		}
	}
	p = desc.Preset(name)
	if name == "" && p != nil && !canDo(p, cap) {
		for i := range desc.Presets {
			if canDo(&desc.Presets[i], cap) {
				return &desc.Presets[i], names, able
			}
		}
	}
	return p, names, able
}

// defaultBatch is a model's batch size when the stage does not say.
func defaultBatch(desc *sdk.Description) int {
	if desc.BatchSize > 0 {
		return desc.BatchSize
	}
	return DefaultBatch
}

func (b *builder) preset(bn *bnode, m *ModelStage, name string) {
	st := bn.st
	cap := st.Kind.Capability()
	p, names, able := choosePreset(m.Desc, cap, name)
	if p == nil && name != "" {
		hint := suggest.DidYouMean(name, names)
		switch {
		case hint != "":
		case len(names) == 0:
			hint = "it ships none; give weights: instead"
		default:
			hint = "presets: " + strings.Join(names, ", ")
		}
		b.errorf(st.ValuePos("preset"), hint, "%s.preset: model %q has no preset %q", st.Kind, m.Model, name)
		bn.ok = false
		return
	}
	if p == nil {
		return // the plugin ships no presets: nothing static to check
	}
	if !canDo(p, cap) {
		hint := "none of its presets can"
		if len(able) > 0 {
			hint = "presets that can: " + strings.Join(able, ", ")
		}
		pos := st.ValuePos("preset")
		if name == "" {
			pos = st.KindPos
			name = fmt.Sprintf("%q (the default)", p.Name)
		} else {
			name = fmt.Sprintf("%q", name)
		}
		b.errorf(pos, hint, "stage %s: preset %s of model %q cannot %s", st.Name(), name, m.Model, cap)
		bn.ok = false
		return
	}
	m.Preset = p.Name
	m.PresetSpec = p
	if _, written := st.Value.(map[string]any)["conform"]; p.ExactInput && !written && cap != sdk.CapGenerate {
		m.Conform, m.ConformExact = stages.ConformOff, true
	}
}

// pluginParams checks the keys that are not host keys against the
// plugin's declared parameters.
func (b *builder) pluginParams(bn *bnode, m *ModelStage, cs *sdk.CapabilitySpec, vals map[string]any, host []sdk.Param) {
	st := bn.st
	var names []string
	for _, p := range host {
		names = append(names, p.Name)
	}
	for _, p := range cs.Params {
		names = append(names, p.Name)
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.ContainsFunc(cs.Params, func(p sdk.Param) bool { return p.Name == k }) {
			// Checked here, not by CheckParams, so that "did you mean"
			// also offers the host keys (preset, weights, ...).
			hint := suggest.DidYouMean(k, names)
			if hint == "" {
				hint = fmt.Sprintf("%s %s takes %s", m.Model, st.Kind, strings.Join(names, ", "))
			}
			b.errorf(st.KeyPos(k), hint, "%s: unknown parameter %q", st.Kind, k)
			delete(vals, k)
		}
	}
	params, errs := sdk.CheckParams(cs.Params, vals, string(st.Kind))
	b.paramErrors(st, errs, true)
	m.Params = params
}

// labels checks generate's labels against the preset's classes.
func (b *builder) labels(bn *bnode, m *ModelStage) {
	st := bn.st
	if m.Labels == nil && !m.Each && !m.Random {
		return
	}
	classes := 0
	if m.PresetSpec != nil {
		classes = m.PresetSpec.Classes
	}
	if classes == 0 {
		b.errorf(st.KeyPos("labels"), "remove labels, or choose a conditional preset", "generate.labels: model %q%s is not conditional (it declares no classes)", m.Model, presetText(m))
		return
	}
	_, list := st.Value.(map[string]any)["labels"].([]any)
	for i, l := range m.Labels {
		if l < classes {
			continue
		}
		path := "labels"
		if list {
			path = fmt.Sprintf("labels[%d]", i)
		}
		b.errorf(st.ValuePos(path), "", "generate.labels: label %d is out of range: model %q%s has %d classes (0 to %d)", l, m.Model, presetText(m), classes, classes-1)
	}
}

func presetText(m *ModelStage) string {
	if m.Preset == "" {
		return ""
	}
	return fmt.Sprintf(" preset %q", m.Preset)
}

// saveTargets reports the file-name collisions the file shows, between
// save stages and between the inputs of one (stages.CheckSaveTargets).
func (b *builder) saveTargets() {
	var ts []stages.SaveTarget
	var sts []*spec.Stage
	for _, bn := range b.nodes {
		if bn.st.Kind != spec.Save || !bn.ok {
			continue
		}
		vals, _ := bn.n.Values.(map[string]any)
		dir, _ := vals["dir"].(string)
		t := stages.SaveTarget{ID: bn.st.ID, Params: vals, Dir: dir}
		if !blobstore.IsBlob(dir) {
			t.Dir = b.abs(filepath.FromSlash(blobstore.LocalPath(dir)))
		}
		for _, in := range bn.inputs {
			t.Inputs = append(t.Inputs, in.st.ID)
		}
		ts, sts = append(ts, t), append(sts, bn.st)
	}
	for i, errs := range stages.CheckSaveTargets(ts) {
		b.paramErrors(sts[i], errs, false)
	}
}
