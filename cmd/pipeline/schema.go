package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
	"github.com/spf13/cobra"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema [FILE]",
		Short: "Print a JSON Schema of the pipeline format with every known plugin's parameters",
		Long: `schema asks every known plugin for its description and prints a JSON Schema
(draft 2020-12) of pipeline files, for editors that complete and check YAML,
e.g. with the YAML language server:

  # yaml-language-server: $schema=pipeline.schema.json

A stage whose model the schema does not know (say one declared under
plugins: by path) is accepted with any parameters; known models are checked
strictly. Given FILE, schema also starts the plugins FILE declares under
plugins: (path and sha256, as validate does) and checks their parameters too;
a plugin of the same name as a known one replaces it, as it does in FILE.`,
		Example: `  # Write the schema where the editor's YAML language server finds it
  pipeline schema > pipeline.schema.json

  # With the external plugins of a folder (their parameters are checked too)
  PIPELINE_PLUGIN_PATH=bin pipeline schema > pipeline.schema.json

  # With the plugins a pipeline file declares under plugins:
  pipeline schema examples/sketch-photos.yaml > pipeline.schema.json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newPluginHost(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			ctx := context.Background()
			infos, err := m.List()
			if err != nil {
				return err
			}
			var descs []*sdk.Description
			for _, i := range infos {
				p, err := m.Open(ctx, pluginhost.Ref{Name: i.Name})
				if err != nil {
					return fmt.Errorf("schema: %w", err)
				}
				d := p.Description()
				descs = append(descs, &d)
			}
			if len(args) == 1 {
				if descs, err = filePlugins(ctx, m, args[0], descs); err != nil {
					return err
				}
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

// filePlugins adds to descs the description of every plugin file declares
// under plugins:, launched from its path (relative to the file) and
// checked against its sha256 as validate launches it; each replaces a
// known plugin of its name. The file's other problems are validate's
// business: only a file that cannot be read or parsed at all, or a plugin
// that cannot be described, is an error.
func filePlugins(ctx context.Context, m *pluginhost.Host, file string, descs []*sdk.Description) ([]*sdk.Description, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &exitError{exitInvalid, fmt.Errorf("schema: %w", err)}
	}
	s, errs := spec.Parse(file, data, nil)
	if s == nil {
		errs.Sort()
		return nil, &exitError{exitInvalid, fmt.Errorf("schema: %w", errs)}
	}
	base, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	for _, pl := range s.Plugins {
		path := pl.Path
		if path != "" && !filepath.IsAbs(path) {
			path = filepath.Join(base, path)
		}
		d, err := job.Describer{M: m}.Describe(ctx, pl.Name, path, pl.SHA256)
		if err != nil {
			pos := pl.Pos
			if pl.Path != "" {
				pos = pl.PathPos
			}
			return nil, &exitError{exitInvalid, fmt.Errorf("schema: %s: %w", pos, err)}
		}
		descs = slices.DeleteFunc(descs, func(x *sdk.Description) bool { return x.Name == pl.Name })
		descs = append(descs, d)
	}
	return descs, nil
}
