package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
