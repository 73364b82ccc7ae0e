package scaffold

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the genpipe clone these tests run in: a real SDK to point at.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func TestCheckName(t *testing.T) {
	good := map[string]string{"tint": "tint", "my-tint": "mytint", "x_2": "x2", "a": "a"}
	for name, pkg := range good {
		got, err := CheckName(name)
		if err != nil || got != pkg {
			t.Errorf("CheckName(%q) = %q, %v; want %q, nil", name, got, err, pkg)
		}
	}
	bad := map[string]string{
		"":         "use lowercase letters",
		"Tint":     "use lowercase letters",
		"2tint":    "starting with a letter",
		"-tint":    "use lowercase letters",
		"my tint":  "use lowercase letters",
		"../x":     "use lowercase letters",
		"tint.v2":  "use lowercase letters",
		"func":     `Go package name "func"`,
		"s-d-k":    `Go package name "sdk"`,
		"main":     `Go package name "main"`,
		"sdk_test": "", // makes package sdktest
	}
	for name, want := range bad {
		_, err := CheckName(name)
		if err == nil {
			t.Errorf("CheckName(%q) accepted it", name)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "plugin name "+`"`+name+`"`) {
			t.Errorf("CheckName(%q) = %v; want it to name the plugin name and say %q", name, err, want)
		}
	}
	if _, err := CheckName(strings.Repeat("a", 65)); err == nil {
		t.Errorf("CheckName accepted a 65-character name")
	}
}

func TestCheckModule(t *testing.T) {
	for _, m := range []string{"example.com/tint", "github.com/you/my-tint", "tint", "gitlab.com/a/b/c.v2"} {
		if err := CheckModule(m); err != nil {
			t.Errorf("CheckModule(%q): %v", m, err)
		}
	}
	for _, m := range []string{"", "/abs", "a b", "a//b", "a/../b", "a/", "x.", `a\b`, "github.com/genpipe/genpipe", "github.com/genpipe/genpipe/plugins/x"} {
		if err := CheckModule(m); err == nil {
			t.Errorf("CheckModule(%q) accepted it", m)
		}
	}
}

func TestCheckDir(t *testing.T) {
	tmp := t.TempDir()
	if err := CheckDir(filepath.Join(tmp, "new")); err != nil {
		t.Errorf("a folder that does not exist: %v", err)
	}
	if err := CheckDir(tmp); err != nil {
		t.Errorf("an empty folder: %v", err)
	}
	inTheWay := filepath.Join(tmp, "notes.txt")
	if err := os.WriteFile(inTheWay, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := CheckDir(tmp)
	if err == nil || !strings.Contains(err.Error(), inTheWay+" is in the way") {
		t.Errorf("a folder with a file: %v; want an error naming %s", err, inTheWay)
	}
	err = CheckDir(inTheWay)
	if err == nil || !strings.Contains(err.Error(), "is a file, not a folder") {
		t.Errorf("a file: %v", err)
	}
}

// fakeClone makes a folder whose go.mod declares module with an sdk/serve.go.
func fakeClone(t *testing.T, module string) string {
	t.Helper()
	dir := t.TempDir()
	mod := "// a comment\nmodule " + module + " // trailing\n\ngo 1.99.1\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sdk", "deep", "er"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sdk", "serve.go"), []byte("package sdk\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFindClone(t *testing.T) {
	clone := fakeClone(t, SDKModule)
	if got := FindClone(filepath.Join(clone, "sdk", "deep", "er")); got != clone {
		t.Errorf("FindClone from inside the clone = %q, want %q", got, clone)
	}
	if got := FindClone(clone); got != clone {
		t.Errorf("FindClone at the clone = %q, want %q", got, clone)
	}
	other := fakeClone(t, "example.com/other")
	if got := FindClone(filepath.Join(other, "sdk")); got != "" {
		t.Errorf("FindClone in another module = %q, want none", got)
	}
	if got := FindClone(repoRoot(t)); got != repoRoot(t) {
		t.Errorf("FindClone in this repository = %q, want %q", got, repoRoot(t))
	}
}

func TestCheckSDK(t *testing.T) {
	clone := fakeClone(t, SDKModule)
	abs, gov, err := CheckSDK(clone)
	if err != nil || abs != clone || gov != "1.99.1" {
		t.Errorf("CheckSDK(fake clone) = %q, %q, %v", abs, gov, err)
	}
	other := fakeClone(t, "example.com/other")
	if _, _, err := CheckSDK(other); err == nil || !strings.Contains(err.Error(), `declares module "example.com/other"`) || !strings.Contains(err.Error(), filepath.Join(other, "go.mod")) {
		t.Errorf("CheckSDK(other module) = %v", err)
	}
	empty := t.TempDir()
	if _, _, err := CheckSDK(empty); err == nil || !strings.Contains(err.Error(), "has no go.mod") {
		t.Errorf("CheckSDK(empty) = %v", err)
	}
	if err := os.Remove(filepath.Join(clone, "sdk", "serve.go")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := CheckSDK(clone); err == nil || !strings.Contains(err.Error(), "no sdk/serve.go") {
		t.Errorf("CheckSDK(clone without sdk) = %v", err)
	}
}

// TestGenerate writes a module and checks what the command promises of it
// without building it (cmd/pipeline's TestPluginsNewBuilds builds and runs
// one): the file set, go.mod's requirement, replace and go version, Go
// files that parse, and the import alias a hyphenated name needs.
func TestGenerate(t *testing.T) {
	root := repoRoot(t)
	_, goVersion, err := ReadModFile(root)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "my-tint")
	written, err := Generate(Options{Name: "my-tint", Dir: dir, SDKDir: filepath.Join("..", "..")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"go.mod", "README.md", "mytint.go", "mytint_test.go",
		filepath.Join("cmd", "pipeline-plugin-my-tint", "main.go"),
		filepath.Join("cmd", "pipeline-plugin-my-tint", "main_test.go"),
		"example.yaml", ".gitignore"}
	if !slices.Equal(written, want) {
		t.Errorf("written %v, want %v", written, want)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mod := read("go.mod")
	for _, line := range []string{"module example.com/my-tint\n", "go " + goVersion + "\n",
		"require " + SDKModule + " v0.0.0\n", "replace " + SDKModule + " => " + root + "\n"} {
		if !strings.Contains(mod, line) {
			t.Errorf("go.mod lacks %q:\n%s", line, mod)
		}
	}
	fset := token.NewFileSet()
	for _, p := range written {
		if !strings.HasSuffix(p, ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, p), read(p), parser.ImportsOnly)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == `"example.com/my-tint"` && (imp.Name == nil || imp.Name.Name != "mytint") {
				t.Errorf("%s imports example.com/my-tint without naming it mytint", p)
			}
		}
	}
	if main := read(filepath.Join("cmd", "pipeline-plugin-my-tint", "main.go")); !strings.Contains(main, "sdk.Serve(mytint.New())") {
		t.Errorf("main.go does not serve the plugin:\n%s", main)
	}
	if y := read("example.yaml"); !strings.Contains(y, "my-tint: {path: bin/pipeline-plugin-my-tint}") || !strings.Contains(y, "model: my-tint") {
		t.Errorf("example.yaml does not use the plugin:\n%s", y)
	}
	readme := read("README.md")
	for _, s := range []string{"go get github.com/genpipe/genpipe@vX.Y.Z", "go mod edit -dropreplace", "replace github.com/genpipe/genpipe => " + root, "go mod tidy", "go build -o bin/ ./cmd/pipeline-plugin-my-tint"} {
		if !strings.Contains(readme, s) {
			t.Errorf("README.md lacks %q", s)
		}
	}
}

// TestGenerateNeverOverwrites: a folder with anything in it is refused
// before a file is written, and a file that appears in between is not
// replaced (files are created exclusively).
func TestGenerateNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	mine := filepath.Join(dir, "go.mod")
	if err := os.WriteFile(mine, []byte("module mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Generate(Options{Name: "tint", Dir: dir, SDKDir: repoRoot(t)})
	if err == nil || !strings.Contains(err.Error(), mine+" is in the way") {
		t.Fatalf("Generate into a folder with a go.mod: %v", err)
	}
	if b, _ := os.ReadFile(mine); string(b) != "module mine\n" {
		t.Errorf("go.mod was changed to %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("the folder holds %d entries, want only the user's go.mod", len(ents))
	}
}

func TestGenerateQuotesPaths(t *testing.T) {
	// A clone in a folder with a space: go.mod needs the path quoted and
	// shell lines need it quoted too.
	clone := fakeClone(t, SDKModule)
	spaced := filepath.Join(t.TempDir(), "my clone")
	if err := os.Rename(clone, spaced); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tint")
	if _, err := Generate(Options{Name: "tint", Dir: dir, SDKDir: spaced}); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(mod), `=> "`+spaced+`"`) {
		t.Errorf("go.mod does not quote the clone's path:\n%s", mod)
	}
	readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
	if !strings.Contains(string(readme), "go -C '"+spaced+"' install") {
		t.Errorf("README.md does not shell-quote the clone's path")
	}
}
