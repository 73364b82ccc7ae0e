package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaAcceptsExamples checks `pipeline schema`, as printed with the
// real plugins, the way an editor uses it: it compiles as a draft 2020-12
// schema, every valid example conforms to it, and examples/invalid.yaml
// does not. Twice: with the external edges plugin on the search path, and
// without it, as a user who declares it only under plugins: (as
// examples/sketch-photos.yaml does) prints the schema, so edges is a model
// the schema does not know and must not make that valid file invalid.
func TestSchemaAcceptsExamples(t *testing.T) {
	for name, path := range map[string]string{"edges on the path": filepath.Dir(edgesPlugin), "edges unknown": ""} {
		t.Run(name, func(t *testing.T) {
			sch := compileSchemaOf(t, schemaOutput(t, "PIPELINE_PLUGIN_PATH="+path))
			files, _ := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
			if len(files) < 5 {
				t.Fatalf("found %d examples", len(files))
			}
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				err = sch.Validate(yamlJSON(t, src))
				if invalid := strings.HasPrefix(filepath.Base(f), "invalid"); invalid != (err != nil) {
					t.Errorf("%s: schema validation error %v", filepath.Base(f), err)
				}
			}
		})
	}
}

// TestSchemaFile checks `pipeline schema FILE`: the plugins FILE declares
// under plugins: are started and their parameters checked strictly, where
// the plain schema, which does not know them, leaves them free.
func TestSchemaFile(t *testing.T) {
	dir := t.TempDir()
	const head = "version: 1\nname: s\nplugins:\n  edges: {path: %s}\nstages:\n  - id: in\n    load: {dir: in}\n  - id: e\n    translate: {model: edges, %s}\n"
	good := fmt.Sprintf(head, edgesPlugin, "method: canny, sigma: 2")
	typo := fmt.Sprintf(head, edgesPlugin, "methd: canny")
	file := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(file, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	withFile := compileSchemaOf(t, schemaOutput(t, "PIPELINE_PLUGIN_PATH=", file))
	plain := compileSchemaOf(t, schemaOutput(t, "PIPELINE_PLUGIN_PATH="))
	if err := withFile.Validate(yamlJSON(t, []byte(good))); err != nil {
		t.Errorf("schema FILE rejects FILE: %v", err)
	}
	if err := withFile.Validate(yamlJSON(t, []byte(typo))); err == nil {
		t.Error("schema FILE accepts an unknown parameter of FILE's plugin")
	}
	for _, src := range []string{good, typo} {
		if err := plain.Validate(yamlJSON(t, []byte(src))); err != nil {
			t.Errorf("plain schema rejects a model it does not know: %v", err)
		}
	}
	// A plugin that cannot start is an error at its path.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(fmt.Sprintf(head, "bin/nosuch", "method: canny")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pipelineExe(t), "schema", bad)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), bad+":4:17: ") {
		t.Errorf("schema with a missing plugin: err %v, output %s", err, out)
	}
}

// schemaOutput runs pipeline schema with env added and returns stdout.
func schemaOutput(t *testing.T, env string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(pipelineExe(t), append([]string{"schema"}, args...)...)
	cmd.Env = append(os.Environ(), env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pipeline schema %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

func compileSchemaOf(t *testing.T, out []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("pipeline schema printed invalid JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pipeline.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("pipeline.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return sch
}

// yamlJSON is a YAML document as the JSON value a schema validator checks.
func yamlJSON(t *testing.T, src []byte) any {
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
