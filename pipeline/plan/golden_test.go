package plan

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/genpipe/genpipe/pipeline/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden plans every testdata/*.yaml against the fake plugins and
// compares the messages, or the plan of a valid file, with NAME.golden.
// Run with -update to rewrite them after checking the diff.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	wd, _ := os.Getwd()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, errs := spec.Parse(f, data, nil)
			var p *Plan
			if s != nil {
				var perrs spec.Errors
				p, perrs = Build(context.Background(), s, &fakeDescriber{}, Options{})
				errs = append(errs, perrs...)
				errs.Sort()
			}
			var b strings.Builder
			if len(errs) > 0 {
				b.WriteString(errs.Error() + "\n")
			} else {
				dumpPlan(&b, p, wd)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if b.String() != string(want) {
				t.Errorf("%s differs:\n--- got\n%s--- want\n%s", golden, b.String(), want)
			}
		})
	}
}

func dumpPlan(b *strings.Builder, p *Plan, wd string) {
	rel := func(path string) string {
		if path == "" {
			return ""
		}
		r, err := filepath.Rel(wd, path)
		if err != nil {
			return path
		}
		return filepath.ToSlash(r)
	}
	js := func(v any) string { j, _ := json.Marshal(v); return string(j) }
	fmt.Fprintf(b, "plan %q seed %d file %s base %s sha256 %s\n", p.Name, p.Seed, p.File, rel(p.BaseDir), p.SHA256)
	for _, n := range p.Stages {
		fmt.Fprintf(b, "%s %q inputs %v -> %s\n", n.Kind, n.ID, n.Inputs, n.Out)
		if n.Values != nil {
			fmt.Fprintf(b, "  host: %s\n", js(n.Values))
		}
		if n.ConsumerInput != nil {
			fmt.Fprintf(b, "  consumer input: %s\n", js(n.ConsumerInput))
		}
		if m := n.Model; m != nil {
			fmt.Fprintf(b, "  model %s (%s) path %q sha256 %q preset %q weights %q batch %d count %d labels %v each %v\n",
				m.Model, m.Desc.Version, rel(m.Path), m.SHA256, m.Preset, rel(m.Weights), m.Batch, m.Count, m.Labels, m.Each)
			fmt.Fprintf(b, "  params: %s\n", js(m.Params))
		}
	}
}
