package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goList runs `go list -deps -test ARGS` in dir's own module (GOWORK=off)
// and returns the packages.
func goList(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goBin, append([]string{"list", "-deps", "-test"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	// Test variants read "PKG [PKG.test]": keep the first word of a line.
	var pkgs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			pkgs = append(pkgs, f[0])
		}
	}
	return pkgs
}

// TestRuntimeDoesNotDependOnGorgonia keeps the host runtime and the SDK free
// of the model libraries: only cmd/pipeline links the built-in families.
// Test files count too, so no package's tests pull gorgonia in either.
func TestRuntimeDoesNotDependOnGorgonia(t *testing.T) {
	pkgs := goList(t, repoRoot, "./pipeline/...", "./sdk/...")
	// Guard against a vacuous pass (wrong folder, empty output).
	for _, want := range []string{"github.com/genpipe/genpipe/pipeline/run", "github.com/genpipe/genpipe/sdk"} {
		if !slices.Contains(pkgs, want) {
			t.Fatalf("go list -deps ./pipeline/... ./sdk/... does not list %s: %v", want, pkgs)
		}
	}
	for _, p := range pkgs {
		if strings.HasPrefix(p, "gorgonia.org/") {
			t.Errorf("pipeline/... or sdk/... depends on %s (find the importer with: go list -deps -test -f '{{.ImportPath}}: {{.Imports}}' ./pipeline/... ./sdk/...)", p)
		}
	}
}

// TestEdgesImportsOnlySDK checks that the third-party example plugin is
// built the way an outside author's plugin is: of this repository it uses
// only sdk/.
func TestEdgesImportsOnlySDK(t *testing.T) {
	const mod = "github.com/genpipe/genpipe"
	for _, p := range goList(t, filepath.Join(repoRoot, "examples", "edges"), "./...") {
		if !strings.HasPrefix(p, mod+"/") {
			continue
		}
		// The plugin's own packages include its test variants
		// (examples/edges_test, examples/edges.test).
		rest := strings.TrimPrefix(p, mod+"/")
		// internal/atomicfile is sdk/safetensors' writer: reached through
		// sdk/, never imported by the plugin itself.
		if rest == "sdk" || strings.HasPrefix(rest, "sdk/") || strings.HasPrefix(rest, "examples/edges") || rest == "internal/atomicfile" {
			continue
		}
		t.Errorf("examples/edges depends on %s; a plugin may use only %s/sdk", p, mod)
	}
}
