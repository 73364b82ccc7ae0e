package main

import (
	"fmt"

	"github.com/genpipe/genpipe/pipeline/lock"
	"github.com/spf13/cobra"
)

func newLockCmd() *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "lock FILE",
		Short: "Pin the plugins and weights a pipeline uses: write FILE.lock with their sha256",
		Long: `lock checks the pipeline as validate does, then writes FILE.lock beside it:
the sha256 of every plugin executable it starts (a built-in plugin is the
pipeline binary itself) and of every weights file its stages and training
load (a preset's embedded weights by the checksum the plugin declares). Run
it on a machine you trust; then run --locked, train --locked and every
queue worker refuse a plugin or weights whose checksum differs, and start no
plugin the lock does not list, so every machine of a job runs the same bits.
Only checksums are compared: a plugin installed at another path on another
machine is the same plugin if its bytes are.`,
		Example: `  # Pin what examples/vae-samples.yaml runs, then run only with that
  pipeline lock examples/vae-samples.yaml
  pipeline run --locked examples/vae-samples.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			ss, err := startSession(cmd, file, sets, 0, false, "locked")
			defer ss.close()
			if err != nil {
				return err
			}
			lf, err := lock.Compute(ss.plan, ss.m)
			if err != nil {
				return &exitError{exitInvalid, fmt.Errorf("lock: %w", err)}
			}
			path := lock.PathFor(file)
			if err := lf.Write(path); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d plugin(s), %d weights\n", path, len(lf.Plugins), len(lf.Weights))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a stage parameter as run would: STAGE.KEY=VALUE (repeatable)")
	return cmd
}
