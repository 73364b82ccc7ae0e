package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the reference section of README.md")

// TestReadmeReference keeps README.md's pipeline file reference equal to what
// `pipeline docs` generates from the declared parameters.
func TestReadmeReference(t *testing.T) {
	const start, end = "<!-- reference:start -->\n", "<!-- reference:end -->"
	path := "../../README.md"
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", start, end)
	}
	var buf bytes.Buffer
	writeReference(&buf)
	want := buf.String()
	if got := s[i+len(start) : j]; got != want {
		if *updateReadme {
			if err := os.WriteFile(path, []byte(s[:i+len(start)]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Fatalf("README.md's reference is out of date; run: go test ./cmd/pipeline -run TestReadmeReference -update-readme")
	}
}
