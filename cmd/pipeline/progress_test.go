package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/genpipe/genpipe/pipeline/job"
	"github.com/rogpeppe/go-internal/testscript"
)

func init() {
	scriptCmds["mkcorrupt"] = cmdMkcorrupt
	scriptCmds["firstevent"] = cmdFirstevent
}

// mkcorrupt DIR N: write N files named bad-NN.png that start like a PNG
// and then stop (every one fails to decode, differently from the others
// only by name).
func cmdMkcorrupt(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "mkcorrupt")
	if len(args) != 2 {
		ts.Fatalf("usage: mkcorrupt DIR N")
	}
	dir := ts.MkAbs(args[0])
	ts.Check(os.MkdirAll(dir, 0o755))
	for i := range atoi(ts, args[1]) {
		head := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
		ts.Check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("bad-%02d.png", i)), head, 0o644))
	}
}

// firstevent FILE TYPE [TOTAL]: the first JSON event of FILE has type
// TYPE (and total TOTAL).
func cmdFirstevent(ts *testscript.TestScript, neg bool, args []string) {
	noNeg(ts, neg, "firstevent")
	if len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: firstevent FILE TYPE [TOTAL]")
	}
	first, _, _ := strings.Cut(ts.ReadFile(args[0]), "\n")
	var ev struct {
		Type  string `json:"type"`
		Total int    `json:"total"`
	}
	if err := json.Unmarshal([]byte(first), &ev); err != nil {
		ts.Fatalf("%s: first line is not a JSON event: %v: %q", args[0], err, first)
	}
	if ev.Type != args[1] {
		ts.Fatalf("%s: first event has type %q, want %q: %s", args[0], ev.Type, args[1], first)
	}
	if len(args) == 3 && fmt.Sprint(ev.Total) != args[2] {
		ts.Fatalf("%s: first event has total %d, want %s: %s", args[0], ev.Total, args[2], first)
	}
}

// ganMetrics are what the GAN plugin reports each interval, plus held-out
// ones: a full line is far wider than 80 columns.
var ganMetrics = map[string]float64{
	"d_fake": -0.05212, "d_loss": 0.8641, "d_real": 1.845, "g_loss": 0.9736, "spread": 0.1078,
	"items_per_s": 284.3, "test_bce": 388.02, "test_mse": 0.1385, "test_kl": 7.119,
}

// trainEvents feeds pr a start, a step with metrics, samples and done
// events, as a short training run makes them, and returns the output.
func trainEvents(pr *trainProgress) string {
	var out bytes.Buffer
	pr.w, pr.drawnStep = &out, -1
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := job.TrainProgress{Epoch: 1, Epochs: 2, Steps: 8, Time: t0, Type: "start"}
	pr.event(ev)
	ev.Type, ev.Step, ev.Items, ev.Time, ev.Metrics = "step", 2, 128, t0.Add(20*time.Second), ganMetrics
	pr.event(ev)
	ev.Type, ev.Step, ev.Items, ev.Epoch, ev.Time = "step", 8, 512, 2, t0.Add(80*time.Second)
	pr.event(ev)
	ev.Type, ev.Metrics, ev.Path, ev.Time = "samples", nil, "step-000008.png", ev.Time.Add(time.Millisecond)
	pr.event(ev)
	ev.Type, ev.Metrics, ev.Time = "done", ganMetrics, ev.Time.Add(time.Millisecond)
	pr.event(ev)
	pr.finish()
	return out.String()
}

// TestTrainLineFitsWidth checks that the live training line stays within
// the terminal's width, dropping the parts of lowest priority first, and
// that plain lines keep everything.
func TestTrainLineFitsWidth(t *testing.T) {
	for _, width := range []int{80, 60, 40} {
		out := trainEvents(&trainProgress{mode: "bar", width: width})
		draws := strings.Split(strings.TrimSuffix(out, "\n"), "\r\033[K")
		for _, d := range draws[1:] {
			if n := utf8.RuneCountInString(d); n >= width {
				t.Errorf("width %d: a line of %d columns: %q", width, n, d)
			}
		}
		mid := draws[2] // step 2 of 8: an eta
		if width == 80 {
			for _, want := range []string{"epoch 1/2 step 2/8  25%", "eta 1m0s", "d_loss 0.8641", "g_loss 0.9736", "items/s"} {
				if !strings.Contains(mid, want) {
					t.Errorf("width 80: %q lacks %q", mid, want)
				}
			}
			if strings.Contains(mid, "test_") {
				t.Errorf("width 80: held-out metrics shown before the others: %q", mid)
			}
		}
		if !strings.HasPrefix(mid, "epoch 1/2 step 2/8") || !strings.Contains(mid, "eta") {
			t.Errorf("width %d: the position or the eta was dropped: %q", width, mid)
		}
	}
	plain := trainEvents(&trainProgress{mode: "plain"})
	for _, want := range []string{"d_fake", "d_real", "spread", "test_bce", "test_kl", "test_mse", "eta 1m0s", "items/s"} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain output lacks %q:\n%s", want, plain)
		}
	}
}

// TestTrainPlainLastLineOnce checks that the end of training is printed
// once: the samples and done events after the last step, and finish,
// add no copy of the last step's line.
func TestTrainPlainLastLineOnce(t *testing.T) {
	for _, every := range []time.Duration{0, 10 * time.Second} {
		out := trainEvents(&trainProgress{mode: "plain", every: every})
		if n := strings.Count(out, "step 8/8"); n != 1 {
			t.Errorf("every %v: %d lines of step 8/8:\n%s", every, n, out)
		}
		if !strings.HasPrefix(out, "epoch 1/2 step 0/8") {
			t.Errorf("every %v: no start line:\n%s", every, out)
		}
	}
}

// TestTrainMessageMetrics checks that a message sent with metrics (the
// held-out metrics after an epoch) shows their values.
func TestTrainMessageMetrics(t *testing.T) {
	var out bytes.Buffer
	pr := &trainProgress{mode: "bar", w: &out, width: 80, drawnStep: -1}
	t0 := time.Now()
	pr.event(job.TrainProgress{Type: "start", Epochs: 1, Steps: 4, Time: t0})
	pr.event(job.TrainProgress{Type: "step", Epochs: 1, Steps: 4, Step: 2, Time: t0.Add(time.Second), Metrics: map[string]float64{"loss": 2}})
	pr.event(job.TrainProgress{Type: "message", Epochs: 1, Steps: 4, Step: 2, Time: t0.Add(time.Second), Message: "held-out metrics", Metrics: map[string]float64{"test_bce": 388, "test_mse": 0.1385}})
	got := out.String()
	if !strings.Contains(got, "held-out metrics (test_bce 388 test_mse 0.1385)\n") {
		t.Errorf("the message lacks its values:\n%q", got)
	}
	// The live line comes back after the message, with the step's metrics.
	after := got[strings.Index(got, "0.1385)\n")+len("0.1385)\n"):]
	if !strings.HasPrefix(after, "\r\033[Kepoch 0/1 step 2/4") || !strings.Contains(after, "loss 2") {
		t.Errorf("the live line was not redrawn after the message:\n%q", got)
	}
}

// TestTermWidth checks the fallbacks when the output is not a terminal.
func TestTermWidth(t *testing.T) {
	t.Setenv("COLUMNS", "97")
	if w := termWidth(&bytes.Buffer{}); w != 97 {
		t.Errorf("$COLUMNS 97: width %d", w)
	}
	t.Setenv("COLUMNS", "")
	if w := termWidth(&bytes.Buffer{}); w != 80 {
		t.Errorf("no terminal, no $COLUMNS: width %d, want 80", w)
	}
}
