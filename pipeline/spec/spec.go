// Package spec reads a pipeline file into a [Spec]: strictly (unknown keys,
// wrong types, missing or duplicate ids are errors), keeping the position of
// every node so that later checks, such as the planner's parameter
// validation, can point at the exact line and column.
//
// Parse checks the structure of the file; what a stage's parameters mean is
// checked by package plan, which knows the host stages and the plugins.
package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/genpipe/genpipe/sdk"
	"gopkg.in/yaml.v3"
)

// Version is the pipeline file format version this package reads.
const Version = 1

// Kind is a stage kind: the key of a stage that says what it does.
type Kind string

// The stage kinds. The model kinds are also the names of the plugin
// capabilities that serve them.
const (
	Load       Kind = "load"
	Preprocess Kind = "preprocess"
	Encode     Kind = "encode"
	Generate   Kind = "generate"
	Translate  Kind = "translate"
	Denoise    Kind = "denoise"
	Save       Kind = "save"
)

// Kinds lists every stage kind in the order docs present them.
var Kinds = []Kind{Load, Preprocess, Encode, Generate, Translate, Denoise, Save}

// IsModel reports whether stages of kind k are run by a plugin.
func (k Kind) IsModel() bool {
	return k == Encode || k == Generate || k == Translate || k == Denoise
}

// Capability is the plugin capability that serves a model kind.
func (k Kind) Capability() sdk.Capability { return sdk.Capability(k) }

func isKind(s string) bool {
	for _, k := range Kinds {
		if string(k) == s {
			return true
		}
	}
	return false
}

func kindNames() []string {
	out := make([]string, len(Kinds))
	for i, k := range Kinds {
		out[i] = string(k)
	}
	return out
}

// Top-level keys and stage keys (besides the kind) of the file format.
var (
	TopKeys   = []string{"version", "name", "seed", "plugins", "stages", "train"}
	StageKeys = []string{"id", "input", "keep"}
)

// Spec is a parsed pipeline file.
type Spec struct {
	// File is the file name as given to Parse; positions use it.
	File string
	// SHA256 is the hex SHA-256 of the file's bytes (before overrides).
	SHA256 string
	// Overrides are the --set flags applied, as given.
	Overrides []string
	// Version is the file's version: (0 when missing or invalid).
	Version int
	// Name is the pipeline's name: and NamePos where it is written.
	Name    string
	NamePos Pos
	// Seed is the pipeline seed (0 when absent); SeedPos.Line is 0 then.
	Seed    uint64
	SeedPos Pos
	// Plugins are the entries of the plugins: section, in file order.
	Plugins []*Plugin
	// Stages are the stages in file order, including ones with errors.
	Stages []*Stage
	// Train is the train: section, nil when the file has none.
	Train *Train
}

// Train is the train: section of a pipeline file: what `pipeline train`
// trains, on which stage's items, and where the weights go. Like a stage's
// kind value, its keys are kept as plain values with their positions; the
// planner checks what they mean.
type Train struct {
	// Pos is the position of the train: key.
	Pos Pos
	// Value is the section as plain Go values (see [Stage.Value]); nil when
	// Bad.
	Value map[string]any
	// Node is the section's YAML value.
	Node *yaml.Node
	// Bad marks a section that is not a mapping (an error was reported).
	Bad bool

	paths positions
}

// KeyPos returns the position of the key at path within the section
// ("epochs", "checkpoint.every", "" for the train: key); a path that does
// not exist yields its nearest existing parent. See [Stage.KeyPos].
func (t *Train) KeyPos(path string) Pos { return t.paths.lookup(path, t.Pos).key }

// ValuePos is like [Train.KeyPos] but returns the position of the value.
func (t *Train) ValuePos(path string) Pos { return t.paths.lookup(path, t.Pos).value }

// HasPath reports whether path exists in the section.
func (t *Train) HasPath(path string) bool {
	_, ok := t.paths[strings.TrimPrefix(path, ".")]
	return ok
}

// Stage returns the first stage with the given id, or nil.
func (s *Spec) Stage(id string) *Stage {
	for _, st := range s.Stages {
		if st.ID == id && id != "" {
			return st
		}
	}
	return nil
}

// Plugin returns the plugins: entry for name, or nil.
func (s *Spec) Plugin(name string) *Plugin {
	for _, p := range s.Plugins {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// StageIDs returns the distinct ids of the stages, in file order.
func (s *Spec) StageIDs() []string {
	var ids []string
	for _, st := range s.Stages {
		if st.ID != "" && !slices.Contains(ids, st.ID) {
			ids = append(ids, st.ID)
		}
	}
	return ids
}

// Plugin is an entry of the plugins: section: where an external plugin is
// and the SHA-256 its executable must have.
type Plugin struct {
	Name string
	// Path is the executable as written (relative to the pipeline file
	// unless absolute); "" when only a checksum is pinned.
	Path string
	// SHA256 is the lowercase hex checksum, "" when not pinned.
	SHA256    string
	Pos       Pos
	PathPos   Pos
	SHA256Pos Pos
	// MaxItems and MaxRSS recycle a plugin that runs for long: its
	// process is replaced, between batches, after MaxItems items or once
	// its resident memory exceeds MaxRSS bytes (0: never).
	MaxItems int
	MaxRSS   int64
}

// Stage is one stage of the pipeline.
type Stage struct {
	// Index is the stage's position in the file's list, from 0.
	Index int
	// ID is "" when the stage has none (an error already reported).
	ID    string
	IDPos Pos
	// Pos is the start of the stage's mapping.
	Pos Pos
	// Kind is "" when the stage has no valid kind (an error already
	// reported); KindPos is the position of the kind key.
	Kind    Kind
	KindPos Pos
	// Inputs are the stages named by input:, nil when there is no input: key
	// (the planner then picks the default). InputPos is the input: key.
	Inputs   []Ref
	InputPos Pos
	// Keep is the stage's keep: filter, nil when it has none (or when it
	// is invalid: an error was reported).
	Keep *Keep
	// keepNode is the keep: value and keepKey its key, for --set.
	keepNode, keepKey *yaml.Node
	// Value is the kind's value as plain Go values: map[string]any, []any,
	// string, int, float64, bool and nil.
	Value any
	// Node is the kind's YAML value (after overrides).
	Node *yaml.Node
	// Bad marks a stage whose kind or kind value is unusable; an error was
	// reported and later checks should skip it.
	Bad bool

	paths positions
}

// Keep is a stage's keep: the items it reads pass only when their score
// Score is greater than Above and less than Below (each when set). A NaN
// score passes neither.
type Keep struct {
	Score    string
	Above    *float64
	Below    *float64
	Pos      Pos // the keep: key
	ScorePos Pos // the score's value
}

// Pass reports whether a score value passes the filter.
func (k *Keep) Pass(v float64) bool {
	if v != v {
		return false
	}
	return (k.Above == nil || v > *k.Above) && (k.Below == nil || v < *k.Below)
}

// String is the filter as the summary and provenance say it.
func (k *Keep) String() string {
	var parts []string
	if k.Above != nil {
		parts = append(parts, fmt.Sprintf("%s > %v", k.Score, *k.Above))
	}
	if k.Below != nil {
		parts = append(parts, fmt.Sprintf("%s < %v", k.Score, *k.Below))
	}
	return strings.Join(parts, " and ")
}

// Name is how messages name the stage: its id, or its number when it has
// no id.
func (st *Stage) Name() string {
	if st.ID != "" {
		return strconv.Quote(st.ID)
	}
	return fmt.Sprintf("#%d", st.Index+1)
}

// HasInput reports whether the stage has an input: key.
func (st *Stage) HasInput() bool { return st.Inputs != nil }

// Ref is a stage id written in input:, with its position.
type Ref struct {
	ID  string
	Pos Pos
}

type nodePos struct{ key, value Pos }

// positions maps the paths of a value's keys and list items ("grid.columns",
// "[2].resize") to where they are written.
type positions map[string]nodePos

// lookup returns the position of path, or of its nearest existing parent;
// root is the position of the whole value's key.
func (ps positions) lookup(path string, root Pos) nodePos {
	path = strings.TrimPrefix(path, ".")
	for {
		if p, ok := ps[path]; ok {
			return p
		}
		if path == "" {
			return nodePos{root, root}
		}
		i := max(strings.LastIndexByte(path, '.'), strings.LastIndexByte(path, '['))
		if i < 0 {
			path = ""
		} else {
			path = path[:i]
		}
	}
}

// KeyPos returns the position of the key (or list item) at path within the
// stage's kind value: "" is the kind key itself, "grid.columns" a nested key,
// "[2].resize.width" a key inside a list item; paths use the syntax of
// [sdk.ParamError]. A path that does not exist (a missing parameter) yields
// the position of its nearest existing parent.
func (st *Stage) KeyPos(path string) Pos { return st.lookup(path).key }

// ValuePos is like [Stage.KeyPos] but returns the position of the value,
// which is where a wrong value is best pointed at.
func (st *Stage) ValuePos(path string) Pos { return st.lookup(path).value }

// HasPath reports whether path exists in the stage's kind value.
func (st *Stage) HasPath(path string) bool {
	_, ok := st.paths[strings.TrimPrefix(path, ".")]
	return ok
}

func (st *Stage) lookup(path string) nodePos { return st.paths.lookup(path, st.KindPos) }

// Parse reads a pipeline file. file names it in positions; data is its
// content; overrides are --set flags (STAGE.KEY=VALUE) applied before the
// values are read (KEY may be dotted for nested mappings, and "input" sets
// the stage's input:). It returns every problem found. The Spec is nil only when
// the file is not usable YAML or not a mapping; otherwise it holds whatever
// could be read, so that the planner can report its own problems too.
func Parse(file string, data []byte, overrides []string) (*Spec, Errors) {
	p := &parser{file: file, origin: map[*yaml.Node]string{}}
	sum := sha256.Sum256(data)
	s := &Spec{File: file, SHA256: hex.EncodeToString(sum[:]), Overrides: overrides}
	root := p.document(data)
	if root == nil {
		p.errs.Sort()
		return nil, p.errs
	}
	p.top(s, root)
	p.applyOverrides(s, overrides)
	for _, st := range s.Stages {
		st.paths = positions{}
		if st.Node == nil || st.Bad {
			continue
		}
		v := deref(st.Node)
		st.paths[""] = nodePos{st.KindPos, p.pos(v)}
		st.Value = p.value(st.Node, "", st.paths)
	}
	if t := s.Train; t != nil {
		t.paths = positions{}
		if !t.Bad {
			t.paths[""] = nodePos{t.Pos, p.pos(deref(t.Node))}
			t.Value, _ = p.value(t.Node, "", t.paths).(map[string]any)
		}
	}
	p.errs.Sort()
	return s, p.errs
}

type parser struct {
	file string
	errs Errors
	// origin maps nodes made from --set flags to the flag, for positions.
	origin map[*yaml.Node]string
}

func (p *parser) pos(n *yaml.Node) Pos {
	if o, ok := p.origin[n]; ok {
		return Pos{File: o}
	}
	return Pos{File: p.file, Line: n.Line, Col: n.Column}
}

func (p *parser) errorf(n *yaml.Node, hint, format string, a ...any) {
	p.errs = append(p.errs, Errorf(p.pos(n), hint, format, a...))
}

var (
	lineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	anchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// document parses the YAML and returns the root mapping, or nil after
// reporting why there is none.
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	// A document with no content ("---" alone) has an empty null root that
	// yaml.v3 places on the line after the file's last: it is empty too.
	if errors.Is(err, io.EOF) || err == nil && (len(doc.Content) == 0 || isNull(doc.Content[0]) && doc.Content[0].Value == "") {
		p.errs = append(p.errs, Errorf(Pos{p.file, 1, 1}, "start with version: 1, name and stages", "the file is empty"))
		return nil
	}
	if err != nil {
		p.errs = append(p.errs, p.syntaxError(data, err))
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.errorf(&next, "put each pipeline in its own file", "a pipeline file holds one YAML document, found a second")
	} else if !errors.Is(err, io.EOF) {
		p.errs = append(p.errs, p.syntaxError(data, err))
	}
	if !p.checkAliases(&doc) {
		return nil
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "expected a mapping with version, name and stages, got %s", describe(root))
		return nil
	}
	return root
}

// maxValues bounds the number of values (keys, scalars, lists, mappings) a
// file may expand to through aliases. Every later step (merging, --set,
// conversion to Go values) walks aliases as copies, so a few nested
// aliases of aliases ("billion laughs") would otherwise take exponential
// time and memory. A real pipeline has a few hundred values.
const maxValues = 1 << 16

// checkAliases reports an alias used inside its own anchor (yaml.v3 keeps
// such a loop in the node tree, and walking it never ends) and a document
// that aliases expand beyond maxValues; it returns false after either.
func (p *parser) checkAliases(doc *yaml.Node) bool {
	const (
		active = -1 // being walked: an alias to it is a loop
	)
	size := map[*yaml.Node]int{} // expanded size of a finished node, or active
	var loop *yaml.Node
	var walk func(n *yaml.Node) int
	walk = func(n *yaml.Node) int {
		if loop != nil {
			return 0
		}
		target := deref(n)
		switch s, seen := size[target]; {
		case seen && s == active:
			loop = n
			return 0
		case seen:
			return s
		}
		size[target] = active
		total := 1
		for _, c := range target.Content {
			total = min(total+walk(c), maxValues+1)
		}
		size[target] = total
		return total
	}
	if walk(doc); loop != nil {
		name := loop.Value
		p.errorf(loop, "an anchor cannot be used inside itself", "alias *%s refers to the mapping or list that contains it", name)
		return false
	}
	if size[doc] <= maxValues {
		return true
	}
	// Blame the outermost alias whose expansion alone is too large, or
	// else the innermost node whose expansion is.
	n := doc
	for n.Kind != yaml.AliasNode {
		var next *yaml.Node
		for _, c := range n.Content {
			if size[deref(c)] > maxValues {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	p.errorf(n, "use fewer nested aliases", "aliases expand the file to more than %d values", maxValues)
	return false
}

// syntaxError positions a yaml.v3 syntax error. yaml.v3 reports only a
// line, and for most parser errors the line before the block that contains
// the problem (none at all on the first line). The problem's own line is
// the first line at which a prefix of the file fails the same way.
func (p *parser) syntaxError(data []byte, err error) *Error {
	full := err.Error()
	line, col := 1, 1
	if l := problemLine(data, full); l > 0 {
		line = l
	} else if m := lineRE.FindStringSubmatch(full); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	msg := strings.TrimPrefix(full, "yaml: ")
	if m := lineRE.FindStringSubmatch(full); m != nil {
		msg = m[2]
	}
	lines := strings.Split(string(data), "\n")
	if line <= len(lines) {
		text := lines[line-1]
		col = 1 + len(text) - len(strings.TrimLeft(text, " "))
	}
	hint := ""
	if m := anchorRE.FindStringSubmatch(full); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = 1 + bytes.Count(data[:i], []byte("\n"))
			col = 1 + i - (bytes.LastIndexByte(data[:i], '\n') + 1)
		}
		msg = fmt.Sprintf("unknown anchor %q", m[1])
		hint = fmt.Sprintf("define it with &%s before using *%s", m[1], m[1])
	}
	if line <= len(lines) {
		if i := strings.IndexByte(lines[line-1], '\t'); i >= 0 && strings.Contains(msg, "cannot start any token") {
			col = i + 1
			hint = "indent with spaces: YAML does not allow tabs"
		}
	}
	return Errorf(Pos{p.file, line, col}, hint, "invalid YAML: %s", msg)
}

// problemLine returns the number of the first line at which the file's
// prefix fails to parse with the same error as the whole file (0 if none).
// Trying every prefix is quadratic: a syntax error near the end of a
// 1000-line file took 21s. So prefixes are tried in turn only while the
// bytes parsed stay within problemSearchBytes; past that the line is found
// by bisection, a handful of parses, which is exact when a prefix that
// holds the problem fails the same way whatever follows it (true of the
// usual errors; FuzzSpecParse found ",\n\"\n\"", which is not).
func problemLine(data []byte, full string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	ends := make([]int, len(lines))
	end, work := 0, 0
	for i, l := range lines {
		end += len(l)
		ends[i] = end
		work += end
	}
	fails := func(i int) bool {
		var n yaml.Node
		err := yaml.Unmarshal(data[:ends[i]], &n)
		return err != nil && err.Error() == full
	}
	if work <= problemSearchBytes {
		for i := range lines {
			if fails(i) {
				return i + 1
			}
		}
		return 0
	}
	lo, hi := 0, len(lines)-1
	if !fails(hi) {
		return 0
	}
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo + 1
}

// problemSearchBytes bounds the bytes problemLine parses trying prefixes in
// turn (about a second of parsing on a slow machine).
const problemSearchBytes = 4 << 20

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// describe names the YAML type of n for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!str":
			return fmt.Sprintf("string %q", n.Value)
		case "!!int":
			return "int " + n.Value
		case "!!float":
			return "float " + n.Value
		case "!!bool":
			return "bool " + n.Value
		}
		return n.ShortTag() + " " + n.Value
	}
	return "an empty document"
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

type entry struct{ key, value *yaml.Node }

// entries returns the key/value pairs of mapping n with merge keys (<<)
// expanded: explicit keys win over merged ones, and earlier merged mappings
// over later ones. Duplicate and non-scalar keys are reported.
func (p *parser) entries(n *yaml.Node) []entry {
	n = deref(n)
	var out, merged []entry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, p.mergeSources(v)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "", "mapping keys must be plain names, got %s", describe(k))
			continue
		}
		if first, ok := seen[k.Value]; ok {
			p.errorf(k, fmt.Sprintf("first given at %s", p.pos(first)), "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k, v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key.Value]; !ok {
			seen[e.key.Value] = e.key
			out = append(out, e)
		}
	}
	return out
}

func (p *parser) mergeSources(v *yaml.Node) []entry {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return p.entries(v)
	case yaml.SequenceNode:
		var out []entry
		for _, m := range v.Content {
			if deref(m).Kind != yaml.MappingNode {
				p.errorf(m, "", "<< merges mappings, got %s", describe(m))
				continue
			}
			out = append(out, p.entries(m)...)
		}
		return out
	}
	p.errorf(v, "", "<< merges mappings, got %s", describe(v))
	return nil
}

// top reads the root mapping.
func (p *parser) top(s *Spec, root *yaml.Node) {
	have := map[string]bool{}
	for _, e := range p.entries(root) {
		k, v := e.key.Value, e.value
		have[k] = true
		switch k {
		case "version":
			i, ok := p.intValue(v, "version")
			if ok && i != Version {
				p.errorf(v, fmt.Sprintf("this program reads version %d", Version), "unsupported version %d", i)
			}
			s.Version = int(i)
		case "name":
			s.Name, _ = p.str(v, "name")
			s.NamePos = p.pos(v)
			if s.Name == "" && deref(v).ShortTag() == "!!str" {
				p.errorf(v, "", "name must not be empty")
			}
		case "seed":
			s.SeedPos = p.pos(v)
			n := deref(v)
			if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" && strings.Trim(n.Value, "0123456789") == "" {
				p.errorf(v, "", "seed: %s is too large (at most %d)", n.Value, uint64(1<<64-1))
				break
			}
			if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
				p.errorf(v, "", "seed: expected a non-negative int, got %s", describe(v))
				break
			}
			u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
			if err != nil {
				p.errorf(v, "", "seed: %s is not an int in [0, %d]", n.Value, uint64(1<<64-1))
				break
			}
			s.Seed = u
		case "plugins":
			p.plugins(s, v)
		case "stages":
			p.stages(s, v)
		case "train":
			s.Train = &Train{Pos: p.pos(e.key), Node: v}
			if deref(v).Kind != yaml.MappingNode {
				p.errorf(v, "", "train: expected a mapping such as {model: NAME, input: STAGE, output: FILE}, got %s", describe(v))
				s.Train.Bad = true
			}
		default:
			hint := suggest.DidYouMean(k, TopKeys)
			if hint == "" {
				hint = "the top level has " + strings.Join(TopKeys, ", ")
			}
			p.errorf(e.key, hint, "unknown key %q", k)
		}
	}
	for _, k := range []string{"version", "name", "stages"} {
		if !have[k] {
			hint := map[string]string{
				"version": "add version: 1",
				"name":    "add name: NAME",
				"stages":  "add stages: with a list of stages",
			}[k]
			p.errorf(root, hint, "missing required key %q", k)
		}
	}
}

func (p *parser) str(v *yaml.Node, what string) (string, bool) {
	n := deref(v)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		hint := ""
		if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
			hint = fmt.Sprintf("quote it: %q", n.Value)
		}
		p.errorf(v, hint, "%s: expected a string, got %s", what, describe(v))
		return "", false
	}
	return n.Value, true
}

func (p *parser) intValue(v *yaml.Node, what string) (int64, bool) {
	n := deref(v)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errorf(v, "", "%s: expected an int, got %s", what, describe(v))
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		p.errorf(v, "", "%s: int %s is out of range", what, n.Value)
		return 0, false
	}
	return i, true
}

var (
	hexRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	idRE  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

func (p *parser) plugins(s *Spec, v *yaml.Node) {
	if isNull(v) {
		return
	}
	if deref(v).Kind != yaml.MappingNode {
		p.errorf(v, "", "plugins: expected a mapping of plugin names to {path, sha256, max_items, max_rss}, got %s", describe(v))
		return
	}
	for _, e := range p.entries(v) {
		pl := &Plugin{Name: e.key.Value, Pos: p.pos(e.key)}
		s.Plugins = append(s.Plugins, pl)
		if deref(e.value).Kind != yaml.MappingNode {
			p.errorf(e.value, "", "plugins.%s: expected a mapping {path, sha256, max_items, max_rss}, got %s", pl.Name, describe(e.value))
			continue
		}
		for _, f := range p.entries(e.value) {
			switch f.key.Value {
			case "path":
				pl.Path, _ = p.str(f.value, "plugins."+pl.Name+".path")
				pl.PathPos = p.pos(f.value)
				if pl.Path == "" && deref(f.value).ShortTag() == "!!str" {
					p.errorf(f.value, "", "plugins.%s.path must not be empty", pl.Name)
				}
			case "sha256":
				sum, ok := p.str(f.value, "plugins."+pl.Name+".sha256")
				pl.SHA256Pos = p.pos(f.value)
				// "sha256:HEX" is accepted too, as --sha256 and the
				// manager take it.
				sum = strings.TrimPrefix(sum, "sha256:")
				if ok && !hexRE.MatchString(sum) {
					p.errorf(f.value, "as printed by sha256sum", "plugins.%s.sha256: expected 64 hex digits, got %d characters", pl.Name, len(sum))
					break
				}
				pl.SHA256 = strings.ToLower(sum)
			case "max_items":
				n := deref(f.value)
				v, err := strconv.Atoi(n.Value)
				if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || err != nil || v < 1 {
					p.errorf(f.value, "", "plugins.%s.max_items: expected a whole number of items of at least 1, got %s", pl.Name, n.Value)
					break
				}
				pl.MaxItems = v
			case "max_rss":
				n := deref(f.value)
				v, err := ParseSize(n.Value)
				if n.Kind != yaml.ScalarNode || err != nil {
					p.errorf(f.value, "", "plugins.%s.max_rss: %v", pl.Name, err)
					break
				}
				pl.MaxRSS = v
			default:
				p.errorf(f.key, suggest.DidYouMean(f.key.Value, []string{"path", "sha256", "max_items", "max_rss"}), "unknown key %q in plugins.%s (expected path, sha256, max_items or max_rss)", f.key.Value, pl.Name)
			}
		}
	}
}

func (p *parser) stages(s *Spec, v *yaml.Node) {
	n := deref(v)
	if n.Kind != yaml.SequenceNode {
		p.errorf(v, "", "stages: expected a list of stages, got %s", describe(v))
		return
	}
	if len(n.Content) == 0 {
		p.errorf(v, "", "stages: the list is empty")
		return
	}
	ids := map[string]*Stage{}
	for i, item := range n.Content {
		st := p.stage(i, item)
		s.Stages = append(s.Stages, st)
		if st.ID == "" {
			continue
		}
		if first, ok := ids[st.ID]; ok {
			p.errs = append(p.errs, Errorf(st.IDPos, fmt.Sprintf("first used at %s", first.IDPos), "duplicate stage id %q", st.ID))
			continue
		}
		ids[st.ID] = st
	}
}

var stageKeyNames = append(append([]string{}, StageKeys...), kindNames()...)

func (p *parser) stage(i int, item *yaml.Node) *Stage {
	st := &Stage{Index: i, Pos: p.pos(deref(item))}
	n := deref(item)
	if n.Kind != yaml.MappingNode {
		p.errorf(item, "", "stage #%d: expected a mapping with id and one kind (%s), got %s", i+1, strings.Join(kindNames(), ", "), describe(item))
		st.Bad = true
		return st
	}
	unknown := false
	var extra []*yaml.Node // kind keys after the first
	for _, e := range p.entries(n) {
		k := e.key.Value
		switch {
		case k == "id":
			st.IDPos = p.pos(e.value)
			id, ok := p.str(e.value, "id")
			if !ok {
				break
			}
			if !idRE.MatchString(id) {
				p.errorf(e.value, "ids are used in --set ID.KEY and file names", "stage id %q may contain only letters, digits, - and _", id)
				break
			}
			st.ID = id
		case k == "input":
			st.InputPos = p.pos(e.key)
			st.Inputs = p.inputs(e.value)
		case k == "keep":
			st.keepKey, st.keepNode = e.key, e.value
			st.Keep = p.keep(e.key, e.value)
		case isKind(k):
			if st.Kind != "" {
				extra = append(extra, e.key)
				continue
			}
			st.Kind, st.KindPos, st.Node = Kind(k), p.pos(e.key), e.value
		default:
			unknown = true
			hint := suggest.DidYouMean(k, stageKeyNames)
			if hint == "" {
				hint = "a stage has id, input, keep and one of " + strings.Join(kindNames(), ", ")
			}
			p.errorf(e.key, hint, "unknown stage key %q", k)
		}
	}
	if st.IDPos.Line == 0 {
		st.IDPos = st.Pos
		p.errorf(n, "add id: NAME", "stage #%d has no id", i+1)
	}
	for _, k := range extra {
		p.errorf(k, "a stage does one thing: split it into two stages", "stage %s has two kinds, %s and %s", st.Name(), st.Kind, k.Value)
	}
	if st.Kind == "" {
		st.Bad = true
		st.KindPos = st.Pos
		if !unknown { // an unknown key was most likely the misspelt kind
			p.errorf(n, "", "stage %s has no kind: expected one of %s", st.Name(), strings.Join(kindNames(), ", "))
		}
		return st
	}
	p.kindValue(st)
	return st
}

// keep reads a stage's keep: {score: NAME, above: X, below: Y}; nil after
// reporting a problem.
func (p *parser) keep(key, v *yaml.Node) *Keep {
	const hint = "keep: {score: NAME, above: X} or {score: NAME, below: Y} (or both)"
	n := deref(v)
	if n.Kind != yaml.MappingNode {
		p.errorf(v, hint, "keep: expected a mapping, got %s", describe(v))
		return nil
	}
	k := &Keep{Pos: p.pos(key), ScorePos: p.pos(key)}
	ok := true
	num := func(e entry) *float64 {
		x := deref(e.value)
		var f float64
		if x.Kind != yaml.ScalarNode || (x.ShortTag() != "!!int" && x.ShortTag() != "!!float") || x.Decode(&f) != nil || f != f {
			p.errorf(e.value, hint, "keep.%s: expected a number, got %s", e.key.Value, describe(e.value))
			ok = false
			return nil
		}
		return &f
	}
	for _, e := range p.entries(n) {
		switch e.key.Value {
		case "score":
			if name, good := p.str(e.value, "keep.score"); good {
				k.Score, k.ScorePos = name, p.pos(e.value)
			} else {
				ok = false
			}
		case "above":
			k.Above = num(e)
		case "below":
			k.Below = num(e)
		default:
			p.errorf(e.key, hint, "keep: unknown key %q", e.key.Value)
			ok = false
		}
	}
	if !ok {
		return nil
	}
	if k.Score == "" {
		p.errorf(v, hint, "keep: no score: name the score to keep items by")
		return nil
	}
	if k.Above == nil && k.Below == nil {
		p.errorf(v, hint, "keep: no threshold: give above, below or both")
		return nil
	}
	if k.Above != nil && k.Below != nil && *k.Above >= *k.Below {
		p.errorf(v, "above is the lower bound, below the upper one", "keep: above %v and below %v leave nothing to keep", *k.Above, *k.Below)
		return nil
	}
	return k
}

func (p *parser) inputs(v *yaml.Node) []Ref {
	n := deref(v)
	refs := []Ref{}
	one := func(x *yaml.Node) {
		if id, ok := p.str(x, "input"); ok {
			refs = append(refs, Ref{ID: id, Pos: p.pos(x)})
		}
	}
	switch n.Kind {
	case yaml.ScalarNode:
		one(v)
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			p.errorf(v, "leave input: out to read the previous stage", "input: the list is empty")
		}
		for _, x := range n.Content {
			one(x)
		}
	default:
		p.errorf(v, "", "input: expected a stage id or a list of them, got %s", describe(v))
	}
	return refs
}

// kindValue checks the YAML type of a stage's kind value; parameter values
// themselves are checked by the planner.
func (p *parser) kindValue(st *Stage) {
	n := deref(st.Node)
	switch {
	case st.Kind.IsModel():
		if n.Kind != yaml.MappingNode {
			p.errorf(st.Node, "", "%s: expected a mapping such as {model: NAME}, got %s", st.Kind, describe(n))
			st.Bad = true
		}
	case st.Kind == Preprocess:
		if n.Kind != yaml.SequenceNode {
			p.errorf(st.Node, "", "preprocess: expected a list of operations (- grayscale, - resize: {width: W, height: H}), got %s", describe(n))
			st.Bad = true
		}
	default: // load, save
		if isNull(n) {
			st.Node = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
			break
		}
		if n.Kind != yaml.MappingNode {
			p.errorf(st.Node, "", "%s: expected a mapping, got %s", st.Kind, describe(n))
			st.Bad = true
		}
	}
}

// value converts n to plain Go values, recording the position of every key
// and item under path.
func (p *parser) value(v *yaml.Node, path string, paths positions) any {
	n := deref(v)
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, e := range p.entries(n) {
			cp := e.key.Value
			if path != "" {
				cp = path + "." + cp
			}
			paths[cp] = nodePos{p.pos(e.key), p.pos(deref(e.value))}
			m[e.key.Value] = p.value(e.value, cp, paths)
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, x := range n.Content {
			cp := fmt.Sprintf("%s[%d]", path, i)
			xp := p.pos(deref(x))
			paths[cp] = nodePos{xp, xp}
			l[i] = p.value(x, cp, paths)
		}
		return l
	case yaml.ScalarNode:
		return p.scalar(n)
	}
	return nil
}

func (p *parser) scalar(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err == nil {
			return b
		}
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			p.errorf(n, "", "int %s is out of range", n.Value)
			return nil
		}
		return int(i)
	case "!!float":
		var f float64
		if err := n.Decode(&f); err == nil {
			return f
		}
	case "!!str", "!!timestamp":
		return n.Value
	}
	p.errorf(n, "", "unsupported YAML value %s %s", n.ShortTag(), n.Value)
	return nil
}
