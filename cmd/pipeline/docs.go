package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/genpipe/genpipe/sdk"
	"github.com/spf13/cobra"
)

// topParams documents the top level of a pipeline file. The parser checks
// these keys itself; this table is their documentation.
var topParams = []sdk.Param{
	{Name: "version", Type: sdk.Int, Required: true, Doc: "format version; must be 1"},
	{Name: "name", Type: sdk.String, Required: true, Doc: "the pipeline's name, recorded in every output's provenance"},
	{Name: "seed", Type: sdk.Int, Default: 0, Doc: "pipeline seed; per-item seeds derive from (seed, stage id, item index); --seed overrides"},
	{Name: "plugins", Type: sdk.Object, Doc: "where external plugins are: NAME: {path: FILE, sha256: HEX}; path is relative to the pipeline file, sha256 pins the executable"},
	{Name: "stages", Type: sdk.List, Required: true, Doc: "the stages, in order; each has an id and exactly one kind key"},
	{Name: "train", Type: sdk.Object, Doc: "what `pipeline train FILE` trains (see `train` below); `pipeline run` ignores it"},
}

func newDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "docs",
		Short: "Print the pipeline file reference (Markdown) generated from the declared parameters",
		Long: `docs prints the reference of the pipeline format: the top-level keys, the
stage keys and every host stage's parameters, generated from the same
declarations that validate checks against. For a plugin's parameters use
'pipeline plugins describe NAME'.`,
		Example: `  # The reference of the pipeline format, as README.md shows it
  pipeline docs > reference.md`,
		Args:              noArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, _ []string) error {
			writeReference(cmd.OutOrStdout())
			return nil
		},
	}
}

// writeReference renders the YAML reference; README.md embeds its output
// and a test keeps the two equal.
func writeReference(w io.Writer) {
	fmt.Fprintln(w, "### Top level")
	fmt.Fprintln(w)
	paramTable(w, topParams)
	fmt.Fprintln(w, "### Every stage")
	fmt.Fprintln(w)
	var kinds []string
	for _, k := range stages.Kinds() {
		kinds = append(kinds, "`"+k.Name+"`")
	}
	fmt.Fprintf(w, "A stage is a mapping with these keys and exactly one kind key: %s.\n\n", strings.Join(kinds, ", "))
	paramTable(w, plan.StageParams())
	for _, k := range stages.Kinds() {
		p := k.Param
		fmt.Fprintf(w, "### `%s`\n\n", k.Name)
		if p.Doc != "" && p.Type != sdk.List {
			fmt.Fprintf(w, "%s%s.", strings.ToUpper(p.Doc[:1]), strings.TrimSuffix(p.Doc[1:], "."))
		}
		if k.Model {
			fmt.Fprintf(w, " Other keys are the model's parameters for `%s` (`pipeline plugins describe MODEL`).", k.Capability())
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w)
		switch {
		case p.Type == sdk.List && p.Elem != nil && p.Elem.OneOf:
			fmt.Fprintln(w, "A list of operations, applied in order; each is a mapping with one key (`- grayscale` is short for `- grayscale: {}`).")
			fmt.Fprintln(w)
			paramTable(w, p.Elem.Fields)
		default:
			paramTable(w, p.Fields)
		}
	}
	tp := plan.TrainParam()
	fmt.Fprintf(w, "### `train`\n\n")
	fmt.Fprintf(w, "%s%s; `--set train.KEY=VALUE` overrides a key.\n\n", strings.ToUpper(tp.Doc[:1]), tp.Doc[1:])
	paramTable(w, tp.Fields)
}
