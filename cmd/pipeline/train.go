package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/spf13/cobra"
)

type trainFlags struct {
	sets     []string
	seed     uint64
	fresh    bool
	progress string
	every    time.Duration
	locked   bool
}

func newTrainCmd() *cobra.Command {
	var f trainFlags
	cmd := &cobra.Command{
		Use:   "train FILE",
		Short: "Validate a pipeline file, then train the model its train: section names",
		Long: `train checks the file exactly as validate does, then trains: it streams the
items of the train: section's input stage, shuffled each epoch from the file's
seed, in batches to the plugin, which reports its losses and sends back
checkpoints and the final weights. The weights are written atomically to
output; safetensors weights get genpipe.* metadata keys recording the
training config, the dataset, the seed, the file and its sha256, the code
version and the date.

The plugin asks for a checkpoint every checkpoint.every steps; train writes
it atomically (to output + .ckpt unless checkpoint.path says otherwise) with
the position in the data stream. Rerunning the same command resumes from
it, with the batches already seen skipped, so an interrupted run ends with
the same data order as an uninterrupted one; --fresh starts over. When the
output exists and no checkpoint does, training finished earlier and train
does nothing (--fresh trains again). Only the stages that feed training run;
'pipeline run' runs the others and ignores the train: section.

Exit codes: 0 done, 1 invalid file or training failed (the last checkpoint
is kept), 130 interrupted (the last checkpoint is kept; rerun to resume).`,
		Example: `  # Train the VAE on MNIST; rerun the same command to resume after an interruption
  pipeline train examples/train/mnist-vae.yaml

  # A one-epoch smoke run of the denoising autoencoder, from the start
  pipeline train --fresh --set train.epochs=1 examples/train/mnist-dae.yaml

  # For a log file: a plain progress line every minute instead of a live line
  pipeline train --progress plain --progress-every 1m examples/train/mnist-vae.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			return trainFile(cmd, args[0], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.sets, "set", nil, "override a value: train.KEY=VALUE for the train: section (e.g. train.epochs=1), STAGE.KEY=VALUE for a stage (repeatable)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the run: data order, augmentation and the plugin's initialisation (default: the file's seed)")
	fl.BoolVar(&f.locked, "locked", false, "train only with the plugins and weights FILE.lock pins (written by pipeline lock FILE); refuse any that differ")
	fl.BoolVar(&f.fresh, "fresh", false, "ignore and remove an existing checkpoint and train from the start, replacing the output")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto (a live line on a terminal, else plain lines), bar (a live line fitted to the terminal width: $COLUMNS when not a terminal, else 80), plain (full lines), json (events on stdout), none")
	fl.DurationVar(&f.every, "progress-every", 10*time.Second, "how often plain progress lines are printed")
	completeFlag(cmd, "set", completeSet)
	return cmd
}

func trainFile(cmd *cobra.Command, file string, f *trainFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	mode, err := progressMode(stderr, f.progress, "plain", "auto, bar, plain, json or none", "bar", "plain", "json", "none")
	if err != nil {
		return err
	}
	ss, err := startSession(cmd, file, f.sets, f.seed, f.locked, "trained")
	defer ss.close()
	if err != nil {
		return err
	}
	ctx, m, p := ss.ctx, ss.m, ss.plan
	if p.Train == nil {
		return &exitError{exitInvalid, fmt.Errorf("%s has no train: section; add one (see README, Training), or run the pipeline with 'pipeline run %s'", file, file)}
	}
	if idle := idleStages(p); len(idle) > 0 {
		fmt.Fprintf(stderr, "%s: stages not feeding training are not run by train: %s (pipeline run runs them)\n", p.Name, strings.Join(idle, ", "))
	}
	out := stderr
	if mode == "json" {
		out = stdout
	}
	pr := &trainProgress{mode: mode, w: out, every: f.every, drawnStep: -1}
	if mode == "bar" {
		pr.width = termWidth(out)
	}
	res, err := job.Train(ctx, p, m, job.TrainOptions{Fresh: f.fresh, Version: buildVersion(), Progress: pr.event})
	pr.finish()
	return trainSummary(stderr, p, res, err, ctx.Err() != nil)
}

// idleStages lists the stages that no data stage of the training (input,
// eval, inputs, eval_inputs) reads, directly or through others.
func idleStages(p *plan.Plan) []string {
	used := map[string]bool{}
	var mark func(id string)
	mark = func(id string) {
		if id == "" || used[id] {
			return
		}
		used[id] = true
		if n := p.Stage(id); n != nil {
			for _, in := range n.Inputs {
				mark(in)
			}
		}
	}
	for _, id := range p.Train.DataStages() {
		mark(id)
	}
	var idle []string
	for _, n := range p.Stages {
		if !used[n.ID] {
			idle = append(idle, n.ID)
		}
	}
	return idle
}

// trainSummary prints what the run did and returns the command's error.
func trainSummary(w io.Writer, p *plan.Plan, res *job.TrainResult, err error, interrupted bool) error {
	tr := p.Train
	kept := ""
	if res != nil && res.CheckpointStep >= 0 {
		kept = fmt.Sprintf("the checkpoint of step %d is kept in %s: rerun the same command to resume", res.CheckpointStep, relPath(p, res.Checkpoint))
	} else {
		kept = "no checkpoint was written yet: a rerun starts from the beginning"
	}
	switch {
	case interrupted:
		step := 0
		if res != nil {
			step = res.Step
		}
		return &exitError{exitInterrupted, fmt.Errorf("interrupted at step %d; %s", step, kept)}
	case err != nil && res == nil:
		return &exitError{exitInvalid, err}
	case err != nil:
		return &exitError{exitInvalid, fmt.Errorf("%w\n%s", err, kept)}
	case res.AlreadyDone:
		fmt.Fprintf(w, "%s: %s exists and there is no checkpoint: training finished earlier (--fresh trains again)\n", p.Name, relPath(p, res.Output))
		return nil
	}
	preset := ""
	if tr.Preset != "" {
		preset = " preset " + tr.Preset
	}
	resumed := ""
	if tr.Init != "" {
		resumed = ", starting from " + relPath(p, tr.Init)
	}
	if res.ResumedAt > 0 {
		resumed += fmt.Sprintf(", resumed at step %d", res.ResumedAt)
	}
	fmt.Fprintf(w, "%s: trained %s%s for %d epoch(s): %d steps over %d items%s, in %s\n",
		p.Name, tr.Model, preset, res.Epochs, res.Step, res.Examples, resumed, res.Took.Round(time.Millisecond))
	if len(res.Metrics) > 0 {
		fmt.Fprintf(w, "  final metrics: %s\n", metricsText(res.Metrics, 0))
	}
	switch {
	case res.Samples > 0:
		fmt.Fprintf(w, "  wrote %d sample grid(s) to %s, the last %s\n", res.Samples, relPath(p, tr.SampleDir), filepath.Base(res.LastSamples))
	case tr.SampleEvery > 0:
		fmt.Fprintf(w, "  no sample grids: plugin %s sent no samples (it may not make any)\n", tr.Model)
	}
	fmt.Fprintf(w, "  wrote %s (sha256 %s)\n", relPath(p, res.Output), res.OutputSHA256)
	return nil
}

// relPath shows a path written by training relative to the working
// directory when it is below it.
func relPath(p *plan.Plan, path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, ok := strings.CutPrefix(path, wd+string(os.PathSeparator)); ok {
		return rel
	}
	return path
}

// metricsText formats metrics sorted by name, at most max of them (0: all).
func metricsText(m map[string]float64, max int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if max > 0 && len(keys) > max {
		keys = keys[:max]
	}
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = metricText(k, m[k])
	}
	return strings.Join(parts, " ")
}

func metricText(k string, v float64) string { return fmt.Sprintf("%s %.4g", k, v) }

// termWidth is the width of the terminal w is, else $COLUMNS, else 80.
func termWidth(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if n := ttyWidth(f); n > 0 {
			return n
		}
	}
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		return n
	}
	return 80
}

// Priorities of the parts of the live training line: when the line does
// not fit the terminal, the parts of the highest number go first, then
// the next, and so on (the position, epoch and step, always stays).
const (
	prioETA     = iota // time left
	prioLoss           // metrics named *loss*: what training minimises
	prioRate           // items/s
	prioMetric         // the plugin's other metrics
	prioHeldOut        // test_*, eval_*, val_*: shown after each epoch anyway
)

// segment is a part of the line and its priority.
type segment struct {
	text string
	prio int
}

// metricPrio classifies a metric by its name.
func metricPrio(name string) int {
	switch {
	case strings.HasPrefix(name, "test_") || strings.HasPrefix(name, "eval_") || strings.HasPrefix(name, "val_"):
		return prioHeldOut
	case strings.Contains(name, "loss"):
		return prioLoss
	}
	return prioMetric
}

// fit joins head and the segments, in order, with spaces; with width > 0
// it keeps segments in priority order (of one priority, in their order)
// while the line stays shorter than width (a line of exactly the width
// wraps on some terminals) and drops the first that does not fit and
// every one after it.
func fit(head string, segs []segment, width int) string {
	keep := make([]bool, len(segs))
	order := make([]int, len(segs))
	for i := range segs {
		order[i], keep[i] = i, width <= 0
	}
	if width > 0 {
		slices.SortStableFunc(order, func(a, b int) int { return segs[a].prio - segs[b].prio })
		used := utf8.RuneCountInString(head)
		for _, i := range order {
			n := 1 + utf8.RuneCountInString(segs[i].text)
			if used+n >= width {
				break
			}
			used += n
			keep[i] = true
		}
	}
	var b strings.Builder
	b.WriteString(head)
	for i, sg := range segs {
		if keep[i] {
			b.WriteString(" " + sg.text)
		}
	}
	return b.String()
}

// trainProgress renders training events: a live line on a terminal (bar),
// a line every few seconds otherwise (plain), JSON lines, or nothing.
// Plugin messages get lines of their own, with the metrics sent with them.
//
// The live line is fitted to the terminal: it shows the position, then
// the metrics (losses first, held-out ones last), the rate and the time
// left, and drops what does not fit in the order of the prio constants.
// Plain lines are logs and keep every metric. A plain line is printed only
// when the step moved since the last one, so the end of training is not
// printed twice.
type trainProgress struct {
	mode  string
	w     io.Writer
	every time.Duration
	width int // of the live line (bar); 0: no limit

	mu        sync.Mutex
	enc       *json.Encoder
	start     time.Time
	base      int // the step this process started at
	last      time.Time
	ev        job.TrainProgress
	drawn     bool
	drawnStep int // the step of the last plain line (-1: none yet)
}

func (p *trainProgress) event(ev job.TrainProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "none":
		return
	case "json":
		if p.enc == nil {
			p.enc = json.NewEncoder(p.w)
		}
		_ = p.enc.Encode(ev)
		return
	}
	if ev.Type == "start" {
		p.start, p.base = ev.Time, ev.Step
	}
	if ev.Message != "" {
		wasDrawn := p.drawn
		p.clear()
		fmt.Fprintln(p.w, messageLine(ev))
		if ev.Type == "message" {
			// The message's metrics are its own; the line keeps the
			// last step's.
			ev.Metrics = p.ev.Metrics
			p.ev = ev
			if wasDrawn {
				p.draw()
			}
			return
		}
	}
	if ev.Metrics == nil {
		ev.Metrics = p.ev.Metrics
	}
	p.ev = ev
	interval := 100 * time.Millisecond
	if p.mode == "plain" {
		interval = p.every
	}
	if ev.Type == "start" || ev.Time.Sub(p.last) >= interval {
		p.last = ev.Time
		p.draw()
	}
}

// messageLine is a plugin message and the metrics sent with it. It is
// a line of its own, not redrawn, so it is not fitted to the terminal: a
// wrapped line there does no harm, and the values are the message's point.
func messageLine(ev job.TrainProgress) string {
	if ev.Type != "message" || len(ev.Metrics) == 0 {
		return ev.Message
	}
	return ev.Message + " (" + metricsText(ev.Metrics, 0) + ")"
}

// clear removes the live line before other output.
func (p *trainProgress) clear() {
	if p.mode == "bar" && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false
	}
}

// line is the progress line of the current state.
func (p *trainProgress) line() string {
	ev := p.ev
	head := fmt.Sprintf("epoch %d/%d step %d/%d", ev.Epoch, ev.Epochs, ev.Step, ev.Steps)
	if ev.Steps > 0 {
		head += fmt.Sprintf(" %3.0f%%", 100*float64(ev.Step)/float64(ev.Steps))
	}
	// The rate is the host's own (items/s below), not the plugin's
	// items_per_s, which covers its last progress interval only.
	var keys []string
	for k := range ev.Metrics {
		if k != "items_per_s" {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		if pa, pb := metricPrio(a), metricPrio(b); pa != pb {
			return pa - pb
		}
		return strings.Compare(a, b)
	})
	var segs []segment
	for _, k := range keys {
		segs = append(segs, segment{metricText(k, ev.Metrics[k]), metricPrio(k)})
	}
	elapsed := ev.Time.Sub(p.start).Seconds()
	if done := ev.Step - p.base; elapsed > 0 && done > 0 {
		segs = append(segs, segment{fmt.Sprintf("%.1f items/s", float64(ev.Items)/elapsed), prioRate})
		if left := ev.Steps - ev.Step; left > 0 {
			eta := time.Duration(float64(left) / (float64(done) / elapsed) * float64(time.Second))
			segs = append(segs, segment{"eta " + eta.Round(time.Second).String(), prioETA})
		}
	}
	return fit(head, segs, p.width)
}

func (p *trainProgress) draw() {
	if p.mode == "bar" {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line())
		p.drawn = true
		return
	}
	if p.ev.Step == p.drawnStep {
		return // the same position as the last line: nothing new
	}
	p.drawnStep = p.ev.Step
	fmt.Fprintln(p.w, p.line())
}

// finish draws the last state and ends the live line.
func (p *trainProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != "bar" && p.mode != "plain" || p.ev.Type == "" {
		return
	}
	p.draw()
	if p.mode == "bar" {
		fmt.Fprintln(p.w)
	}
}
