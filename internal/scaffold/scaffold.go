// Package scaffold writes a new plugin module outside the genpipe
// repository: go.mod wired to the SDK, a plugin with one capability, its
// conformance test, a README and an example pipeline. It is the code of
// `pipeline plugins new`; the file contents are the embedded templates.
//
// The SDK has no published release, so the module requires the placeholder
// version v0.0.0 and replaces it with a clone of the repository (the only
// route `go mod tidy` accepts: it ignores go.work). The generated files say
// what changes once a release exists.
package scaffold

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"go/format"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/template"
)

// SDKModule is the module path of the genpipe repository, which holds the SDK.
const SDKModule = "github.com/genpipe/genpipe"

//go:embed templates/*.tmpl
var templates embed.FS

// Options say what to generate and where.
type Options struct {
	// Name is the plugin's name: the host runs it as pipeline-plugin-NAME and
	// pipelines refer to it as model: NAME.
	Name string
	// Dir is the folder to create; it must not exist or be empty.
	Dir string
	// Module is the new module's path (default example.com/NAME).
	Module string
	// SDKDir is a clone of the genpipe repository, the target of the replace
	// directive. It is made absolute, so the module builds from anywhere.
	SDKDir string
}

// nameRE is the SDK's rule for plugin names (sdk.ValidateDescription)
// narrowed to start with a letter, because the name also makes the Go
// package name.
var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// reservedPkgs are package names that would clash with the imports of the
// generated files (main.go imports the plugin package next to sdk).
var reservedPkgs = map[string]bool{"main": true, "sdk": true, "sdktest": true, "testing": true}

// CheckName reports whether name can be a scaffolded plugin's name and
// returns the Go package name it makes ("my-tint" makes "mytint").
func CheckName(name string) (pkg string, err error) {
	if !nameRE.MatchString(name) || len(name) > 64 {
		return "", fmt.Errorf("plugin name %q: use lowercase letters, digits, '-' and '_', starting with a letter, at most 64 characters (the host runs it as pipeline-plugin-NAME and it names the Go package)", name)
	}
	pkg = strings.NewReplacer("-", "", "_", "").Replace(name)
	if token.IsKeyword(pkg) || reservedPkgs[pkg] {
		return "", fmt.Errorf("plugin name %q: it would make the Go package name %q, which is a keyword or clashes with the SDK's packages; choose another name", name, pkg)
	}
	return pkg, nil
}

// moduleRE is a conservative Go module path: slash-separated elements of
// letters, digits and ._~- (what `go mod init` accepts without quoting).
var moduleRE = regexp.MustCompile(`^[A-Za-z0-9_~-][A-Za-z0-9._~-]*(/[A-Za-z0-9._~-]+)*$`)

// CheckModule reports whether path can be the new module's path.
func CheckModule(path string) error {
	if !moduleRE.MatchString(path) || strings.Contains(path, "..") || strings.HasSuffix(path, ".") {
		return fmt.Errorf("module path %q: expected a Go module path such as example.com/NAME or github.com/you/NAME (slash-separated letters, digits and ._~-)", path)
	}
	if path == SDKModule || strings.HasPrefix(path, SDKModule+"/") {
		return fmt.Errorf("module path %q: it is inside the SDK's own module %s, which the new module requires; choose a path of your own", path, SDKModule)
	}
	return nil
}

// ReadModFile returns the module path and the go directive of the go.mod in
// dir. It reads only those two lines, so a go.mod that `go` would refuse for
// other reasons is not caught here.
func ReadModFile(dir string) (module, goVersion string, err error) {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		switch fields[0] {
		case "module":
			module = fields[1]
			if u, err := strconv.Unquote(module); err == nil {
				module = u
			}
		case "go":
			goVersion = fields[1]
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", err
	}
	return module, goVersion, nil
}

// FindClone walks up from dir to the nearest folder whose go.mod declares
// the SDK's module and returns it, or "" when there is none. A plain
// `go build` records no source folder in the binary, so where the command
// runs (or where its binary lies, as bin/pipeline in a clone) is the only
// evidence of which clone to use.
func FindClone(dir string) string {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for {
		if m, _, err := ReadModFile(dir); err == nil && m == SDKModule {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			return ""
		}
		dir = up
	}
}

// CheckSDK checks that dir is a clone of the genpipe repository with the SDK
// in it and returns its absolute path and the go version its go.mod
// requires (the new module needs at least that).
func CheckSDK(dir string) (abs, goVersion string, err error) {
	abs, err = filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	mod, goVersion, err := ReadModFile(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("%s is not a clone of %s: it has no go.mod", abs, SDKModule)
		}
		return "", "", err
	}
	if mod != SDKModule {
		return "", "", fmt.Errorf("%s is not a clone of %s: its go.mod declares module %q", filepath.Join(abs, "go.mod"), SDKModule, mod)
	}
	if fi, err := os.Stat(filepath.Join(abs, "sdk", "serve.go")); err != nil || fi.IsDir() {
		return "", "", fmt.Errorf("%s has the module's go.mod but no sdk/serve.go; is the clone complete?", abs)
	}
	if goVersion == "" {
		return "", "", fmt.Errorf("%s has no go directive", filepath.Join(abs, "go.mod"))
	}
	return abs, goVersion, nil
}

// CheckDir refuses a Dir that holds anything: the scaffold never writes
// over a user's files. The error names one entry that is in the way.
func CheckDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		if fi, serr := os.Stat(dir); serr == nil && !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a folder; give a folder that does not exist yet or is empty", dir)
		}
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty (%s is in the way); give a folder that does not exist yet or is empty, nothing was written", dir, filepath.Join(dir, ents[0].Name()))
	}
	return nil
}

// file is one generated file: its template and its path in the new module.
type file struct {
	tmpl, path string
}

// files returns what Generate writes, in the order it lists them.
func files(name, pkg string) []file {
	cmd := filepath.Join("cmd", "pipeline-plugin-"+name)
	return []file{
		{"go.mod.tmpl", "go.mod"},
		{"README.md.tmpl", "README.md"},
		{"plugin.go.tmpl", pkg + ".go"},
		{"plugin_test.go.tmpl", pkg + "_test.go"},
		{"main.go.tmpl", filepath.Join(cmd, "main.go")},
		{"main_test.go.tmpl", filepath.Join(cmd, "main_test.go")},
		{"example.yaml.tmpl", "example.yaml"},
		{"gitignore.tmpl", ".gitignore"},
	}
}

// data is what the templates see.
type data struct {
	Name, Pkg, Module string
	// Alias is set when the import path's last element is not the package
	// name, so main.go names the import explicitly.
	Alias bool
	// SDKDir is the clone, quoted for go.mod when it needs it; SDKDirShell
	// is the same quoted for a shell command line.
	SDKDir, SDKDirShell, GoVersion string
}

// Generate checks opts and writes the module into opts.Dir (creating it),
// returning the paths written, relative to Dir. It checks everything before
// it writes anything, and creates each file exclusively, so it never
// replaces a file that exists.
func Generate(opts Options) ([]string, error) {
	pkg, err := CheckName(opts.Name)
	if err != nil {
		return nil, err
	}
	if opts.Module == "" {
		opts.Module = "example.com/" + opts.Name
	}
	if err := CheckModule(opts.Module); err != nil {
		return nil, err
	}
	if opts.SDKDir == "" {
		return nil, errors.New("no SDK folder: give a clone of " + SDKModule)
	}
	sdkDir, goVersion, err := CheckSDK(opts.SDKDir)
	if err != nil {
		return nil, err
	}
	if err := CheckDir(opts.Dir); err != nil {
		return nil, err
	}
	d := data{
		Name: opts.Name, Pkg: pkg, Module: opts.Module,
		Alias:     pathBase(opts.Module) != pkg,
		SDKDir:    modQuote(sdkDir),
		GoVersion: goVersion,
	}
	d.SDKDirShell = ShellQuote(sdkDir)
	fl := files(opts.Name, pkg)
	// Render everything first: a template error leaves no half-made module.
	out := make([][]byte, len(fl))
	for i, f := range fl {
		b, err := render(f, d)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	var written []string
	for i, f := range fl {
		p := filepath.Join(opts.Dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, err
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return written, err
		}
		_, err = w.Write(out[i])
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

// render executes one template; Go files come out gofmt-formatted, which
// also proves they parse. The templates use « » as delimiters: Go's
// composite literals ([]T{{...}}) are full of the default ones.
func render(f file, d data) ([]byte, error) {
	t, err := template.New(f.tmpl).Delims("«", "»").Option("missingkey=error").ParseFS(templates, "templates/"+f.tmpl)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", f.tmpl, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("template %s: %w", f.tmpl, err)
	}
	if strings.HasSuffix(f.path, ".go") {
		b, err := format.Source(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("template %s made invalid Go: %w", f.tmpl, err)
		}
		return b, nil
	}
	return buf.Bytes(), nil
}

func pathBase(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// modQuote quotes a go.mod path when it holds characters go.mod's syntax
// would split or misread.
func modQuote(s string) string {
	if strings.ContainsAny(s, " \t\"'`\\") {
		return strconv.Quote(s)
	}
	return s
}

// ShellQuote quotes s for a POSIX shell when it needs it, so printed
// commands can be pasted.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./~+=:@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
