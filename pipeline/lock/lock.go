// Package lock pins the bits a pipeline runs with: the sha256 of every
// plugin executable and every weights file its model stages and training
// use, in FILE.lock beside the pipeline FILE. `pipeline lock FILE` writes
// it on a machine the user trusts; `run --locked` (and every queue worker)
// refuses a plugin or weights that differ, so all machines of a job run
// the same bits (Terraform's dependency lock is the model).
//
// The lock names what, not where: locations are recorded for people to
// read, but only checksums are compared, so a lock written on one machine
// holds on another where the same plugin is installed elsewhere.
package lock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
)

// Version is the lock file format version.
const Version = 1

// File is a lock file's content.
type File struct {
	Version int `json:"version"`
	// Pipeline is the pipeline file's name, for people.
	Pipeline string `json:"pipeline"`
	// Plugins are the plugins the pipeline starts, by name.
	Plugins map[string]Plugin `json:"plugins"`
	// Weights are the weights its model stages and training load, by
	// "MODEL/PRESET" (the preset's own weights) or "MODEL/PRESET:PATH"
	// (a weights: file, PATH as written in the pipeline).
	Weights map[string]Weights `json:"weights,omitempty"`
}

// Plugin is one locked plugin executable.
type Plugin struct {
	// Kind is builtin, external or path, and Location the executable
	// where the lock was written (a built-in plugin is the pipeline
	// binary itself).
	Kind     string `json:"kind"`
	Location string `json:"location"`
	SHA256   string `json:"sha256"`
}

// Weights is one locked weights file.
type Weights struct {
	// Source is "embedded" (shipped inside the plugin, whose checksum
	// then covers it too) or the file's path as the pipeline writes it.
	Source string `json:"source"`
	SHA256 string `json:"sha256"`
}

// PathFor is the lock file of a pipeline file: FILE.lock beside it.
func PathFor(pipelineFile string) string { return pipelineFile + ".lock" }

// Resolver says which executable runs a plugin (pluginhost.Host does).
type Resolver interface {
	Resolve(pluginhost.Ref) (pluginhost.Info, error)
}

var embeddedSum = regexp.MustCompile(`sha256:([0-9a-f]{64})`)

// Compute builds the lock of a checked plan: it hashes every plugin
// executable (through r) and every weights file the plan names.
func Compute(p *plan.Plan, r Resolver) (*File, error) {
	f := &File{Version: Version, Pipeline: filepath.Base(p.File), Plugins: map[string]Plugin{}, Weights: map[string]Weights{}}
	type use struct {
		model, path, sum, preset, weights, written string
		spec                                       *sdk.Preset
	}
	var uses []use
	for _, st := range p.Stages {
		m := st.Model
		if m == nil {
			continue
		}
		uses = append(uses, use{model: m.Model, path: m.Path, sum: m.SHA256, preset: m.Preset, weights: m.Weights, spec: m.PresetSpec, written: writtenWeights(p, st.ID)})
	}
	if t := p.Train; t != nil {
		uses = append(uses, use{model: t.Model, path: t.Path, sum: t.SHA256, preset: t.Preset, weights: t.Init, spec: t.PresetSpec})
	}
	for _, u := range uses {
		if _, ok := f.Plugins[u.model]; !ok {
			info, err := r.Resolve(pluginhost.Ref{Name: u.model, Path: u.path, SHA256: u.sum})
			if err != nil {
				return nil, err
			}
			sum, err := pluginhost.FileSHA256(info.Location)
			if err != nil {
				return nil, fmt.Errorf("plugin %s: %w", u.model, err)
			}
			f.Plugins[u.model] = Plugin{Kind: string(info.Kind), Location: info.Location, SHA256: sum}
		}
		if u.weights != "" {
			sum, err := pluginhost.FileSHA256(u.weights)
			if err != nil {
				return nil, fmt.Errorf("plugin %s: weights: %w", u.model, err)
			}
			src := u.written
			if src == "" {
				src = u.weights
			}
			f.Weights[u.model+"/"+u.preset+":"+src] = Weights{Source: src, SHA256: sum}
			continue
		}
		if u.spec != nil && u.spec.Weights != "" {
			if m := embeddedSum.FindStringSubmatch(u.spec.Weights); m != nil {
				f.Weights[u.model+"/"+u.preset] = Weights{Source: "embedded", SHA256: m[1]}
			}
		}
	}
	return f, nil
}

// writtenWeights is the weights: value of a stage as the file writes it
// (the plan holds it made absolute).
func writtenWeights(p *plan.Plan, id string) string {
	if p.Spec == nil {
		return ""
	}
	for _, st := range p.Spec.Stages {
		if st.ID != id {
			continue
		}
		if v, ok := st.Value.(map[string]any); ok {
			s, _ := v["weights"].(string)
			return s
		}
	}
	return ""
}

// PluginSums are the lock's plugin checksums by name, for
// pluginhost.Host.Lock.
func (f *File) PluginSums() map[string]string {
	out := map[string]string{}
	for name, p := range f.Plugins {
		out[name] = p.SHA256
	}
	return out
}

// Encode is the file's bytes: indented JSON, keys sorted, a final newline.
func (f *File) Encode() []byte {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(err) // only maps of strings and structs of strings
	}
	return append(b, '\n')
}

// Write writes the lock atomically (a temporary file renamed over it).
func (f *File) Write(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(f.Encode()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Read reads a lock file.
func Read(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: no lock file (write one with: pipeline lock %s)", path, strings.TrimSuffix(path, ".lock"))
	}
	if err != nil {
		return nil, err
	}
	return Decode(path, b)
}

// Decode parses a lock file's bytes; name is used in errors.
func Decode(name string, b []byte) (*File, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: not a lock file: %w", name, err)
	}
	if f.Version != Version {
		return nil, fmt.Errorf("%s: lock file version %d, this pipeline reads version %d", name, f.Version, Version)
	}
	for n, p := range f.Plugins {
		if !isSum(p.SHA256) {
			return nil, fmt.Errorf("%s: plugin %s: sha256 %q is not 64 hex digits", name, n, p.SHA256)
		}
	}
	for n, w := range f.Weights {
		if !isSum(w.SHA256) {
			return nil, fmt.Errorf("%s: weights %s: sha256 %q is not 64 hex digits", name, n, w.SHA256)
		}
	}
	return &f, nil
}

var sumRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func isSum(s string) bool { return sumRE.MatchString(s) }

// Diff lists how got (what this machine would run) differs from the lock
// want, one sentence per difference, sorted; empty when got is locked.
// A plugin or weights the lock has but the plan does not use is no
// difference (a lock may cover several variants of a pipeline).
func Diff(want, got *File) []string {
	var out []string
	short := func(s string) string { return s[:12] }
	for name, g := range got.Plugins {
		w, ok := want.Plugins[name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("plugin %s is not in the lock", name))
		case w.SHA256 != g.SHA256:
			out = append(out, fmt.Sprintf("plugin %s: the lock pins sha256:%s…, %s has sha256:%s…", name, short(w.SHA256), g.Location, short(g.SHA256)))
		}
	}
	for key, g := range got.Weights {
		w, ok := want.Weights[key]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("weights %s are not in the lock", key))
		case w.SHA256 != g.SHA256:
			out = append(out, fmt.Sprintf("weights %s: the lock pins sha256:%s…, the file has sha256:%s…", key, short(w.SHA256), short(g.SHA256)))
		}
	}
	slices.Sort(out)
	return out
}
