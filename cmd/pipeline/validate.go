package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

func newValidateCmd() *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check pipelines without running them; print every problem as FILE:LINE:COL: message",
		Long: `validate parses each pipeline, asks each plugin it names for its description,
and checks every stage: keys, types, ranges, models and their capabilities,
presets, inputs, cycles, image and latent contracts, save paths. It prints all
problems of every file at once and exits 1 when any file has one, 0 when every
pipeline is valid.

With -o json it prints one JSON array instead: an entry per problem,
{"file", "ok": false, "line", "column", "stage", "message", "hint"} (line,
column, stage and hint left out where there is none), and an entry per valid
file, {"file", "ok": true, "name", "stages"}.`,
		Example: `  # A valid pipeline: prints its name and number of stages
  pipeline validate examples/gan-cgan-digits.yaml

  # A file with mistakes: every problem at once as FILE:LINE:COL: message, exit status 1
  pipeline validate examples/invalid.yaml

  # Several files at once, as JSON for a script or an editor
  pipeline validate -o json examples/sketch-photos.yaml examples/dae-digits.yaml

  # Check a file with the overrides a run would use
  pipeline validate --set digits.count=10 examples/gan-cgan-digits.yaml

  # Check a training config, train: section included, without training
  pipeline validate examples/train/mnist-vae.yaml`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completeFile,
	}
	format := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, files []string) error {
		m, err := newPluginHost(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer m.Close()
		out := cmd.OutOrStdout()
		var entries []validateEntry
		var failed []string
		for _, file := range files {
			p, errs := job.CheckFile(context.Background(), m, file, sets, nil)
			if len(errs) > 0 {
				failed = append(failed, fmt.Sprintf("%s: %d problem(s)", file, len(errs)))
				if *format == outputJSON {
					entries = append(entries, problemEntries(file, sets, errs)...)
				} else {
					printErrors(out, errs)
				}
				continue
			}
			if *format == outputJSON {
				entries = append(entries, validateEntry{File: file, OK: true, Name: p.Name, Stages: len(p.Stages)})
			} else {
				fmt.Fprintf(out, "%s: valid pipeline %q, %d stages\n", file, p.Name, len(p.Stages))
			}
		}
		if *format == outputJSON {
			if err := writeJSON(out, entries); err != nil {
				return err
			}
		}
		if len(failed) > 0 {
			return &exitError{code: exitInvalid, err: fmt.Errorf("%s", strings.Join(failed, "; "))}
		}
		return nil
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a stage parameter: STAGE.KEY=VALUE (repeatable, applied to every file)")
	completeFlag(cmd, "set", completeSet)
	return cmd
}

// validateEntry is one element of validate -o json: a problem (OK false)
// or a valid file (OK true).
type validateEntry struct {
	File    string `json:"file"`
	OK      bool   `json:"ok"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Stage   string `json:"stage,omitempty"`
	Message string `json:"message,omitempty"`
	Hint    string `json:"hint,omitempty"`
	Name    string `json:"name,omitempty"`
	Stages  int    `json:"stages,omitempty"`
}

// problemEntries turns file's problems into entries, each named by the
// stage whose lines hold it (stages without an id by their number, #N).
func problemEntries(file string, sets []string, errs spec.Errors) []validateEntry {
	var spans []stageSpan
	if data, err := os.ReadFile(file); err == nil {
		if s, _ := spec.Parse(file, data, sets); s != nil {
			spans = stageSpans(s)
		}
	}
	out := make([]validateEntry, 0, len(errs))
	for _, e := range errs {
		f := e.File
		if f == "" {
			f = file
		}
		out = append(out, validateEntry{File: f, Line: e.Line, Column: e.Col, Stage: stageAt(spans, e.Line), Message: e.Msg, Hint: e.Hint})
	}
	return out
}

// stageSpan is the lines a stage of the file takes.
type stageSpan struct {
	name        string
	first, last int
}

func stageSpans(s *spec.Spec) []stageSpan {
	var out []stageSpan
	for _, st := range s.Stages {
		name := st.ID
		if name == "" {
			name = fmt.Sprintf("#%d", st.Index+1)
		}
		last := max(st.Pos.Line, st.IDPos.Line, st.KindPos.Line, st.InputPos.Line, lastLine(st.Node))
		out = append(out, stageSpan{name, st.Pos.Line, last})
	}
	return out
}

// lastLine is the last line a YAML node's own text starts on.
func lastLine(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	l := n.Line
	for _, c := range n.Content {
		l = max(l, lastLine(c))
	}
	return l
}

func stageAt(spans []stageSpan, line int) string {
	if line <= 0 {
		return ""
	}
	for _, sp := range spans {
		if sp.first <= line && line <= sp.last {
			return sp.name
		}
	}
	return ""
}
