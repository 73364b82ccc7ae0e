package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestK8sManifests parses every manifest of examples/k8s: each document
// has apiVersion, kind and metadata.name, and every container that runs
// the pipeline image has arguments that are a valid pipeline command line
// (the command exists, its flags parse, its arguments are accepted).
func TestK8sManifests(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	commands := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for doc := 0; ; doc++ {
			var m map[string]any
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: document %d: %v", f, doc, err)
			}
			name, _ := dig(m, "metadata", "name").(string)
			if m["apiVersion"] == nil || m["kind"] == nil || name == "" {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", f, doc)
			}
			for _, c := range containers(m) {
				img, _ := c["image"].(string)
				if !strings.HasPrefix(img, "genpipe/pipeline") {
					continue
				}
				var args []string
				for _, a := range c["args"].([]any) {
					args = append(args, a.(string))
				}
				commands++
				root := newRootCmd()
				cmd, rest, err := root.Find(args)
				if err == nil {
					err = cmd.ParseFlags(rest)
				}
				if err == nil {
					err = cmd.ValidateArgs(cmd.Flags().Args())
				}
				if err != nil || cmd == root {
					t.Errorf("%s: %s: pipeline %s: %v", filepath.Base(f), name, strings.Join(args, " "), err)
				}
			}
		}
	}
	if commands < 3 {
		t.Errorf("found %d pipeline containers, want the worker, the submitter and the shards", commands)
	}
}

func dig(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

// containers are the containers of a Deployment, StatefulSet or Job.
func containers(m map[string]any) []map[string]any {
	l, _ := dig(m, "spec", "template", "spec", "containers").([]any)
	var out []map[string]any
	for _, c := range l {
		if cm, ok := c.(map[string]any); ok {
			out = append(out, cm)
		}
	}
	return out
}
