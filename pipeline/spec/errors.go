package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is where something was written: a line and column (1-based) of File,
// or, for a value given on the command line, File names the flag (such as
// "--set typeset.direction") and Line and Col are 0.
type Pos struct {
	File string
	Line int
	Col  int
}

// String formats p as FILE:LINE:COL, or just FILE when it has no line.
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// IsFlag reports whether p names a command-line flag rather than a place in
// the file.
func (p Pos) IsFlag() bool { return p.Line == 0 }

// Error is one problem with a pipeline, at a position, with an optional hint
// (such as a "did you mean").
type Error struct {
	Pos
	Msg  string
	Hint string
}

// Error formats e as `FILE:LINE:COL: message (hint)`.
func (e *Error) Error() string {
	s := e.Msg
	if p := e.Pos.String(); p != "" {
		s = p + ": " + s
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Errorf returns an Error at pos with a formatted message.
func Errorf(pos Pos, hint, format string, a ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, a...), Hint: hint}
}

// Errors is a list of problems. Parse and the planner return every problem
// they find at once, sorted by position with [Errors.Sort].
type Errors []*Error

// Error prints one problem per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error, or nil when there is no problem (so an empty
// list never becomes a non-nil error interface).
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// Sort orders es by position: problems with command-line flags first (they
// have no line), then by line, column and message. Equal problems at the same
// place are reported once.
func (es *Errors) Sort() {
	l := *es
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Msg < b.Msg
	})
	out := l[:0]
	for _, e := range l {
		if len(out) > 0 && *e == *out[len(out)-1] {
			continue
		}
		out = append(out, e)
	}
	*es = out
}
