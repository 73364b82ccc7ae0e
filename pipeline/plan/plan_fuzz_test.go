package plan

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/spec"
)

// fuzzDeadline bounds one input: parsing and planning a file are linear in
// its size, so seconds mean a hang (which the fuzzer itself would only
// report much later, without naming the input).
const fuzzDeadline = 10 * time.Second

// FuzzPlan parses and plans arbitrary files as `pipeline validate` does, with
// the fake plugin descriptions of the plan tests (so no plugin process is
// started per input), seeded with the examples, the train examples and the
// spec and plan test pipelines. It must never panic or hang; it returns a
// plan or errors, never both; every error points into the file or at a
// --set flag; a plan lists every stage after the stages it reads.
//
//	go test -run '^$' -fuzz '^FuzzPlan$' -parallel 1 ./pipeline/plan
func FuzzPlan(f *testing.F) {
	for _, dir := range []string{"../../examples", "../../examples/train", "../spec/testdata", "testdata"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no seed pipelines in %s (%v)", dir, err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, "", true)
		}
	}
	f.Add([]byte("version: 1\nname: t\nstages:\n  - {id: in, load: {dir: x}}\ntrain: {model: trainonly, input: in, output: w/out.bin}\n"), "train.epochs=2", true)
	f.Add([]byte("version: 1\nname: t\nstages:\n  - {id: g, generate: {model: gan, count: 3, labels: each}}\n  - {id: s, save: {dir: o, grid: {columns: 2}}}\n"), "s.input=g", false)
	f.Add([]byte("version: 1\nname: t\nstages:\n  - {id: a, input: b, translate: {model: edges}}\n  - {id: b, input: a, translate: {model: edges}}\n"), "", true)
	f.Fuzz(func(t *testing.T, data []byte, set string, skipFiles bool) {
		var overrides []string
		if set != "" {
			overrides = strings.Split(set, "\n")
		}
		type result struct {
			p    *Plan
			errs spec.Errors
			ok   bool // Build returned a plan xor errors
		}
		done := make(chan result, 1)
		go func() {
			s, errs := spec.Parse("p.yaml", data, overrides)
			if s == nil {
				done <- result{errs: errs, ok: len(errs) > 0}
				return
			}
			p, perrs := Build(context.Background(), s, &fakeDescriber{}, Options{SkipFiles: skipFiles})
			ok := (p == nil) != (len(perrs) == 0)
			errs = append(errs, perrs...)
			if len(errs) > 0 {
				p = nil
			}
			done <- result{p, errs, ok}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(fuzzDeadline):
			t.Fatalf("parse and plan did not return within %v on %d bytes with --set %q", fuzzDeadline, len(data), overrides)
		}
		if !r.ok {
			t.Fatalf("Build returned a plan and errors, or neither: %v", r.errs)
		}
		lines := yamlLines(data)
		for _, e := range r.errs {
			switch {
			case e.Msg == "":
				t.Errorf("error without a message at %s", e.Pos)
			case e.File == "p.yaml":
				if e.Line < 1 || e.Col < 1 || e.Line > lines {
					t.Errorf("error %q: position %d:%d outside the file's %d lines", e.Msg, e.Line, e.Col, lines)
				}
			case strings.HasPrefix(e.File, "--set "):
			default:
				t.Errorf("error %q has no position (file %q)", e.Msg, e.File)
			}
		}
		if r.p == nil {
			return
		}
		var seen []string
		for _, st := range r.p.Stages {
			for _, in := range st.Inputs {
				if !slices.Contains(seen, in) {
					t.Errorf("stage %q reads %q, which is not planned before it", st.ID, in)
				}
			}
			seen = append(seen, st.ID)
		}
	})
}

// yamlLines counts lines as YAML does: \r\n, \r, \n, NEL, LS and PS each
// end one.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	n := 1
	for _, r := range s {
		switch r {
		case '\n', '\r', '\u0085', '\u2028', '\u2029':
			n++
		}
	}
	return n
}
