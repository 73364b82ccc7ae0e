package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, documented in README.md.
const (
	exitOK          = 0
	exitInvalid     = 1 // the pipeline or the command line is invalid, or the job could not run
	exitItemsFailed = 2 // the job ran, but some items failed
	exitInterrupted = 130
)

// exitError carries an exit code through cobra's error return.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pipeline",
		Short: "Run image-generation pipelines of out-of-process model plugins",
		Long: `pipeline reads a YAML pipeline of stages (load, preprocess, encode, generate,
translate, denoise, save) and streams images through them. Every model runs
as an out-of-process plugin that speaks one SDK contract.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addLogFlag(root)
	root.AddCommand(newRunCmd(), newTrainCmd(), newValidateCmd(), newPluginsCmd(), newSchemaCmd(), newVersionCmd(), newDocsCmd(), newPluginCmd())
	return root
}

// Execute runs the command line and returns the process exit code.
func Execute() int {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "pipeline:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "pipeline:", err)
	return exitInvalid
}
