package plan

import (
	"encoding/json"
	"slices"

	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
)

// SchemaDraft is the JSON Schema dialect [Schema] produces.
const SchemaDraft = "https://json-schema.org/draft/2020-12/schema"

type obj = map[string]any

// Schema returns a JSON Schema (draft 2020-12) of the pipeline file: the
// top-level keys, each stage as one of the kinds, the host stages' values
// from their declared specs, and for the model kinds the host keys plus,
// per plugin in descs (selected with if/then on model), that plugin's
// parameters and presets. Types, defaults, enums, ranges and docs all come
// from the declared [sdk.Param]s, the same ones the planner checks with.
// A model not in descs is accepted with free-form parameters (see
// knownModels). Rules between fields (exactly one of load's dir/list/idx, generate's count
// unless it decodes latents, shapes between stages) are left to `pipeline
// validate`.
func Schema(descs []*sdk.Description) ([]byte, error) {
	descs = slices.Clone(descs)
	slices.SortFunc(descs, func(a, b *sdk.Description) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	defs := obj{}
	var stageRefs []any
	for _, k := range spec.Kinds {
		defs[string(k)] = kindSchema(k, descs)
		defs["stage-"+string(k)] = stageSchema(k)
		stageRefs = append(stageRefs, obj{"$ref": "#/$defs/stage-" + string(k)})
	}
	defs["stage"] = obj{
		"description": "a stage: an id and exactly one kind (" + kindList() + ")",
		"oneOf":       stageRefs,
	}
	root := obj{
		"$schema":              SchemaDraft,
		"title":                "pipeline file",
		"description":          "a pipeline of stages that load, preprocess, encode, generate, translate, denoise and save images",
		"type":                 "object",
		"required":             []string{"version", "name", "stages"},
		"additionalProperties": false,
		"properties": obj{
			"version": obj{"const": spec.Version, "description": "file format version; must be 1"},
			"name":    obj{"type": "string", "minLength": 1, "description": "the pipeline's name (recorded in provenance)"},
			"seed":    obj{"type": "integer", "minimum": 0, "default": 0, "description": "pipeline seed; per-item seeds derive from it, the stage id and the item index (--seed overrides)"},
			"plugins": obj{
				"type":        "object",
				"description": "plugins: where an external one's executable is and the SHA-256 it must have; for any plugin, when to recycle its process",
				"additionalProperties": obj{
					"type":                 "object",
					"additionalProperties": false,
					"properties": obj{
						"path":      obj{"type": "string", "minLength": 1, "description": "the plugin executable, relative to the pipeline file"},
						"sha256":    obj{"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "refuse to start the plugin unless its executable has this SHA-256"},
						"max_items": obj{"type": "integer", "minimum": 1, "description": "replace the plugin's process, between batches, after it has served this many items"},
						"max_rss":   obj{"type": []string{"string", "integer"}, "description": "replace the plugin's process, between batches, once its resident memory exceeds this size (512MiB, 2GiB, 800MB; at least 1MiB)"},
					},
				},
			},
			"stages": obj{"type": "array", "minItems": 1, "items": obj{"$ref": "#/$defs/stage"}, "description": "the stages; each reads the previous one unless input: names others"},
			"train":  trainSchema(descs),
		},
		"$defs": defs,
	}
	return json.MarshalIndent(root, "", "  ")
}

// trainSchema is the schema of the train: section: its declared keys, and
// per plugin that can train (if/then on model) its presets that can and its
// train parameters under params.
func trainSchema(descs []*sdk.Description) obj {
	tp := TrainParam()
	s := paramSchema(tp)
	s["type"] = "object"
	props := s["properties"].(obj)
	props["params"] = obj{"type": []string{"object", "null"}, "description": props["params"].(obj)["description"]}
	var names []string
	var branches []any
	for _, d := range descs {
		cs := d.Capability(sdk.CapTrain)
		if cs == nil {
			continue
		}
		names = append(names, d.Name)
		then := obj{}
		tprops := obj{}
		var presets []string
		for _, p := range d.Presets {
			if p.Has(sdk.CapTrain) {
				presets = append(presets, p.Name)
			}
		}
		if len(presets) > 0 {
			tprops["preset"] = obj{"type": "string", "enum": presets}
		}
		pp := paramSchema(sdk.Param{Name: "params", Type: sdk.Object, Fields: cs.Params})
		tprops["params"] = pp
		then["properties"] = tprops
		branches = append(branches, obj{
			"if":   obj{"properties": obj{"model": obj{"const": d.Name}}, "required": []string{"model"}},
			"then": then,
		})
	}
	if len(names) > 0 {
		knownModels(props["model"].(obj), names)
	}
	if len(branches) > 0 {
		s["allOf"] = branches
	}
	return s
}

// knownModels offers names for a model key without making other names
// invalid: a file may name a plugin the schema was built without (one
// its plugins: section declares by path, or one installed later), and an
// editor must not flag a file that `pipeline validate` accepts. The
// parameters of such a model are left free; known models stay strict
// (their if/then branches).
func knownModels(model obj, names []string) {
	model["anyOf"] = []any{
		obj{"enum": names, "description": "a plugin this schema knows"},
		obj{"type": "string", "minLength": 1, "description": "a plugin this schema does not know (e.g. declared under plugins:): its parameters are not checked here; pipeline schema FILE includes the file's plugins"},
	}
}

func kindList() string {
	s := ""
	for i, k := range spec.Kinds {
		if i > 0 {
			s += ", "
		}
		s += string(k)
	}
	return s
}

func stageSchema(k spec.Kind) obj {
	props := obj{string(k): obj{"$ref": "#/$defs/" + string(k)}}
	for _, p := range StageParams() {
		s := paramSchema(p)
		if p.Name == "id" {
			s["pattern"] = "^[A-Za-z0-9_-]+$"
			s["minLength"] = 1
		}
		if p.Name == "input" {
			s = obj{"description": p.Doc, "anyOf": []any{
				obj{"type": "string"},
				obj{"type": "array", "minItems": 1, "items": obj{"type": "string"}},
			}}
		}
		props[p.Name] = s
	}
	return obj{
		"type":                 "object",
		"required":             []string{"id", string(k)},
		"additionalProperties": false,
		"properties":           props,
	}
}

// kindSchema is the schema of a kind's value.
func kindSchema(k spec.Kind, descs []*sdk.Description) obj {
	kind := stages.LookupKind(string(k))
	hp := kind.Param
	if hp.Type == sdk.List {
		// The file format wants a list here, not a single operation.
		return obj{"type": "array", "description": hp.Doc, "items": paramSchema(*hp.Elem)}
	}
	if !kind.Model {
		return paramSchema(hp)
	}
	host := obj{}
	for _, f := range hp.Fields {
		host[f.Name] = paramSchema(f)
	}
	var names []string
	var branches []any
	for _, d := range descs {
		cs := d.Capability(k.Capability())
		if cs == nil {
			continue
		}
		names = append(names, d.Name)
		props := obj{}
		for name, s := range host {
			props[name] = s
		}
		var presets []string
		for _, p := range d.Presets {
			if canDo(&p, k.Capability()) {
				presets = append(presets, p.Name)
			}
		}
		if len(presets) > 0 {
			props["preset"] = obj{"type": "string", "enum": presets, "description": host["preset"].(obj)["description"]}
		}
		var required []string
		for _, p := range cs.Params {
			if _, isHost := host[p.Name]; isHost {
				continue // the host key wins; the plugin never sees it
			}
			props[p.Name] = paramSchema(p)
			if p.Required {
				required = append(required, p.Name)
			}
		}
		then := obj{"properties": props, "additionalProperties": false}
		if len(required) > 0 {
			then["required"] = required
		}
		if doc := cs.Doc; doc != "" {
			then["description"] = d.Name + ": " + doc
		} else if d.Doc != "" {
			then["description"] = d.Name + ": " + d.Doc
		}
		branches = append(branches, obj{
			"if":   obj{"properties": obj{"model": obj{"const": d.Name}}, "required": []string{"model"}},
			"then": then,
		})
	}
	if len(names) > 0 {
		knownModels(host["model"].(obj), names)
	}
	s := obj{
		"type":        "object",
		"description": hp.Doc,
		"required":    []string{"model"},
		"properties":  host,
	}
	if len(branches) > 0 {
		s["allOf"] = branches
	}
	return s
}

// paramSchema translates one declared parameter.
func paramSchema(p sdk.Param) obj {
	s := obj{}
	switch p.Type {
	case sdk.String:
		s["type"] = "string"
		if len(p.Enum) > 0 {
			s["enum"] = p.Enum
		}
		// Formats go in as patterns, not as "format": JSON Schema's own
		// "duration" is ISO 8601 ("PT1M30S"), not a Go duration, and
		// most validators do not assert formats anyway.
		var pats []string
		if fp := p.Format.Pattern(); fp != "" {
			pats = append(pats, fp)
		}
		if p.Pattern != "" {
			pats = append(pats, sdk.AnchoredPattern(p.Pattern))
		}
		if len(pats) > 0 {
			s["pattern"] = pats[0]
		}
		if len(pats) > 1 { // one "pattern" per schema: the second in allOf
			s["allOf"] = []any{obj{"pattern": pats[1]}}
		}
	case sdk.Int, sdk.Float:
		s["type"] = "number"
		if p.Type == sdk.Int {
			s["type"] = "integer"
		}
		if p.Min != nil {
			s["minimum"] = *p.Min
		}
		if p.Max != nil {
			s["maximum"] = *p.Max
		}
	case sdk.Bool:
		s["type"] = "boolean"
	case sdk.List:
		// A single value stands for a one-element list, and Enum lists
		// special strings accepted instead of a list.
		arr := obj{"type": "array"}
		alts := []any{arr}
		if p.Elem != nil {
			e := paramSchema(*p.Elem)
			arr["items"] = e
			alts = append(alts, e)
		}
		if len(p.Enum) > 0 {
			alts = append(alts, obj{"enum": p.Enum})
		}
		s["anyOf"] = alts
	case sdk.Object:
		if p.OneOf {
			var alts []any
			var bare []string
			for _, f := range p.Fields {
				alts = append(alts, obj{
					"type":                 "object",
					"required":             []string{f.Name},
					"additionalProperties": false,
					"properties":           obj{f.Name: paramSchema(f)},
				})
				if !hasRequired(f) {
					bare = append(bare, f.Name)
				}
			}
			if len(bare) > 0 { // "- grayscale" means "- grayscale: {}"
				alts = append(alts, obj{"type": "string", "enum": bare})
			}
			s["oneOf"] = alts
			break
		}
		props := obj{}
		var required []string
		for _, f := range p.Fields {
			props[f.Name] = paramSchema(f)
			if f.Required {
				required = append(required, f.Name)
			}
		}
		s["type"] = "object"
		if len(required) > 0 {
			s["required"] = required
		} else {
			s["type"] = []string{"object", "null"} // "grid:" alone means all defaults
		}
		s["properties"] = props
		s["additionalProperties"] = false
	}
	if p.Doc != "" {
		s["description"] = p.Doc
	}
	if p.Default != nil {
		s["default"] = p.Default
	}
	return s
}

func hasRequired(p sdk.Param) bool {
	for _, f := range p.Fields {
		if f.Required {
			return true
		}
	}
	return false
}
