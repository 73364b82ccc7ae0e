package pluginhost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// stderrTail keeps the last lines a plugin wrote to stderr, for error
// reports. hclog JSON lines are rendered as "[LEVEL] message k=v". A Go panic
// prints its message first and then a long stack, so the first lines of a
// panic are kept apart from the tail, where the stack would push them out.
type stderrTail struct {
	mu      sync.Mutex
	max     int
	lines   []string
	panic   []string
	inPanic int
	partial []byte
}

const panicLines = 8

func newStderrTail(max int) *stderrTail { return &stderrTail{max: max} }

func (r *stderrTail) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.partial = append(r.partial, p...)
	for {
		i := bytes.IndexByte(r.partial, '\n')
		if i < 0 {
			break
		}
		r.add(string(r.partial[:i]))
		r.partial = r.partial[i+1:]
	}
	if len(r.partial) > 64<<10 {
		r.add(string(r.partial))
		r.partial = nil
	}
	return len(p), nil
}

func (r *stderrTail) add(raw string) {
	line := formatLine(strings.TrimRight(raw, "\r"))
	if line == "" {
		return
	}
	if r.panic == nil && (strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")) {
		r.inPanic = panicLines
	}
	if r.inPanic > 0 {
		r.panic = append(r.panic, line)
		r.inPanic--
	}
	r.lines = append(r.lines, line)
	if len(r.lines) > r.max {
		r.lines = r.lines[len(r.lines)-r.max:]
	}
}

// Lines returns the start of a panic, if any, and the last lines.
func (r *stderrTail) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	if len(r.panic) > 0 && (len(r.lines) == 0 || r.lines[0] != r.panic[0]) {
		out = append(out, r.panic...)
		out = append(out, "...")
	}
	out = append(out, r.lines...)
	if len(r.partial) > 0 {
		out = append(out, formatLine(string(r.partial)))
	}
	return out
}

// formatLine renders one hclog JSON line readably; other lines pass as is.
func formatLine(s string) string {
	if !strings.HasPrefix(s, "{") {
		return s
	}
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		return s
	}
	level, _ := m["@level"].(string)
	msg, _ := m["@message"].(string)
	var keys []string
	for k := range m {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", strings.ToUpper(level), msg)
	for _, k := range keys {
		v := fmt.Sprint(m[k])
		if i := strings.IndexByte(v, '\n'); i >= 0 {
			v = v[:i] + " ..."
		}
		if len(v) > 300 {
			v = v[:300] + "..."
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}

// lineLogger forwards the lines a plugin writes to its redirected stdout or
// stderr (after the handshake go-plugin streams them to the host) to the
// host log under the plugin's name, and to the stderr tail.
type lineLogger struct {
	mu      sync.Mutex
	log     hclog.Logger
	stream  string
	tail    io.Writer
	partial []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	if w.tail != nil {
		_, _ = w.tail.Write(p)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.log.Info(string(w.partial[:i]), "stream", w.stream)
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// wholeNumbers is a logger that prints float64 values without a fraction
// as integers. go-plugin decodes a plugin's JSON log lines with
// encoding/json, so every number arrives as float64 and hclog prints large
// ones in exponent form; plugins log counts and sizes, which are integers.
type wholeNumbers struct{ hclog.Logger }

var _ hclog.Logger = wholeNumbers{}

// maxExact is the largest integer every float64 up to it holds exactly.
const maxExact = 1 << 53

// ints returns args with its whole-number float64 values as int64.
func ints(args []any) []any {
	var out []any
	for i, v := range args {
		f, ok := v.(float64)
		if !ok || f != math.Trunc(f) || math.Abs(f) > maxExact {
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = int64(f)
	}
	if out == nil {
		return args
	}
	return out
}

// Log logs at level with whole numbers as integers.
func (l wholeNumbers) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, ints(args)...)
}

// Trace logs with whole numbers as integers.
func (l wholeNumbers) Trace(msg string, args ...any) { l.Logger.Trace(msg, ints(args)...) }

// Debug logs with whole numbers as integers.
func (l wholeNumbers) Debug(msg string, args ...any) { l.Logger.Debug(msg, ints(args)...) }

// Info logs with whole numbers as integers.
func (l wholeNumbers) Info(msg string, args ...any) { l.Logger.Info(msg, ints(args)...) }

// Warn logs with whole numbers as integers.
func (l wholeNumbers) Warn(msg string, args ...any) { l.Logger.Warn(msg, ints(args)...) }

// Error logs with whole numbers as integers.
func (l wholeNumbers) Error(msg string, args ...any) { l.Logger.Error(msg, ints(args)...) }

// With keeps the conversion for the derived logger.
func (l wholeNumbers) With(args ...any) hclog.Logger {
	return wholeNumbers{l.Logger.With(ints(args)...)}
}

// Named keeps the conversion for the sub-logger (go-plugin names one per
// plugin).
func (l wholeNumbers) Named(name string) hclog.Logger { return wholeNumbers{l.Logger.Named(name)} }

// ResetNamed keeps the conversion for the renamed logger.
func (l wholeNumbers) ResetNamed(name string) hclog.Logger {
	return wholeNumbers{l.Logger.ResetNamed(name)}
}
