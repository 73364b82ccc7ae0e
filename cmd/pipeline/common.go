package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/lock"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/pipeline/spec"
	"github.com/genpipe/genpipe/sdk"
	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
)

// logLevel is the root --log-level flag: the host's and the plugins' level.
var logLevel = "warn"

// logLevels are the values of --log-level, from the most verbose: the
// flag's help, its check and its completion read this one list.
var logLevels = []string{"trace", "debug", "info", "warn", "error"}

func addLogFlag(root *cobra.Command) {
	root.PersistentFlags().StringVar(&logLevel, "log-level", "warn", "log level of the host and its plugins: "+strings.Join(logLevels, ", "))
	completeFlag(root, "log-level", func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return matching(logLevels, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}

// newPluginHost makes the plugin host with the host logger on stderr.
func newPluginHost(stderr io.Writer) (*pluginhost.Host, error) {
	lvl := hclog.LevelFromString(logLevel)
	if lvl == hclog.NoLevel {
		return nil, &exitError{exitInvalid, fmt.Errorf("--log-level %q: expected %s or %s", logLevel,
			strings.Join(logLevels[:len(logLevels)-1], ", "), logLevels[len(logLevels)-1])}
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

// progressMode resolves a --progress flag: auto is bar on a terminal, else
// notTerminal; the other values must be in allowed (the error names
// expected, as the command documents it).
func progressMode(stderr io.Writer, flag, notTerminal, expected string, allowed ...string) (string, error) {
	if flag == "auto" {
		if ff, ok := stderr.(*os.File); ok && isTerminal(ff) {
			return "bar", nil
		}
		return notTerminal, nil
	}
	for _, a := range allowed {
		if flag == a {
			return flag, nil
		}
	}
	return "", &exitError{exitInvalid, fmt.Errorf("--progress %q: expected %s", flag, expected)}
}

// session is the start-up that run and train share: a context that Ctrl-C
// and SIGTERM cancel, the plugin manager, and the checked plan.
type session struct {
	ctx  context.Context
	m    *pluginhost.Host
	plan *plan.Plan
	stop context.CancelFunc
}

// startSession checks file as run and train do before any work (see
// checkFile); seed is the --seed flag, used when it was given. With
// locked, the plugins and weights must be those FILE.lock pins: the host
// starts no plugin the lock does not list or whose executable differs,
// and the weights are compared before anything runs. The caller closes
// the session, also after an error.
func startSession(cmd *cobra.Command, file string, sets []string, seed uint64, locked bool, verb string) (*session, error) {
	s, err := startWorkerSession(cmd)
	if err != nil {
		return s, err
	}
	m := s.m
	var lf *lock.File
	lockPath := lock.PathFor(file)
	if locked {
		if lf, err = lock.Read(lockPath); err != nil {
			return s, &exitError{exitInvalid, fmt.Errorf("--locked: %w; nothing was %s", err, verb)}
		}
		m.Lock(lockPath, lf.PluginSums())
	}
	var sp *uint64
	if cmd.Flags().Changed("seed") {
		sp = &seed
	}
	s.plan, err = checkFile(s.ctx, m, cmd.ErrOrStderr(), file, sets, sp, verb)
	if err != nil || lf == nil {
		return s, err
	}
	got, err := lock.Compute(s.plan, m)
	if err != nil {
		return s, &exitError{exitInvalid, fmt.Errorf("--locked: %w; nothing was %s", err, verb)}
	}
	if diffs := lock.Diff(lf, got); len(diffs) > 0 {
		for _, d := range diffs {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", lockPath, d)
		}
		return s, &exitError{exitInvalid, fmt.Errorf("%s: %d difference(s) from the lock; nothing was %s", file, len(diffs), verb)}
	}
	return s, nil
}

// close stops the plugins and the signal handling.
func (s *session) close() {
	if s.m != nil {
		s.m.Close()
	}
	s.stop()
}

// signalContext is cancelled by Ctrl-C and SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}
