package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/genpipe/genpipe/internal/suggest"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, documented in README.md. A mistake on the command line (an
// unknown command or flag, a bad flag value, the wrong number of arguments)
// exits 1 like an invalid pipeline: 2 already means that a job ran and
// some items failed, which a batch script must be able to tell apart.
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

// usageError is a mistake in how a command was typed rather than in what
// it was asked to do: Execute names the command and prints its usage,
// which a failed run does not get (its message would drown in it).
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// noArgs is for commands without arguments. cobra.NoArgs words a stray
// argument as an unknown command, which misleads on a command that has no
// subcommands; this says "accepts 0 arg(s), received 1" like the others.
var noArgs = cobra.ExactArgs(0)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pipeline",
		Short: "Run image-generation pipelines of out-of-process model plugins",
		Long: `pipeline reads a YAML pipeline of stages (load, preprocess, encode, generate,
translate, denoise, save) and streams images through them. Every model runs
as an out-of-process plugin that speaks one SDK contract.`,
		Example: `  # Check a pipeline: every problem at once, as FILE:LINE:COL: message
  pipeline validate examples/invalid.yaml

  # Run one: 64 digits from each of the shipped GANs, saved as grids
  pipeline run examples/gan-samples.yaml

  # The plugins that can run stages, and one's parameters and presets
  pipeline plugins list
  pipeline plugins describe vae`,
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addLogFlag(root)
	// Declared here, before cobra would add its own, to leave out cobra's
	// -v shorthand: -v means verbose to kubectl, curl and ssh users.
	root.Flags().Bool("version", false, "print the version, as 'pipeline version' does, and exit")
	root.SetVersionTemplate(versionLine() + "\n")
	root.AddCommand(newRunCmd(), newTrainCmd(), newValidateCmd(), newPluginsCmd(), newSchemaCmd(), newVersionCmd(), newDocsCmd(), newPluginCmd(), newLockCmd(), newWorkerCmd(), newStatusCmd())
	addCompletionCmd(root)
	root.InitDefaultHelpCmd()
	helpCmd(root).Example = `  # A command's help, with its examples
  pipeline help run`
	root.SetFlagErrorFunc(flagError)
	checkArgs(root)
	return root
}

// helpCmd returns cobra's help command, which root.InitDefaultHelpCmd added.
func helpCmd(root *cobra.Command) *cobra.Command {
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			return c
		}
	}
	panic("pipeline: no help command")
}

// checkArgs makes every argument error of c and its subcommands a
// usageError. A command that only groups others (pipeline, plugins) is
// made runnable: cobra prints the help of a group, with exit status 0,
// for any arguments at all, so `pipeline plugins lst` would look like
// success.
func checkArgs(c *cobra.Command) {
	switch {
	case c.HasSubCommands() && !c.Runnable():
		c.Args = cobra.ArbitraryArgs
		c.RunE = runGroup
	case c.Name() == "help" && c.HasParent():
		c.Args = helpArgs
	case c.Args != nil:
		check := c.Args
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := check(cmd, args); err != nil {
				return &usageError{cmd, err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		checkArgs(sub)
	}
}

// runGroup prints a group's help, or names the unknown subcommand.
func runGroup(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return &usageError{cmd, unknownCommand(cmd, args[0])}
}

// helpArgs refuses `pipeline help NAME` for a NAME that is no command,
// which cobra would answer with the root's help.
func helpArgs(cmd *cobra.Command, args []string) error {
	c, rest, err := cmd.Root().Find(args)
	if err != nil {
		return &usageError{cmd, err}
	}
	if len(rest) > 0 {
		return &usageError{cmd, unknownCommand(c, rest[0])}
	}
	return nil
}

func unknownCommand(group *cobra.Command, name string) error {
	var names []string
	for _, s := range group.Commands() {
		if s.IsAvailableCommand() || s.Name() == "help" {
			names = append(names, s.Name())
			names = append(names, s.Aliases...)
		}
	}
	if hint := suggest.DidYouMean(name, names); hint != "" {
		return fmt.Errorf("unknown command %q (%s)", name, hint)
	}
	return fmt.Errorf("unknown command %q", name)
}

// flagError makes a flag that does not parse a usageError, with a
// suggestion for a mistyped flag name.
func flagError(cmd *cobra.Command, err error) error {
	const unknown = "unknown flag: "
	if name, ok := strings.CutPrefix(err.Error(), unknown); ok {
		var names []string
		add := func(f *pflag.Flag) {
			if !f.Hidden {
				names = append(names, "--"+f.Name)
			}
		}
		cmd.Flags().VisitAll(add)
		cmd.InheritedFlags().VisitAll(add)
		if hint := suggest.DidYouMean(name, names); hint != "" {
			err = fmt.Errorf("%w (%s)", err, hint)
		}
	}
	return &usageError{cmd, err}
}

// Execute runs the command line and returns the process exit code.
func Execute() int {
	root := newRootCmd()
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "%s: %v\n\n%s", ue.cmd.CommandPath(), ue.err, ue.cmd.UsageString())
		return exitInvalid
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
