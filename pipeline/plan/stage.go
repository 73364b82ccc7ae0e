package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// hostStage validates a load, preprocess or save stage. Preprocess's
// cross-op checks need the consumer's contract and run in contract.
func (b *builder) hostStage(bn *bnode) {
	st := bn.st
	kind := string(st.Kind)
	hp := HostParams(kind)
	if st.Kind == spec.Preprocess {
		vals, errs := sdk.CheckParams([]sdk.Param{hp}, map[string]any{kind: st.Value}, "")
		b.paramErrors(st, errs, true)
		bn.n.Host = vals[kind]
		bn.ok = len(errs) == 0
		return
	}
	// load and save are mappings (spec checked that): checking their fields
	// directly keeps the valid ones when others are wrong, so the checks
	// of single fields below still run.
	m, _ := st.Value.(map[string]any)
	vals, errs := sdk.CheckParams(hp.Fields, m, kind)
	b.paramErrors(st, errs, true)
	bn.ok = len(errs) == 0
	bn.n.Host = map[string]any(vals)
	switch st.Kind {
	case spec.Load:
		if !bn.ok {
			return // the rules between fields need every field valid
		}
		lerrs := stages.CheckLoad(vals)
		b.paramErrors(st, lerrs, false)
		if len(lerrs) == 0 && !b.opts.SkipFiles {
			b.loadFiles(st, vals)
		}
	case spec.Save:
		serrs := stages.CheckSave(vals)
		if !bn.ok {
			// Some fields are invalid and missing from vals: keep only the
			// checks that depend on one field alone, and only on fields
			// that are there.
			serrs = slices.DeleteFunc(serrs, func(e *sdk.ParamError) bool {
				return !slices.Contains(singleFieldSaveChecks, e.Path) || !hasPath(vals, e.Path)
			})
		}
		b.paramErrors(st, serrs, false)
	}
}

// singleFieldSaveChecks are the paths of stages.CheckSave's errors that
// depend on that field alone.
var singleFieldSaveChecks = []string{"name", "grid.file", "grid.background", "animation.file"}

// hasPath reports whether the dotted path exists in m.
func hasPath(m map[string]any, path string) bool {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = mm[k]; !ok {
			return false
		}
	}
	return true
}

// loadFiles checks that a load stage's sources exist.
func (b *builder) loadFiles(st *spec.Stage, p sdk.Params) {
	for _, k := range []string{"dir", "list", "idx", "idx_labels"} {
		name := p.String(k)
		if name == "" {
			continue
		}
		fi, err := os.Stat(b.abs(name))
		what := "file"
		if k == "dir" {
			what = "folder"
		}
		switch {
		case err != nil:
			b.errorf(st.ValuePos(k), relHint, "load.%s: %s %q not found", k, what, name)
		case k == "dir" && !fi.IsDir():
			b.errorf(st.ValuePos(k), "", "load.dir: %q is a file, expected a folder", name)
		case k != "dir" && fi.IsDir():
			b.errorf(st.ValuePos(k), "", "load.%s: %q is a folder, expected a file", k, name)
		}
	}
}

// modelStage validates an encode, generate, translate or denoise stage:
// the host keys, the model and its capability, the preset, the weights,
// labels, and the plugin's own parameters.
func (b *builder) modelStage(bn *bnode) {
	st := bn.st
	kind := st.Kind
	cap := kind.Capability()
	all, _ := st.Value.(map[string]any)
	hostSpecs := modelHostFields(kind)
	hostVals, pluginVals := map[string]any{}, map[string]any{}
	for k, v := range all {
		if slices.ContainsFunc(hostSpecs, func(p sdk.Param) bool { return p.Name == k }) {
			hostVals[k] = v
		} else {
			pluginVals[k] = v
		}
	}
	hv, errs := sdk.CheckParams(hostSpecs, hostVals, string(kind))
	b.paramErrors(st, errs, true)
	m := &ModelStage{Model: hv.String("model"), Batch: hv.Int("batch"), Count: hv.Int("count")}
	bn.n.Model = m
	if labels, ok := hv["labels"]; ok {
		if s, ok := labels.(string); ok && s == "each" {
			m.Each = true
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
				b.errorf(st.ValuePos("weights"), relHint, "%s.weights: file %q not found", kind, w)
			case fi.IsDir():
				b.errorf(st.ValuePos("weights"), "", "%s.weights: %q is a folder, expected a weights file", kind, w)
			}
		}
	}
	if m.Model == "" {
		bn.ok = false // missing or mistyped: reported by CheckParams
		return
	}
	if pl := b.s.Plugin(m.Model); pl != nil {
		if pl.Path != "" {
			m.Path = b.abs(pl.Path)
		}
		m.SHA256 = pl.SHA256
	}
	modelPos := st.ValuePos("model")
	if !b.known(m.Model) {
		names := b.knownNames()
		hint := sdk.Suggest(m.Model, names)
		if hint == "" && len(names) > 0 {
			hint = "known models: " + strings.Join(names, ", ")
		}
		if hint == "" {
			hint = "no plugins found; give its executable in plugins:"
		}
		b.errorf(modelPos, hint, "%s.model: unknown model %q", kind, m.Model)
		bn.ok = false
		return
	}
	if b.badPath[m.Model] {
		bn.ok = false // its path: is reported already
		return
	}
	desc, err, first := b.describe(m.Model)
	if err != nil {
		if first { // once per model, not once per stage using it
			b.errorf(modelPos, "", "%s.model: cannot describe plugin %q: %v", kind, m.Model, err)
		}
		bn.ok = false
		return
	}
	m.Desc = desc
	if m.Batch == 0 {
		m.Batch = desc.BatchSize
		if m.Batch <= 0 {
			m.Batch = DefaultBatch
		}
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

func (b *builder) preset(bn *bnode, m *ModelStage, name string) {
	st := bn.st
	cap := st.Kind.Capability()
	var names, able []string
	for _, p := range m.Desc.Presets {
		names = append(names, p.Name)
		if canDo(&p, cap) {
			able = append(able, p.Name)
		}
	}
	p := m.Desc.Preset(name)
	if name == "" && p != nil && !canDo(p, cap) {
		// The plugin's default preset serves other capabilities (say a
		// denoiser's): the default for this stage is the first that can.
		for i := range m.Desc.Presets {
			if canDo(&m.Desc.Presets[i], cap) {
				p = &m.Desc.Presets[i]
				break
			}
		}
	}
	if p == nil && name != "" {
		hint := sdk.Suggest(name, names)
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
			hint := sdk.Suggest(k, names)
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
	if m.Labels == nil && !m.Each {
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
		vals, _ := bn.n.Host.(map[string]any)
		dir, _ := vals["dir"].(string)
		t := stages.SaveTarget{ID: bn.st.ID, Params: vals, Dir: b.abs(filepath.FromSlash(dir))}
		for _, in := range bn.inputs {
			t.Inputs = append(t.Inputs, in.st.ID)
		}
		ts, sts = append(ts, t), append(sts, bn.st)
	}
	for i, errs := range stages.CheckSaveTargets(ts) {
		b.paramErrors(sts[i], errs, false)
	}
}
