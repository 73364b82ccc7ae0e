package spec

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// errLines formats errs one per line, as `pipeline validate` prints them.
func errLines(errs Errors) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestParseErrors(t *testing.T) {
	const head = "version: 1\nname: t\n"
	tests := []struct {
		name      string
		src       string
		overrides []string
		want      []string
	}{
		{name: "valid", src: head + "stages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    save: {dir: out}\n"},
		{name: "empty file", src: "", want: []string{"p.yaml:1:1: the file is empty (start with version: 1, name and stages)"}},
		{name: "only a comment", src: "# nothing\n", want: []string{"p.yaml:1:1: the file is empty (start with version: 1, name and stages)"}},
		{name: "not a mapping", src: "- a\n- b\n", want: []string{"p.yaml:1:1: expected a mapping with version, name and stages, got a list"}},
		{name: "syntax error with line", src: "version: 1\nname: [a,\nstages: []\n", want: []string{"p.yaml:3:1: invalid YAML: did not find expected ',' or ']'"}},
		{name: "bad indentation of a stage key", src: "version: 1\nname: x\nstages:\n  - id: a\n    load: {dir: x}\n   save: {dir: y}\n", want: []string{"p.yaml:6:4: invalid YAML: did not find expected '-' indicator"}},
		{name: "unclosed flow mapping", src: "version: 1\nname: x\nstages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    save: {dir: y\n  - id: c\n", want: []string{"p.yaml:7:5: invalid YAML: did not find expected ',' or '}'"}},
		{name: "bad indentation in a value", src: "version: 1\nname: x\nstages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    save:\n      dir: y\n     format: png\n", want: []string{"p.yaml:9:6: invalid YAML: did not find expected key"}},
		{name: "list then key", src: "version: 1\nname: x\nstages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    save:\n      - a\n      b: 1\n", want: []string{"p.yaml:9:7: invalid YAML: did not find expected '-' indicator"}},
		{name: "unclosed quote", src: "version: 1\nname: \"x\nstages: []\n", want: []string{"p.yaml:2:1: invalid YAML: found unexpected end of stream"}},
		{name: "syntax error on first line", src: "version: 1: 2\n", want: []string{"p.yaml:1:1: invalid YAML: mapping values are not allowed in this context"}},
		{name: "tab indentation", src: "version: 1\nname: t\nstages:\n\t- id: a\n", want: []string{"p.yaml:4:1: invalid YAML: found character that cannot start any token (indent with spaces: YAML does not allow tabs)"}},
		{name: "unknown anchor", src: head + "stages:\n  - id: a\n    load: *nope\n", want: []string{"p.yaml:5:11: invalid YAML: unknown anchor \"nope\" (define it with &nope before using *nope)"}},
		{name: "two documents", src: head + "stages:\n  - {id: a, load: {dir: x}}\n---\nname: u\n", want: []string{"p.yaml:5:1: a pipeline file holds one YAML document, found a second (put each pipeline in its own file)"}},
		{name: "missing required keys", src: "seed: 3\n", want: []string{"p.yaml:1:1: missing required key \"name\" (add name: NAME)", "p.yaml:1:1: missing required key \"stages\" (add stages: with a list of stages)", "p.yaml:1:1: missing required key \"version\" (add version: 1)"}},
		{name: "unknown top key with suggestion", src: head + "stage:\n  - {id: a, load: {dir: x}}\n", want: []string{"p.yaml:1:1: missing required key \"stages\" (add stages: with a list of stages)", "p.yaml:3:1: unknown key \"stage\" (did you mean \"stages\"?)"}},
		{name: "unknown top key without suggestion", src: head + "stages:\n  - {id: a, load: {dir: x}}\nfrobnicate: 1\n", want: []string{"p.yaml:5:1: unknown key \"frobnicate\" (the top level has version, name, seed, plugins, stages, train)"}},
		{name: "bad version", src: "version: 2\nname: t\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:1:10: unsupported version 2 (this program reads version 1)"}},
		{name: "version as string", src: "version: \"1\"\nname: t\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:1:10: version: expected an int, got string \"1\""}},
		{name: "name wrong type and empty", src: "version: 1\nname: 12\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:2:7: name: expected a string, got int 12 (quote it: \"12\")"}},
		{name: "empty name", src: "version: 1\nname: \"\"\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:2:7: name must not be empty"}},
		{name: "negative seed", src: head + "seed: -1\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:3:7: seed: -1 is not an int in [0, 18446744073709551615]"}},
		{name: "seed too large", src: head + "seed: 18446744073709551616\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:3:7: seed: 18446744073709551616 is too large (at most 18446744073709551615)"}},
		{name: "seed float", src: head + "seed: 1.5\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:3:7: seed: expected a non-negative int, got float 1.5"}},
		{name: "duplicate top key", src: head + "name: u\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:3:1: duplicate key \"name\" (first given at p.yaml:2:1)"}},
		{name: "stages not a list", src: head + "stages: {id: a}\n", want: []string{"p.yaml:3:9: stages: expected a list of stages, got a mapping"}},
		{name: "stages empty", src: head + "stages: []\n", want: []string{"p.yaml:3:9: stages: the list is empty"}},
		{name: "stage not a mapping", src: head + "stages:\n  - load\n", want: []string{"p.yaml:4:5: stage #1: expected a mapping with id and one kind (load, preprocess, encode, generate, translate, denoise, save), got string \"load\""}},
		{name: "missing id", src: head + "stages:\n  - load: {dir: x}\n", want: []string{"p.yaml:4:5: stage #1 has no id (add id: NAME)"}},
		{name: "duplicate id", src: head + "stages:\n  - id: a\n    load: {dir: x}\n  - id: a\n    save: {dir: y}\n", want: []string{"p.yaml:6:9: duplicate stage id \"a\" (first used at p.yaml:4:9)"}},
		{name: "bad id characters", src: head + "stages:\n  - id: a.b\n    load: {dir: x}\n", want: []string{"p.yaml:4:9: stage id \"a.b\" may contain only letters, digits, - and _ (ids are used in --set ID.KEY and file names)"}},
		{name: "id not a string", src: head + "stages:\n  - id: 1\n    load: {dir: x}\n", want: []string{"p.yaml:4:9: id: expected a string, got int 1 (quote it: \"1\")"}},
		{name: "unknown kind with suggestion", src: head + "stages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    tranlsate: {model: m}\n", want: []string{"p.yaml:7:5: unknown stage key \"tranlsate\" (did you mean \"translate\"?)"}},
		{name: "unknown key without suggestion", src: head + "stages:\n  - id: a\n    load: {dir: x}\n    colour: red\n", want: []string{"p.yaml:6:5: unknown stage key \"colour\" (a stage has id, input, keep and one of load, preprocess, encode, generate, translate, denoise, save)"}},
		{name: "keep errors", src: head + "stages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    keep: 3\n    save: {dir: y}\n  - id: c\n    input: a\n    keep: {score: s}\n    save: {dir: z}\n  - id: d\n    input: a\n    keep: {score: s, above: x, bleow: 1}\n    save: {dir: w}\n  - id: e\n    input: a\n    keep: {score: s, above: 2, below: 1}\n    save: {dir: v}\n  - id: f\n    input: a\n    keep: {below: 1}\n    save: {dir: u}\n",
			want: []string{
				"p.yaml:7:11: keep: expected a mapping, got int 3 (keep: {score: NAME, above: X} or {score: NAME, below: Y} (or both))",
				"p.yaml:11:11: keep: no threshold: give above, below or both (keep: {score: NAME, above: X} or {score: NAME, below: Y} (or both))",
				"p.yaml:15:29: keep.above: expected a number, got string \"x\" (keep: {score: NAME, above: X} or {score: NAME, below: Y} (or both))",
				"p.yaml:15:32: keep: unknown key \"bleow\" (keep: {score: NAME, above: X} or {score: NAME, below: Y} (or both))",
				"p.yaml:19:11: keep: above 2 and below 1 leave nothing to keep (above is the lower bound, below the upper one)",
				"p.yaml:23:11: keep: no score: name the score to keep items by (keep: {score: NAME, above: X} or {score: NAME, below: Y} (or both))",
			}},
		{name: "no kind", src: head + "stages:\n  - id: a\n    input: b\n", want: []string{"p.yaml:4:5: stage \"a\" has no kind: expected one of load, preprocess, encode, generate, translate, denoise, save"}},
		{name: "two kinds", src: head + "stages:\n  - id: a\n    translate: {model: m}\n    denoise: {model: m}\n", want: []string{"p.yaml:6:5: stage \"a\" has two kinds, translate and denoise (a stage does one thing: split it into two stages)"}},
		{name: "model kind not a mapping", src: head + "stages:\n  - id: a\n    translate: edges\n", want: []string{"p.yaml:5:16: translate: expected a mapping such as {model: NAME}, got string \"edges\""}},
		{name: "preprocess not a list", src: head + "stages:\n  - id: a\n    preprocess: {resize: {width: 2}}\n", want: []string{"p.yaml:5:17: preprocess: expected a list of operations (- grayscale, - resize: {width: W, height: H}), got a mapping"}},
		{name: "save not a mapping", src: head + "stages:\n  - id: a\n    save: [1]\n", want: []string{"p.yaml:5:11: save: expected a mapping, got a list"}},
		{name: "input wrong types", src: head + "stages:\n  - id: a\n    input: {x: 1}\n    save: {dir: x}\n  - id: b\n    input: [a, 3]\n    save: {dir: y}\n  - id: c\n    input: []\n    save: {dir: z}\n", want: []string{"p.yaml:5:12: input: expected a stage id or a list of them, got a mapping", "p.yaml:8:16: input: expected a string, got int 3 (quote it: \"3\")", "p.yaml:11:12: input: the list is empty (leave input: out to read the previous stage)"}},
		{name: "duplicate param key", src: head + "stages:\n  - id: a\n    save: {dir: x, dir: y}\n", want: []string{"p.yaml:5:20: duplicate key \"dir\" (first given at p.yaml:5:12)"}},
		{name: "non-scalar key", src: head + "stages:\n  - id: a\n    save: {[1]: x}\n", want: []string{"p.yaml:5:12: mapping keys must be plain names, got a list"}},
		{name: "int out of range", src: head + "stages:\n  - id: a\n    save: {quality: !!int 99999999999999999999}\n", want: []string{"p.yaml:5:21: int 99999999999999999999 is out of range"}},
		{name: "plugins", src: head + "plugins:\n  a: {path: x, sha256: abc}\n  b: x\n  c: {path: \"\", sha: 1}\n  d: {path: 3}\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:4:24: plugins.a.sha256: expected 64 hex digits, got 3 characters (as printed by sha256sum)", "p.yaml:5:6: plugins.b: expected a mapping {path, sha256, max_items, max_rss}, got string \"x\"", "p.yaml:6:13: plugins.c.path must not be empty", "p.yaml:6:17: unknown key \"sha\" in plugins.c (expected path, sha256, max_items or max_rss)", "p.yaml:7:13: plugins.d.path: expected a string, got int 3 (quote it: \"3\")"}},
		{name: "plugins wrong type", src: head + "plugins: [a]\nstages:\n  - {id: a, load: {}}\n", want: []string{"p.yaml:3:10: plugins: expected a mapping of plugin names to {path, sha256, max_items, max_rss}, got a list"}},
		{name: "binary tag", src: head + "stages:\n  - id: a\n    save: {dir: !!binary aGVsbG8=}\n", want: []string{"p.yaml:5:17: unsupported YAML value !!binary aGVsbG8="}},
		{name: "override errors", src: head + "stages:\n  - id: prep\n    preprocess: [grayscale]\n  - id: out\n    save: {dir: o, format: png}\n", want: []string{"--set nope.x: unknown stage \"nope\" (stages: prep, out)", "--set out: expected STAGE.KEY=VALUE (for example --set out.format=jpeg)", "--set out.: expected STAGE.KEY=VALUE (for example --set out.format=jpeg)", "--set out.a..b: empty key in \"out.a..b\"", "--set out.dir: invalid value \"[1,\": line 1: did not find expected node content (quote strings that YAML would misread)", "--set out.format.x: out.format is not a mapping (it is string \"png\"), so it has no key \"x\"", "--set outt.dir: unknown stage \"outt\" (did you mean \"out\"?)", "--set prep.x: stage \"prep\" is a preprocess stage whose value is a list: --set can only set keys of a mapping"},
			overrides: []string{"out.format.x=2", "nope.x=1", "outt.dir=a", "prep.x=1", "out", "out.=1", "out.dir=[1,", "out.a..b=1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse("p.yaml", []byte(tc.src), tc.overrides)
			got := errLines(errs)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestGolden parses every testdata/*.yaml and compares the errors and a
// dump of the spec (every stage, value and position) with NAME.golden.
// Lines "# --set STAGE.KEY=VALUE" in a file are applied as overrides.
// Run with -update to rewrite the golden files after checking the diff.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	if len(files) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var overrides []string
			for _, l := range strings.Split(string(data), "\n") {
				if o, ok := strings.CutPrefix(l, "# --set "); ok {
					overrides = append(overrides, o)
				}
			}
			s, errs := Parse(filepath.Base(f), data, overrides)
			got := dump(s, errs)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func dump(s *Spec, errs Errors) string {
	var b strings.Builder
	b.WriteString("errors:\n")
	for _, l := range errLines(errs) {
		b.WriteString("  " + l + "\n")
	}
	if s == nil {
		b.WriteString("spec: nil\n")
		return b.String()
	}
	fmt.Fprintf(&b, "version: %d\nname: %q at %s\nseed: %d at %s\nsha256: %s\n", s.Version, s.Name, s.NamePos, s.Seed, s.SeedPos, s.SHA256)
	for _, p := range s.Plugins {
		fmt.Fprintf(&b, "plugin %q at %s: path %q at %s, sha256 %q at %s\n", p.Name, p.Pos, p.Path, p.PathPos, p.SHA256, p.SHA256Pos)
	}
	for _, st := range s.Stages {
		fmt.Fprintf(&b, "stage %d %s at %s: id at %s, kind %q at %s, bad %v\n", st.Index, st.Name(), st.Pos, st.IDPos, st.Kind, st.KindPos, st.Bad)
		if st.HasInput() {
			fmt.Fprintf(&b, "  input: at %s:", st.InputPos)
			for _, r := range st.Inputs {
				fmt.Fprintf(&b, " %q at %s", r.ID, r.Pos)
			}
			b.WriteString("\n")
		}
		v, _ := json.Marshal(st.Value)
		fmt.Fprintf(&b, "  value: %s\n", v)
		paths := make([]string, 0, len(st.paths))
		for p := range st.paths {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			fmt.Fprintf(&b, "  %q key %s value %s\n", p, st.KeyPos(p), st.ValuePos(p))
		}
	}
	return b.String()
}

func TestOverrideInput(t *testing.T) {
	src := "version: 1\nname: t\nstages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    load: {dir: y}\n  - id: s\n    input: a\n    save: {dir: o}\n"
	s, errs := Parse("f.yaml", []byte(src), []string{"s.input=[a, b]"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	st := s.Stage("s")
	if len(st.Inputs) != 2 || st.Inputs[1].ID != "b" || st.Inputs[1].Pos.String() != "--set s.input" || st.InputPos.String() != "--set s.input" {
		t.Errorf("inputs %+v at %s", st.Inputs, st.InputPos)
	}
	_, errs = Parse("f.yaml", []byte(src), []string{"s.input={x: 1}", "a.id=z", "b.input=c"})
	want := []string{
		`--set a.id: --set cannot rename a stage`,
		`--set s.input: input: expected a stage id or a list of them, got a mapping`,
	}
	if got := errLines(errs); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if st := s.Stage("b"); st.HasInput() {
		t.Error("b has no input")
	}
}

func TestErrorFormat(t *testing.T) {
	errs := Errors{
		{Pos: Pos{"f.yaml", 3, 1}, Msg: "b"},
		{Pos: Pos{"f.yaml", 2, 7}, Msg: "a", Hint: "did you mean \"x\"?"},
		{Pos: Pos{File: "--set s.k"}, Msg: "flag"},
		{Pos: Pos{"f.yaml", 3, 1}, Msg: "b"},
		{Msg: "no position"},
	}
	errs.Sort()
	want := "no position\n--set s.k: flag\nf.yaml:2:7: a (did you mean \"x\"?)\nf.yaml:3:1: b"
	if got := errs.Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if (Errors{}).Err() != nil || errs.Err() == nil {
		t.Error("Err")
	}
}

func TestPositions(t *testing.T) {
	src := `version: 1
name: pos
stages:
  - id: prep
    preprocess:
      - grayscale
      - resize: {width: 256,
                 height: 256}
  - id: out
    save:
      dir: out
      grid:
        columns: 4
`
	s, errs := Parse("f.yaml", []byte(src), []string{"out.grid.padding=3", "out.animation.delay=5"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	prep, out := s.Stage("prep"), s.Stage("out")
	tests := []struct {
		st         *Stage
		path       string
		key, value string
	}{
		{prep, "", "f.yaml:5:5", "f.yaml:6:7"},
		{prep, "[0]", "f.yaml:6:9", "f.yaml:6:9"},
		{prep, "[1].resize.width", "f.yaml:7:18", "f.yaml:7:25"},
		{prep, "[1].resize.height", "f.yaml:8:18", "f.yaml:8:26"},
		{prep, ".[1].resize.height", "f.yaml:8:18", "f.yaml:8:26"},
		{prep, "[1].resize.filter", "f.yaml:7:9", "f.yaml:7:17"}, // missing: its parent
		{prep, "[0].grayscale", "f.yaml:6:9", "f.yaml:6:9"},
		{prep, "[7]", "f.yaml:5:5", "f.yaml:6:7"},
		{out, "grid.columns", "f.yaml:13:9", "f.yaml:13:18"},
		{out, "grid", "f.yaml:12:7", "f.yaml:13:9"},
		{out, "grid.padding", "--set out.grid.padding", "--set out.grid.padding"},
		{out, "animation.delay", "--set out.animation.delay", "--set out.animation.delay"},
		{out, "animation", "--set out.animation.delay", "--set out.animation.delay"},
		{out, "dir", "f.yaml:11:7", "f.yaml:11:12"},
	}
	for _, tc := range tests {
		if got := tc.st.KeyPos(tc.path).String(); got != tc.key {
			t.Errorf("%s KeyPos(%q) = %s, want %s", tc.st.ID, tc.path, got, tc.key)
		}
		if got := tc.st.ValuePos(tc.path).String(); got != tc.value {
			t.Errorf("%s ValuePos(%q) = %s, want %s", tc.st.ID, tc.path, got, tc.value)
		}
	}
	if !out.HasPath("grid.padding") || out.HasPath("grid.file") {
		t.Error("HasPath wrong")
	}
	want := map[string]any{"dir": "out", "grid": map[string]any{"columns": 4, "padding": 3}, "animation": map[string]any{"delay": 5}}
	if g, w := fmt.Sprint(out.Value), fmt.Sprint(want); g != w {
		t.Errorf("value %s, want %s", g, w)
	}
}

func TestPluginPinWithPrefix(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	src := "version: 1\nname: p\nplugins:\n  edges: {path: x, sha256: \"sha256:" + strings.ToUpper(hex) + "\"}\nstages:\n  - id: a\n    load: {dir: d}\n"
	s, errs := Parse("p.yaml", []byte(src), nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := s.Plugin("edges").SHA256; got != hex {
		t.Fatalf("pin %q, want %q", got, hex)
	}
}

// TestKeepOverrides: --set ID.keep.KEY changes one key of a stage's keep:,
// --set ID.keep=... sets it whole, also on a stage that had none; errors
// in the result name the flag.
func TestKeepOverrides(t *testing.T) {
	src := "version: 1\nname: k\nstages:\n  - id: a\n    load: {dir: x}\n  - id: b\n    keep: {score: s, below: 5}\n    save: {dir: y}\n  - id: c\n    input: a\n    save: {dir: z}\n"
	s, errs := Parse("p.yaml", []byte(src), []string{"b.keep.above=3", "c.keep={score: t, above: 1}"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	b, c := s.Stage("b").Keep, s.Stage("c").Keep
	if b == nil || b.Score != "s" || b.Above == nil || *b.Above != 3 || b.Below == nil || *b.Below != 5 {
		t.Errorf("b's keep %+v", b)
	}
	if c == nil || c.Score != "t" || c.Above == nil || *c.Above != 1 || c.Below != nil || c.ScorePos.File != "--set c.keep" {
		t.Errorf("c's keep %+v", c)
	}
	_, errs = Parse("p.yaml", []byte(src), []string{"b.keep.above=7"})
	if got := strings.Join(errLines(errs), "\n"); got != "--set b.keep.above: keep: above 7 and below 5 leave nothing to keep (above is the lower bound, below the upper one)" {
		t.Errorf("errors: %s", got)
	}
}
