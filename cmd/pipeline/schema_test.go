package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaAcceptsExamples checks `pipeline schema`, as printed with the
// real plugins (the built-in classic and the external edges), the way an
// editor uses it: it compiles as a draft 2020-12 schema, every valid
// example conforms to it, and examples/invalid.yaml does not.
func TestSchemaAcceptsExamples(t *testing.T) {
	cmd := exec.Command(pipelineExe(t), "schema")
	cmd.Env = append(os.Environ(), "PIPELINE_PLUGIN_PATH="+filepath.Dir(edgesPlugin))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pipeline schema: %v", err)
	}
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
	files, _ := filepath.Glob(filepath.Join(repoRoot, "examples", "*.yaml"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(src, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		err = sch.Validate(inst)
		if invalid := strings.HasPrefix(filepath.Base(f), "invalid"); invalid != (err != nil) {
			t.Errorf("%s: schema validation error %v", filepath.Base(f), err)
		}
	}
}
