package main

import (
	"context"
	"fmt"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a pipeline without running it; print every problem as FILE:LINE:COL: message",
		Long: `validate parses a pipeline, asks each plugin it names for its description,
and checks every stage: keys, types, ranges, models and their capabilities,
presets, inputs, cycles, image and latent contracts, save paths. It prints all
problems at once and exits 1 when there is any, 0 when the pipeline is valid.`,
		Example: `  # A valid pipeline: prints its name and number of stages
  pipeline validate examples/gan-cgan-digits.yaml

  # A file with mistakes: every problem at once as FILE:LINE:COL: message, exit status 1
  pipeline validate examples/invalid.yaml

  # Check a file with the overrides a run would use
  pipeline validate --set digits.count=10 examples/gan-cgan-digits.yaml

  # Check a training config, train: section included, without training
  pipeline validate examples/train/mnist-vae.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := newPluginHost(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			p, errs := job.CheckFile(context.Background(), m, args[0], sets, nil)
			if len(errs) > 0 {
				printErrors(cmd.OutOrStdout(), errs)
				return &exitError{code: exitInvalid, err: fmt.Errorf("%s: %d problem(s)", args[0], len(errs))}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid pipeline %q, %d stages\n", args[0], p.Name, len(p.Stages))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a stage parameter: STAGE.KEY=VALUE (repeatable)")
	completeFlag(cmd, "set", completeSet)
	return cmd
}
