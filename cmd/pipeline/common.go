package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/genpipe/genpipe/pipeline/plugins"
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

// newManager makes the plugin manager with the host logger on stderr.
func newManager(stderr io.Writer) (*plugins.Manager, error) {
	lvl := hclog.LevelFromString(logLevel)
	if lvl == hclog.NoLevel {
		return nil, &exitError{exitInvalid, fmt.Errorf("--log-level %q: expected trace, debug, info, warn or error", logLevel)}
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "pipeline", Level: lvl, Output: stderr})
	return plugins.New(plugins.Options{
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
