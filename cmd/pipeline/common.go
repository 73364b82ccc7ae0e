package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

// logLevel is the root --log-level flag: the host's and the plugins' level.
var logLevel = "warn"

func addLogFlag(root *cobra.Command) {
	root.PersistentFlags().StringVar(&logLevel, "log-level", "warn", "log level of the host and its plugins: trace, debug, info, warn, error")
}

// newPluginHost makes the plugin host with the host logger on stderr.
func newPluginHost(stderr io.Writer) (*pluginhost.Host, error) {
	lvl := hclog.LevelFromString(logLevel)
	if lvl == hclog.NoLevel {
		return nil, &exitError{exitInvalid, fmt.Errorf("--log-level %q: expected trace, debug, info, warn or error", logLevel)}
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "pipeline", Level: lvl, Output: stderr})
	return pluginhost.New(pluginhost.Options{
		Logger: log,
		Env:    []string{sdk.LogLevelEnv + "=" + strings.ToLower(lvl.String())},
	}), nil
}

// printErrors writes positioned errors one per line.
func printErrors(w io.Writer, errs spec.Errors) {
	for _, e := range errs {
		fmt.Fprintln(w, e.Error())
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// checkFile checks a pipeline file as run and train do before any work:
// it starts the plugins the file names (through m) and returns the plan,
// or an exitInvalid error after printing every problem; verb says what was
// not done ("run", "trained"). seed overrides the file's seed when set.
func checkFile(ctx context.Context, m *pluginhost.Host, stderr io.Writer, file string, sets []string, seed *uint64, verb string) (*plan.Plan, error) {
	p, errs := job.CheckFile(ctx, m, file, sets, seed)
	if len(errs) > 0 {
		if ctx.Err() != nil {
			// What went wrong is that plugins were stopped half-started;
			// their errors would only mislead.
			return nil, &exitError{exitInterrupted, fmt.Errorf("interrupted while checking the file; nothing was %s", verb)}
		}
		printErrors(stderr, errs)
		return nil, &exitError{exitInvalid, fmt.Errorf("%s: %d problem(s); nothing was %s", file, len(errs), verb)}
	}
	return p, nil
}
