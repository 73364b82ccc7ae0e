package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/genpipe/genpipe/pipeline/run"
)

// progressPrinter renders executor events as a terminal bar, JSON lines or
// nothing. The bar redraws at most every 100 ms: a job of millions of items
// must not spend its time printing.
//
// The bar counts items: its total is the sum of the sources' totals, which
// counting sources report before their first item; an item is done once
// every sink wrote or skipped it, or once it failed. Items a resume skips
// are done (they are in the total), but they do not count towards the rate,
// so the ETA is the time the remaining work takes, not the skipping.
type progressPrinter struct {
	mode string // bar, json, none
	w    io.Writer

	mu         sync.Mutex
	enc        *json.Encoder
	start      time.Time
	last       time.Time
	totals     map[string]int // per source stage, once known
	sinkDone   map[string]int // per sink stage: written + skipped
	sinkSkip   map[string]int // per sink stage: skipped
	srcSkipped int            // items skipped at their source (resume)
	failed     int
	dropped    int // items a keep: filtered out, done early
	sources    int
	sinks      int
}

func newProgress(mode string, w io.Writer, sources, sinks int) *progressPrinter {
	p := &progressPrinter{mode: mode, w: w, start: time.Now(), totals: map[string]int{},
		sinkDone: map[string]int{}, sinkSkip: map[string]int{}, sources: sources, sinks: sinks}
	if mode == "json" {
		p.enc = json.NewEncoder(w)
	}
	return p
}

// event is the run.Options.Progress callback (never called concurrently).
func (p *progressPrinter) event(ev run.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case "json":
		_ = p.enc.Encode(ev)
		return
	case "none":
		return
	}
	switch ev.Type {
	case "total":
		p.totals[ev.Stage] = ev.Total
	case "fail":
		p.failed++
	case "drop":
		p.dropped++
	case "item", "skip":
		switch {
		case ev.Sink:
			p.sinkDone[ev.Stage] = ev.Done + ev.Skipped
			p.sinkSkip[ev.Stage] = ev.Skipped
		case ev.Type == "skip":
			p.srcSkipped++
		}
	}
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || ev.Type == "total" {
		p.last = now
		p.draw()
	}
}

// line is the bar's text: the slowest sink's progress against the total.
func (p *progressPrinter) line() string {
	total, known := 0, len(p.totals) == p.sources
	for _, n := range p.totals {
		total += n
	}
	done, skipped := -1, 0
	for st, n := range p.sinkDone {
		if done < 0 || n < done {
			done = n
		}
		skipped = max(skipped, p.sinkSkip[st])
	}
	if done < 0 || len(p.sinkDone) < p.sinks {
		done, skipped = 0, 0
	}
	done += p.srcSkipped + p.failed + p.dropped
	skipped += p.srcSkipped
	if known {
		done = min(done, total)
	}
	elapsed := time.Since(p.start)
	rate := float64(max(done-skipped, 0)) / elapsed.Seconds()
	var b strings.Builder
	if known && total > 0 {
		frac := float64(done) / float64(total)
		const width = 30
		fill := int(frac * width)
		b.WriteString("[" + strings.Repeat("=", fill) + strings.Repeat(" ", width-fill) + "]")
		fmt.Fprintf(&b, " %d/%d %3.0f%%", done, total, 100*frac)
		if rate > 0 && done < total {
			eta := time.Duration(float64(total-done)/rate) * time.Second
			fmt.Fprintf(&b, " eta %s", eta.Round(time.Second))
		}
	} else {
		fmt.Fprintf(&b, "%d items", done)
	}
	fmt.Fprintf(&b, " %.1f/s", rate)
	if skipped > 0 {
		fmt.Fprintf(&b, " %d skipped", skipped)
	}
	if p.failed > 0 {
		fmt.Fprintf(&b, " %d failed", p.failed)
	}
	return b.String()
}

// draw redraws the bar.
func (p *progressPrinter) draw() {
	fmt.Fprintf(p.w, "\r\033[K%s", p.line())
}

// finish ends the bar's line.
func (p *progressPrinter) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == "bar" {
		p.draw()
		fmt.Fprintln(p.w)
	}
}
