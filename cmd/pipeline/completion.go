package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
	"github.com/spf13/cobra"
)

// Shell completion: cobra's `completion` command writes the script for a
// shell, and the script asks the hidden `pipeline __complete ARGS...` for
// candidates, which the functions here produce. They print nothing on
// failure: a completion that cannot be computed offers nothing rather
// than an error in the middle of the user's line.

// describeTimeout bounds starting a plugin to complete its presets; a
// shell waiting for a TAB should not wait for a plugin that hangs.
const describeTimeout = 5 * time.Second

// addCompletionCmd adds cobra's completion command now rather than when
// the command line runs, so that it can be given examples (and tests that
// walk the command tree see it).
func addCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	examples := map[string]string{
		"completion": `  # Complete pipeline's commands, flags, plugin and preset names in this bash session
  source <(pipeline completion bash)

  # For every new zsh session (zsh looks in $fpath for _pipeline)
  pipeline completion zsh > "${fpath[1]}/_pipeline"`,
		"bash": `  # In this session
  source <(pipeline completion bash)

  # In every new session (needs the bash-completion package)
  pipeline completion bash > ~/.local/share/bash-completion/completions/pipeline`,
		"zsh": `  # In every new session (run 'autoload -U compinit; compinit' in ~/.zshrc if not done yet)
  pipeline completion zsh > "${fpath[1]}/_pipeline"`,
		"fish": `  # In every new session
  pipeline completion fish > ~/.config/fish/completions/pipeline.fish`,
		"powershell": `  # In this session; add the line to your PowerShell profile for every session
  pipeline completion powershell | Out-String | Invoke-Expression`,
	}
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		c.Example = examples["completion"]
		for _, sub := range c.Commands() {
			sub.Example = examples[sub.Name()]
		}
	}
}

// completeFlag registers fn as the completion of cmd's flag. A flag that
// does not exist is a programming error (say, a renamed flag): it panics
// in every test that builds the command tree rather than leaving the
// flag without completion.
func completeFlag(cmd *cobra.Command, flag string, fn cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, fn); err != nil {
		panic(fmt.Sprintf("pipeline: completion of %s --%s: %v", cmd.CommandPath(), flag, err))
	}
}

// completeFile completes pipeline files (.yaml, .yml) while the command
// takes another argument, and nothing after that.
func completeFile(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if cmd.ValidateArgs(append(slices.Clone(args), "FILE")) != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completePlugin completes the one argument of `plugins describe`.
func completePlugin(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return pluginNames(toComplete), cobra.ShellCompDirectiveNoFileComp
}

// pluginNames lists the plugins starting with prefix as `plugins list`
// finds them: the built-ins and the executables on the search path.
func pluginNames(prefix string) []cobra.Completion {
	m, err := newPluginHost(io.Discard)
	if err != nil {
		return nil
	}
	defer m.Close()
	infos, err := m.List()
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, i := range infos {
		if strings.HasPrefix(i.Name, prefix) {
			out = append(out, cobra.CompletionWithDesc(i.Name, string(i.Kind)+" plugin"))
		}
	}
	return out
}

// completeOnError completes --on-error from the policies run accepts.
func completeOnError(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, p := range onErrorPolicies {
		if strings.HasPrefix(p.name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(p.name, p.doc))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeSet completes --set STAGE.KEY=VALUE from the pipeline file on
// the command line, step by step: the stage ids (and "train" when the
// file has a train: section); then the keys the stage sets or may set
// (for a model stage the plugin is started to ask it, as validate does);
// then values: plugin names for model, the presets of the stage's model
// that serve the stage's kind for preset, stage ids for input, and the
// allowed values of a parameter that declares them.
func completeSet(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	const partial = cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	if len(args) == 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	s, _ := spec.Parse(args[0], data, nil)
	if s == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	target, rest, dot := strings.Cut(toComplete, ".")
	if !dot {
		var ids []cobra.Completion
		for _, id := range stageIDs(s) {
			ids = append(ids, id+".")
		}
		if s.Train != nil {
			ids = append(ids, "train.")
		}
		return matching(ids, toComplete), partial
	}
	t := newSetTarget(s, target)
	if t == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	key, _, eq := strings.Cut(rest, "=")
	if !eq {
		// Complete the last segment of a dotted key (out.grid.columns):
		// the keys of the mapping the others lead to.
		path := strings.Split(key, ".")
		parent := strings.Join(append([]string{target}, path[:len(path)-1]...), ".") + "."
		params, values := t.params(), t.values
		for _, seg := range path[:len(path)-1] {
			params = fieldsOf(params, seg)
			values, _ = values[seg].(map[string]any)
		}
		var keys []cobra.Completion
		seen := map[string]bool{}
		for _, p := range params {
			seen[p.Name] = true
			end := "="
			if p.Type == sdk.Object && len(p.Fields) > 0 && !p.OneOf {
				end = "."
			}
			keys = append(keys, cobra.CompletionWithDesc(parent+p.Name+end, p.Doc))
		}
		var set []string
		for k := range values {
			if !seen[k] {
				set = append(set, k)
			}
		}
		slices.Sort(set)
		for _, k := range set {
			keys = append(keys, parent+k+"=")
		}
		return matching(keys, toComplete), partial
	}
	prefix := target + "." + key + "="
	var values []cobra.Completion
	switch key {
	case "model":
		values = pluginNames("")
	case "preset":
		values = t.presets()
	case "input":
		if t.stage {
			for _, id := range stageIDs(s) {
				if id != target {
					values = append(values, id)
				}
			}
		}
	default:
		path := strings.Split(key, ".")
		params := t.params()
		for _, seg := range path[:len(path)-1] {
			params = fieldsOf(params, seg)
		}
		for _, p := range params {
			if p.Name == path[len(path)-1] {
				switch p.Type {
				case sdk.String:
					values = slices.Clone(p.Enum)
				case sdk.Bool:
					values = []string{"true", "false"}
				}
			}
		}
	}
	for i, v := range values {
		values[i] = prefix + v
	}
	return matching(values, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// fieldsOf returns the fields of the Object parameter called name.
func fieldsOf(params []sdk.Param, name string) []sdk.Param {
	for _, p := range params {
		if p.Name == name {
			return p.Fields
		}
	}
	return nil
}

func stageIDs(s *spec.Spec) []string {
	var ids []string
	for _, st := range s.Stages {
		if st.ID != "" {
			ids = append(ids, st.ID)
		}
	}
	return ids
}

// setTarget is what --set ID.KEY=VALUE addresses: a stage or the train:
// section of a parsed file.
type setTarget struct {
	s      *spec.Spec
	stage  bool
	kind   string
	values map[string]any
	// capability serves the target: the stage's kind, or train.
	capability sdk.Capability
	// desc is the model's description, fetched on first use; failed
	// records that fetching failed.
	desc   *sdk.Description
	failed bool
}

// newSetTarget returns the stage with the given id, or the train: section
// for "train"; nil when there is no such thing.
func newSetTarget(s *spec.Spec, target string) *setTarget {
	if target == "train" && s.Train != nil {
		return &setTarget{s: s, kind: "train", values: s.Train.Value, capability: sdk.CapTrain}
	}
	st := s.Stage(target)
	if st == nil {
		return nil
	}
	v, _ := st.Value.(map[string]any)
	return &setTarget{s: s, stage: true, kind: string(st.Kind), values: v, capability: st.Kind.Capability()}
}

// params returns the parameters declared for the target: input, then a
// host stage's own, or a model stage's host keys and its plugin's
// parameters for the stage's capability, or the train: section's keys.
func (t *setTarget) params() []sdk.Param {
	if !t.stage {
		return plan.TrainParam().Fields
	}
	var out []sdk.Param
	for _, p := range plan.StageParams() {
		if p.Name != "id" {
			out = append(out, p)
		}
	}
	k := stages.LookupKind(t.kind)
	if k == nil {
		return out
	}
	out = append(out, k.Param.Fields...)
	if d := t.description(); k.Model && d != nil {
		for _, c := range d.Capabilities {
			if c.Name == t.capability {
				out = append(out, c.Params...)
			}
		}
	}
	return out
}

// presets returns the names of the model's presets that serve the
// target's capability.
func (t *setTarget) presets() []string {
	d := t.description()
	if d == nil {
		return nil
	}
	var names []string
	for _, p := range d.Presets {
		if slices.Contains(p.Capabilities, t.capability) {
			names = append(names, p.Name)
		}
	}
	return names
}

// description starts the target's model plugin as validate would (with
// the path and checksum the file's plugins: section gives it, relative to
// the file) and returns its description; nil when there is no model or
// it cannot be described.
func (t *setTarget) description() *sdk.Description {
	model, _ := t.values["model"].(string)
	if t.desc != nil || t.failed || model == "" {
		return t.desc
	}
	t.failed = true
	var path, sum string
	for _, p := range t.s.Plugins {
		if p.Name == model {
			path, sum = p.Path, p.SHA256
			if path != "" && !filepath.IsAbs(path) {
				path = filepath.Join(filepath.Dir(t.s.File), path)
			}
		}
	}
	m, err := newPluginHost(io.Discard)
	if err != nil {
		return nil
	}
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	d, err := job.Describer{M: m}.Describe(ctx, model, path, sum)
	if err != nil {
		return nil
	}
	t.desc, t.failed = d, false
	return d
}

// matching returns the candidates that start with toComplete (a
// candidate's description, after a tab, does not count).
func matching(candidates []cobra.Completion, toComplete string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range candidates {
		if name, _, _ := strings.Cut(c, "\t"); strings.HasPrefix(name, toComplete) {
			out = append(out, c)
		}
	}
	return out
}
