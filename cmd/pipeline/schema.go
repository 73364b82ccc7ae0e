package main

import (
	"context"
	"fmt"

	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/spf13/cobra"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print a JSON Schema of the pipeline format with every known plugin's parameters",
		Long: `schema asks every known plugin for its description and prints a JSON Schema
(draft 2020-12) of pipeline files, for editors that complete and check YAML,
e.g. with the YAML language server:

  # yaml-language-server: $schema=pipeline.schema.json`,
		Example: `  # Write the schema where the editor's YAML language server finds it
  pipeline schema > pipeline.schema.json

  # With the external plugins of a folder (their parameters are checked too)
  PIPELINE_PLUGIN_PATH=bin pipeline schema > pipeline.schema.json`,
		Args: noArgs,
		// completeFile offers nothing while schema takes no arguments,
		// and pipeline files if it comes to take one.
		ValidArgsFunction: completeFile,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := newPluginHost(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			infos, err := m.List()
			if err != nil {
				return err
			}
			var descs []*sdk.Description
			for _, i := range infos {
				p, err := m.Open(context.Background(), pluginhost.Ref{Name: i.Name})
				if err != nil {
					return fmt.Errorf("schema: %w", err)
				}
				d := p.Description()
				descs = append(descs, &d)
			}
			out, err := plan.Schema(descs)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return err
		},
	}
}
