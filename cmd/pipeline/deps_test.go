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
// only sdk/ (and what sdk/ uses of the module's internal/ packages, which
// an outside module cannot import itself).
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
		if strings.HasPrefix(rest, "internal/") && !importedBy(t, "examples/edges", p) {
			continue
		}
		t.Errorf("examples/edges depends on %s; a plugin may use only %s/sdk", p, mod)
	}
}

// importedBy reports whether a package of the module under dir (relative to
// the repository) imports pkg directly.
func importedBy(t *testing.T, dir, pkg string) bool {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-test", "-f", "{{.ImportPath}}: {{.Imports}}", "./...")
	cmd.Dir = filepath.Join(repoRoot, dir)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v", dir, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		_, imports, _ := strings.Cut(l, ": ")
		if slices.Contains(strings.Fields(strings.Trim(imports, "[]")), pkg) {
			return true
		}
	}
	return false
}

// TestSDKLeavesTheTransportToWire keeps go-plugin and gRPC out of the plugin
// author's package: sdk serves through sdk/internal/wire, and only the
// status codes of its errors come from gRPC. (The author's build still
// links them, through wire; the point is the API a plugin author sees.)
func TestSDKLeavesTheTransportToWire(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-f", "{{join .Imports \"\\n\"}}", "./sdk")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./sdk: %v", err)
	}
	imports := strings.Fields(string(out))
	if !slices.Contains(imports, "github.com/genpipe/genpipe/sdk/internal/wire") {
		t.Fatalf("sdk does not import sdk/internal/wire: %v", imports)
	}
	for _, p := range imports {
		if strings.HasPrefix(p, "github.com/hashicorp/go-plugin") || p == "google.golang.org/grpc" || strings.HasPrefix(p, "github.com/genpipe/genpipe/sdk/client") {
			t.Errorf("sdk imports %s; the transport belongs to sdk/internal/wire, the host's side to sdk/client", p)
		}
	}
}
