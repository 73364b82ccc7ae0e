package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fuzzDeadline bounds one input. Parse is linear in the file save for the
// syntax-error search (at most 1000 prefixes); a few seconds on a busy
// shared machine means a hang, which the fuzzer would otherwise only report
// after its own much longer timeout, without saying which input.
const fuzzDeadline = 10 * time.Second

// fuzzSeeds returns the example pipelines and the test pipelines of spec
// and plan, the starting points for the parse and plan fuzzers.
func fuzzSeeds(f *testing.F, dirs ...string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		if len(files) == 0 {
			f.Fatalf("no seed pipelines in %s", dir)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// FuzzSpecParse feeds arbitrary files and --set flags to Parse, seeded with
// the examples and the test pipelines. Parse must never panic or hang, must
// return a Spec or at least one error, and every error must carry a position:
// FILE:LINE:COL within the file, or the --set flag it comes from.
//
//	go test -run '^$' -fuzz '^FuzzSpecParse$' -parallel 1 ./pipeline/spec
func FuzzSpecParse(f *testing.F) {
	for _, b := range fuzzSeeds(f, "../../examples", "../../examples/train", "testdata", "../plan/testdata") {
		f.Add(b, "")
	}
	f.Add([]byte(trainFile), "train.epochs=4")
	f.Add([]byte("version: 1\nname: t\nstages:\n  - {id: a, translate: {model: m, k: {x: 1}}}\n"), "a.k.x=[1, {y: 2}]")
	f.Add([]byte("version: 1\nname: t\nstages:\n  - {id: a, load: &l {dir: x}}\n  - {id: b, load: *l}\n"), "a.input=[b]")
	f.Add([]byte("version: 1\nname: t\nstages:\n  - id: a\n    translate: {<<: [{model: m}, {p: 1}]}\n"), "a.p.q=1")
	f.Fuzz(func(t *testing.T, data []byte, set string) {
		// Several flags in one string: --set may be repeated.
		var overrides []string
		if set != "" {
			overrides = strings.Split(set, "\n")
		}
		type result struct {
			s    *Spec
			errs Errors
		}
		done := make(chan result, 1)
		go func() {
			s, errs := Parse("p.yaml", data, overrides)
			done <- result{s, errs}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(fuzzDeadline):
			t.Fatalf("Parse did not return within %v on %d bytes with --set %q", fuzzDeadline, len(data), overrides)
		}
		if r.s == nil && len(r.errs) == 0 {
			t.Fatal("Parse returned neither a spec nor an error")
		}
		checkErrorPositions(t, data, r.errs)
	})
}

// checkErrorPositions fails t unless every error points into p.yaml (a line
// and column that exist, or the end of the file) or at a --set flag.
func checkErrorPositions(t *testing.T, data []byte, errs Errors) {
	t.Helper()
	lines := yamlLines(data)
	for _, e := range errs {
		if e.Msg == "" {
			t.Errorf("error without a message at %s", e.Pos)
		}
		switch {
		case e.File == "p.yaml":
			if e.Line < 1 || e.Col < 1 || e.Line > lines {
				t.Errorf("error %q: position %d:%d outside the file's %d lines", e.Msg, e.Line, e.Col, lines)
			}
		case strings.HasPrefix(e.File, "--set "):
			if e.Line != 0 {
				t.Errorf("error %q at flag %q has a line", e.Msg, e.File)
			}
		default:
			t.Errorf("error %q has no position (file %q)", e.Msg, e.File)
		}
	}
}

// TestAliasLoopsAndBombs: an alias inside its own anchor (which yaml.v3
// keeps as a loop in the node tree) and aliases nested to expand
// exponentially are refused at the alias, quickly, instead of recursing
// forever or for hours.
func TestAliasLoopsAndBombs(t *testing.T) {
	const head = "version: 1\nname: t\nstages:\n  - id: a\n"
	bomb := "version: 1\nname: t\nl0: &l0 [x, x, x, x, x, x, x, x]\n"
	for i := 1; i <= 8; i++ {
		bomb += fmt.Sprintf("l%d: &l%d [*l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d, *l%[3]d]\n", i, i, i-1)
	}
	bomb += "stages:\n  - id: a\n    translate: {model: m, p: *l8}\n"
	tests := []struct {
		name, src string
		set       []string
		want      string
	}{
		{"list contains itself", head + "    translate: &x {model: m, k: [*x]}\n",
			nil, "p.yaml:5:34: alias *x refers to the mapping or list that contains it (an anchor cannot be used inside itself)"},
		{"merge of itself", head + "    translate: &x {model: m, <<: *x}\n",
			nil, "p.yaml:5:34: alias *x refers to the mapping or list that contains it (an anchor cannot be used inside itself)"},
		{"merge of itself with --set", head + "    translate: &x {<<: *x}\n",
			[]string{"a.model=m"}, "p.yaml:5:24: alias *x refers to the mapping or list that contains it (an anchor cannot be used inside itself)"},
		{"stages list", "version: 1\nname: t\nstages: &s\n  - *s\n",
			nil, "p.yaml:4:5: alias *s refers to the mapping or list that contains it (an anchor cannot be used inside itself)"},
		{"billion laughs", bomb,
			nil, "p.yaml:8:5: aliases expand the file to more than 65536 values (use fewer nested aliases)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			s, errs := Parse("p.yaml", []byte(tt.src), tt.set)
			if s != nil || errs.Error() != tt.want {
				t.Errorf("spec %v, errors:\n%v\nwant:\n%s", s != nil, errs, tt.want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestSyntaxErrorInLongFile: the line of a syntax error near the end of a
// file of a thousand long lines is found in well under a second (trying
// every prefix in turn took 20s on this machine).
func TestSyntaxErrorInLongFile(t *testing.T) {
	src := "version: 1\nname: t\nstages:\n" + strings.Repeat("  - {id: a, load: {dir: "+strings.Repeat("x", 100)+"}}\n", 995) + "  - {id: b\n"
	start := time.Now()
	_, errs := Parse("p.yaml", []byte(src), nil)
	if want := "p.yaml:999:3: invalid YAML: did not find expected ',' or '}'"; errs.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", errs, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	// A small file still gets the first failing prefix, even where a longer
	// prefix fails differently (found by FuzzSpecParse; bisection said 3).
	_, errs = Parse("p.yaml", []byte(",\n\"\n\""), nil)
	if want := "p.yaml:1:1: invalid YAML: did not find expected node content"; errs.Error() != want {
		t.Errorf("errors:\n%v\nwant:\n%s", errs, want)
	}
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
