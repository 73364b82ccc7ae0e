package plan

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/genpipe/genpipe/pipeline/spec"
)

func compileSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	data, err := Schema(allDescs())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("schema is not valid JSON: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pipeline.schema.json", inst); err != nil {
		t.Fatal(err)
	}
	// Compile also validates the schema against the draft 2020-12 meta-schema.
	sch, err := c.Compile("pipeline.schema.json")
	if err != nil {
		t.Fatalf("schema does not compile: %v", err)
	}
	return sch, doc
}

// yamlInstance reads a pipeline file as a JSON value, as an editor's YAML
// language server would before applying the schema.
func yamlInstance(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func dig(t *testing.T, v any, path ...string) any {
	t.Helper()
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("schema: %s: not an object", strings.Join(path, "."))
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("schema: %s: no %q", strings.Join(path, "."), k)
		}
	}
	return v
}

// TestSchemaHasEveryParam checks that every declared parameter, host and
// plugin, appears in the schema where an editor looks for it.
func TestSchemaHasEveryParam(t *testing.T) {
	_, doc := compileSchema(t)
	defs := dig(t, doc, "$defs")
	for _, f := range HostParams("load").Fields {
		dig(t, defs, "load", "properties", f.Name, "description")
	}
	for _, f := range HostParams("save").Fields {
		dig(t, defs, "save", "properties", f.Name)
	}
	dig(t, defs, "save", "properties", "grid", "properties", "columns", "maximum")
	ops := dig(t, defs, "preprocess", "items", "oneOf").([]any)
	for _, f := range HostParams("preprocess").Elem.Fields {
		found := false
		for _, o := range ops {
			if props, ok := o.(map[string]any)["properties"].(map[string]any); ok && props[f.Name] != nil {
				found = true
				for _, sub := range f.Fields {
					dig(t, props, f.Name, "properties", sub.Name)
				}
			}
		}
		if !found {
			t.Errorf("preprocess op %q missing from the schema", f.Name)
		}
	}
	for _, k := range []spec.Kind{spec.Encode, spec.Generate, spec.Translate, spec.Denoise} {
		for _, f := range HostParams(string(k)).Fields {
			dig(t, defs, string(k), "properties", f.Name)
		}
		for _, d := range allDescs() {
			cs := d.Capability(k.Capability())
			if cs == nil {
				continue
			}
			var then map[string]any
			for _, br := range dig(t, defs, string(k), "allOf").([]any) {
				if dig(t, br, "if", "properties", "model", "const") == d.Name {
					then = dig(t, br, "then").(map[string]any)
				}
			}
			if then == nil {
				t.Errorf("%s: no branch for model %q", k, d.Name)
				continue
			}
			for _, p := range cs.Params {
				dig(t, then, "properties", p.Name, "type")
			}
			for _, f := range HostParams(string(k)).Fields {
				dig(t, then, "properties", f.Name)
			}
		}
	}
	enum := dig(t, dig(t, defs, "translate", "properties", "model", "anyOf").([]any)[0], "enum").([]any)
	if len(enum) != 4 { // bare, cyclegan, edges, local
		t.Errorf("translate models %v", enum)
	}
	if _, leak := dig(t, defs, "translate", "properties").(map[string]any)["method"]; leak {
		t.Error("plugin params leak into the base translate schema")
	}
}

// TestSchemaValidatesExamples checks the valid pipelines of testdata/
// against the schema, and that typical mistakes fail it.
func TestSchemaValidatesExamples(t *testing.T) {
	sch, _ := compileSchema(t)
	for _, f := range []string{"edges-batch.yaml", "digits.yaml", "vae-roundtrip.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(yamlInstance(t, data)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	const ok = "version: 1\nname: t\nstages:\n  - id: a\n    load: {dir: x}\n"
	if err := sch.Validate(yamlInstance(t, []byte(ok))); err != nil {
		t.Fatalf("minimal pipeline: %v", err)
	}
	bad := map[string]string{
		"unknown top key":      ok + "extra: 1\n",
		"version 2":            strings.Replace(ok, "version: 1", "version: 2", 1),
		"no stages":            "version: 1\nname: t\n",
		"two kinds":            ok + "    save: {dir: y}\n",
		"unknown stage key":    ok + "    colour: 1\n",
		"bad id":               strings.Replace(ok, "id: a", "id: a.b", 1),
		"unknown load key":     strings.Replace(ok, "{dir: x}", "{dir: x, glb: y}", 1),
		"unknown preprocess":   ok + "  - id: p\n    preprocess: [sharpn]\n",
		"op needs its args":    ok + "  - id: p\n    preprocess: [rotate]\n",
		"op out of range":      ok + "  - id: p\n    preprocess: [{resize: {width: -1}}]\n",
		"enum":                 ok + "  - id: s\n    save: {dir: o, format: tiff}\n",
		"save without dir":     ok + "  - id: s\n    save: {format: png}\n",
		"unknown plugin param": ok + "  - id: t\n    translate: {model: edges, treshold: 1}\n",
		"plugin param range":   ok + "  - id: t\n    translate: {model: edges, threshold: 2}\n",
		"plugin enum":          ok + "  - id: t\n    translate: {model: cyclegan, direction: up}\n",
		"preset of model":      ok + "  - id: t\n    translate: {model: edges, preset: mnist}\n",
		"model missing":        ok + "  - id: t\n    translate: {preset: x}\n",
		"batch below 1":        ok + "  - id: t\n    translate: {model: edges, batch: 0}\n",
		"required plugin":      ok + "  - id: t\n    denoise: {model: diffusion}\n",
		"bad sha256":           ok + "plugins:\n  x: {sha256: abc}\n",
	}
	for name, src := range bad {
		if err := sch.Validate(yamlInstance(t, []byte(src))); err == nil {
			t.Errorf("%s: the schema accepts it", name)
		}
	}
	okToo := map[string]string{
		"single op shorthand": ok + "  - id: p\n    preprocess: [grayscale, {conform: {}}, {grayscale: }]\n",
		"labels forms":        ok + "  - id: g\n    generate: {model: gan, count: 2, labels: each}\n  - id: h\n    generate: {model: gan, count: 2, labels: 3}\n",
		"input forms":         ok + "  - id: s\n    input: a\n    save: {dir: o, grid: }\n  - id: u\n    input: [a, s]\n    save: {dir: o}\n",
		// A model the schema does not know (declared under plugins:, or
		// installed later) must not make a valid file invalid: its
		// parameters are free, while known models stay strict (above).
		"model the schema does not know": ok + "  - id: t\n    translate: {model: mine, knob: 3, mode: {a: 1}}\nplugins:\n  mine: {path: bin/mine}\n",
		"plugin by path":                 ok + "plugins:\n  x: {path: bin/x, sha256: " + strings.Repeat("ab", 32) + "}\n",
	}
	for name, src := range okToo {
		if err := sch.Validate(yamlInstance(t, []byte(src))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSchemaWithoutPlugins(t *testing.T) {
	data, err := Schema(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	inst, _ := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err := c.AddResource("s.json", inst); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("s.json")
	if err != nil {
		t.Fatal(err)
	}
	// With no plugin known, any model and parameters are accepted.
	src := "version: 1\nname: t\nstages:\n  - id: t\n    translate: {model: anything, knob: 3}\n"
	if err := sch.Validate(yamlInstance(t, []byte(src))); err != nil {
		t.Error(err)
	}
}
