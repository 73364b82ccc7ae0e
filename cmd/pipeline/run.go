package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/genpipe/genpipe/internal/atomicfile"
	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/run"
	"github.com/genpipe/genpipe/pipeline/stages"
	"github.com/spf13/cobra"
)

// onErrorPolicies are the values of --on-error: run checks the flag and
// the shell completes it from this one list.
var onErrorPolicies = []struct {
	name   string
	policy run.Policy
	doc    string
}{
	{"stop", run.Stop, "end the job at the first failed item"},
	{"skip", run.Skip, "report a failed item and go on"},
}

type runFlags struct {
	sets       []string
	seed       uint64
	onError    string
	progress   string
	overwrite  bool
	shard      string
	shardCount int
	failures   string
	locked     bool
	queue      queueFlags
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Validate a pipeline, then stream its items through the stages",
		Long: `run checks the pipeline exactly as validate does, then runs it. Outputs are
written atomically; outputs that already exist are skipped, so rerunning an
interrupted job resumes it (--overwrite rewrites them). Exit codes: 0 done,
1 invalid pipeline or job error, 2 some items failed, 130 interrupted.

Sharding: --shard I/N processes the items whose index modulo N is I, so N
machines split one job. --shard-count N takes I from JOB_COMPLETION_INDEX
(Kubernetes Indexed Jobs).`,
		Example: `  # Run a pipeline; a rerun skips the outputs that exist, so it resumes
  pipeline run examples/vae-samples.yaml

  # Override a stage parameter and the seed
  pipeline run --set samples.count=16 --seed 7 examples/vae-samples.yaml

  # Go on past items that fail, and print progress as JSON events on stdout
  pipeline run --on-error skip --progress json examples/denoise-photos.yaml

  # Process the second of four shards (run 0/4 to 3/4 on four machines)
  pipeline run --shard 1/4 examples/denoise-photos.yaml

  # Run only with the plugins and weights pinned by pipeline lock
  pipeline run --locked examples/vae-samples.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPipeline(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.sets, "set", nil, "override a stage parameter: STAGE.KEY=VALUE (repeatable)")
	fl.Uint64Var(&f.seed, "seed", 0, "pipeline seed (default: the file's seed)")
	fl.StringVar(&f.onError, "on-error", "stop", "what a failed item does: stop (end the job) or skip (report it and go on)")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto (a bar on a terminal), bar, json (events on stdout), none")
	fl.BoolVar(&f.overwrite, "overwrite", false, "rewrite outputs that already exist instead of skipping them")
	fl.StringVar(&f.shard, "shard", "", "process only shard I of N: I/N with 0 <= I < N")
	fl.IntVar(&f.shardCount, "shard-count", 0, "number of shards; the shard index comes from JOB_COMPLETION_INDEX")
	addQueueFlags(fl, &f.queue)
	fl.BoolVar(&f.locked, "locked", false, "run only the plugins and weights FILE.lock pins (written by pipeline lock FILE); refuse any that differ")
	fl.StringVar(&f.failures, "failures", "", "write every failed item (stage, index, item, source, reason) to this file as JSON lines; the summary shows the first "+strconv.Itoa(shownFailures))
	completeFlag(cmd, "set", completeSet)
	completeFlag(cmd, "on-error", completeOnError)
	return cmd
}

// parseShard reads --shard I/N or --shard-count N with JOB_COMPLETION_INDEX.
func parseShard(shard string, count int, getenv func(string) string) (int, int, error) {
	if shard != "" && count > 0 {
		return 0, 0, errors.New("--shard and --shard-count exclude each other")
	}
	if count > 0 {
		v := getenv("JOB_COMPLETION_INDEX")
		i, err := strconv.Atoi(v)
		if err != nil {
			return 0, 0, fmt.Errorf("--shard-count %d needs JOB_COMPLETION_INDEX set to the shard index, got %q", count, v)
		}
		shard = fmt.Sprintf("%d/%d", i, count)
	}
	if shard == "" {
		return 0, 1, nil
	}
	is, ns, ok := strings.Cut(shard, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("shard %q: expected I/N with 0 <= I < N, e.g. 0/4", shard)
	}
	return i, n, nil
}

func runPipeline(cmd *cobra.Command, file string, f *runFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	policy, err := onErrorPolicy(f.onError)
	if err != nil {
		return &exitError{exitInvalid, err}
	}
	mode, err := progressMode(stderr, f.progress, "none", "auto, bar, json or none", "bar", "json", "none")
	if err != nil {
		return err
	}
	si, sn, err := parseShard(f.shard, f.shardCount, os.Getenv)
	if err != nil {
		return &exitError{exitInvalid, err}
	}

	ss, err := startSession(cmd, file, f.sets, f.seed, f.locked, "run")
	defer ss.close()
	if err != nil {
		return err
	}
	ctx, m, p := ss.ctx, ss.m, ss.plan
	if f.queue.url != "" {
		return submitJob(ctx, cmd, file, f, p)
	}
	if p.Train != nil {
		// Documented: run runs the stages (say, a save that previews the
		// training data) and leaves training to the train command.
		fmt.Fprintf(stderr, "%s: run ignores the train: section; train with 'pipeline train %s'\n", p.Name, file)
	}
	sources, sinks := countEnds(p)
	progressOut := stderr
	if mode == "json" {
		progressOut = stdout
	}
	pr := newProgress(mode, progressOut, sources, sinks)
	start := time.Now()
	res, err := job.Run(ctx, p, m, job.Options{
		OnError:    policy,
		Overwrite:  f.overwrite,
		ShardIndex: si,
		ShardCount: sn,
		Progress:   pr.event,
	})
	pr.finish()
	if err != nil && res == nil {
		if ctx.Err() != nil {
			return &exitError{exitInterrupted, errors.New("interrupted while starting the job; nothing was run")}
		}
		return &exitError{exitInvalid, err}
	}
	if f.failures != "" {
		if werr := writeFailures(f.failures, res.Failures); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	summarize(stderr, p, res, time.Since(start), f.failures)
	switch {
	case res.Interrupted || ctx.Err() != nil:
		// Errors of an interrupted job are mostly its cancellation.
		return &exitError{exitInterrupted, errors.New("interrupted; rerun the same command to resume")}
	case err != nil:
		return &exitError{exitInvalid, err}
	case len(res.Failures) > 0:
		return &exitError{exitItemsFailed, fmt.Errorf("%d item(s) failed", len(res.Failures))}
	}
	return nil
}

// onErrorPolicy resolves --on-error.
func onErrorPolicy(name string) (run.Policy, error) {
	var names []string
	for _, p := range onErrorPolicies {
		if p.name == name {
			return p.policy, nil
		}
		names = append(names, p.name)
	}
	return 0, fmt.Errorf("--on-error %q: expected %s", name, strings.Join(names, " or "))
}

func countEnds(p *plan.Plan) (sources, sinks int) {
	for _, n := range p.Stages {
		if len(n.Inputs) == 0 {
			sources++
		}
		if stages.LookupKind(string(n.Kind)).Sink {
			sinks++
		}
	}
	return
}

// shownFailures is how many failed items the summary lists; a job of
// thousands of bad files must not bury the summary under them.
const shownFailures = 5

// summarize prints what the job did and the first failed items with their
// reasons; failuresFile is the --failures file ("" when not given).
func summarize(w io.Writer, p *plan.Plan, res *run.Result, took time.Duration, failuresFile string) {
	unchanged := ""
	if res.Unchanged > 0 {
		unchanged = fmt.Sprintf(", %d unchanged", res.Unchanged)
	}
	dropped := ""
	for _, st := range p.Stages {
		if st.Keep != nil {
			// Said whenever the file keeps by a score, also when nothing
			// was dropped, so that a screening job always reports it.
			dropped = fmt.Sprintf(", dropped %d by keep", res.Dropped)
			break
		}
	}
	fmt.Fprintf(w, "%s: wrote %d outputs%s, skipped %d already done, failed %d items%s in %s\n",
		p.Name, res.Written, unchanged, res.Skipped, len(res.Failures), dropped, took.Round(time.Millisecond))
	for i, f := range res.Failures {
		if i == shownFailures {
			more := len(res.Failures) - shownFailures
			if failuresFile != "" {
				fmt.Fprintf(w, "  ... and %d more (full list in %s)\n", more, failuresFile)
			} else {
				fmt.Fprintf(w, "  ... and %d more (--failures FILE writes the full list)\n", more)
			}
			break
		}
		fmt.Fprintf(w, "  failed: %s\n", indent(f.String()))
	}
	if res.Stopped {
		fmt.Fprintln(w, "  stopped at the first failure (--on-error stop); rerun with --on-error skip to go on past failed items")
	}
}

// failureRecord is one line of the --failures file. JSON lines rather than
// TSV: reasons hold tabs, newlines (a plugin's stderr, a panic's stack) and
// quotes, which JSON escapes and every tool reads back (jq, pandas, Go).
type failureRecord struct {
	Stage  string `json:"stage"`
	Index  int    `json:"index"`
	Item   string `json:"item"`
	Source string `json:"source,omitempty"`
	Reason string `json:"reason"`
}

// writeFailures writes every failure to file, atomically, as JSON lines; a
// job without failures leaves an empty file, so an old list is never taken
// for this run's.
func writeFailures(file string, fails []run.Failure) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, f := range fails {
		if err := enc.Encode(failureRecord{Stage: f.Stage, Index: f.Index, Item: f.Item, Source: f.Source, Reason: f.Err.Error()}); err != nil {
			return fmt.Errorf("--failures %s: %w", file, err)
		}
	}
	if err := atomicfile.Write(file, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("--failures %s: %w", file, err)
	}
	return nil
}

func indent(s string) string { return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") }
