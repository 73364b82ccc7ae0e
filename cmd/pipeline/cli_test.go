package main

// Tests of the command-line conventions: every command has examples, and
// every example is a command line that works. The argument errors, usage,
// --version and completion are tested as typed, in
// testdata/script/cli.txtar and completion.txtar.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
)

// visibleCommands returns every command a user is shown: not hidden, and
// cobra's help command, which is not "available" to cobra but is listed.
func visibleCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() || sub.Name() == "help" {
			out = append(out, visibleCommands(sub)...)
		}
	}
	return out
}

func TestEveryCommandHasExamples(t *testing.T) {
	n := 0
	for _, c := range visibleCommands(newRootCmd()) {
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
			continue
		}
		// kubectl's layout: two spaces of indent, comments as "# ".
		for _, l := range strings.Split(c.Example, "\n") {
			if l != "" && !strings.HasPrefix(l, "  ") {
				t.Errorf("%q: example line %q is not indented by two spaces", c.CommandPath(), l)
			}
		}
	}
	// The tree this walks: pipeline, run, train, validate, plugins (list,
	// describe), schema, version, docs, completion (bash, zsh, fish,
	// powershell), help.
	if n < 15 {
		t.Errorf("walked %d commands; the walk misses some", n)
	}
}

// exampleLine is one command line of pipeline in an Example.
type exampleLine struct {
	owner *cobra.Command // the command whose Example it is
	text  string         // the line as written
	env   []string       // VAR=VALUE words before pipeline
	args  []string       // the words after pipeline, up to a shell operator
}

// exampleLines returns the pipeline command lines of every visible
// command's Example. Every line that is not a comment must run pipeline
// (directly, after VAR=VALUE words, or in source <(...)).
func exampleLines(t *testing.T, root *cobra.Command) []exampleLine {
	t.Helper()
	var out []exampleLine
	for _, c := range visibleCommands(root) {
		for _, l := range strings.Split(c.Example, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			words := strings.Fields(strings.NewReplacer("<(", "<( ", ")", " )").Replace(l))
			e := exampleLine{owner: c, text: l}
			i := 0
			for ; i < len(words) && words[i] != "pipeline"; i++ {
				if k, _, ok := strings.Cut(words[i], "="); ok && k == strings.ToUpper(k) {
					e.env = append(e.env, words[i])
				}
			}
			if i == len(words) {
				t.Errorf("%q: example line %q does not run pipeline", c.CommandPath(), l)
				continue
			}
			for _, w := range words[i+1:] {
				if slices.Contains([]string{"|", ">", ")", "&&", ";"}, w) {
					break
				}
				if strings.ContainsAny(w, `"'$`) {
					t.Errorf("%q: example line %q: this test does not parse quotes or variables in pipeline's arguments", c.CommandPath(), l)
				}
				e.args = append(e.args, w)
			}
			out = append(out, e)
		}
	}
	return out
}

// TestExamplesParse checks that each example line names a command that
// exists, with flags that exist and a valid number of arguments, as cobra
// would parse it, and that each command's examples show the command.
func TestExamplesParse(t *testing.T) {
	root := newRootCmd()
	lines := exampleLines(t, root)
	shows := map[*cobra.Command]bool{}
	for _, e := range lines {
		// A fresh tree per line: parsing sets flags.
		c, rest, err := newRootCmd().Find(e.args)
		if err == nil {
			err = c.ParseFlags(rest)
		}
		if err == nil && c.HasSubCommands() && len(c.Flags().Args()) > 0 {
			err = unknownCommand(c, c.Flags().Args()[0])
		}
		if err == nil {
			err = c.ValidateArgs(c.Flags().Args())
		}
		if err != nil {
			t.Errorf("%q: example %q does not parse: %v", e.owner.CommandPath(), e.text, err)
			continue
		}
		if c.CommandPath() == e.owner.CommandPath() {
			shows[e.owner] = true
		}
	}
	for _, c := range visibleCommands(root) {
		// A group's examples show its subcommands.
		if !c.HasSubCommands() && !shows[c] {
			t.Errorf("%q: no example runs %q itself", c.CommandPath(), c.CommandPath())
		}
	}
}

// TestExamplesWork runs the example lines that only read and print
// (validate, plugins, schema, docs, version, help, completion) in a
// folder laid out like the repository after the README's build command
// (examples/, bin/pipeline-plugin-edges); of a run or train example it
// validates the file with the example's --set flags, as the command would
// first. They must exit 0, except for examples/invalid.yaml, which must
// exit 1.
func TestExamplesWork(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugins for every example; -short")
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(repoRoot, "examples"), filepath.Join(dir, "examples")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(edgesPlugin, filepath.Join(dir, "bin", "pipeline-plugin-edges")); err != nil {
		t.Fatal(err)
	}
	mark := newMark(t.Name())
	t.Cleanup(func() { killStray(mark) })
	ran := map[string]bool{}
	// Each line starts a process or two; a few at a time halves the time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, e := range exampleLines(t, newRootCmd()) {
		c, rest, err := newRootCmd().Find(e.args)
		if err != nil || c.ParseFlags(rest) != nil {
			continue // TestExamplesParse reports it
		}
		args := e.args
		if c.Name() == "new" {
			// It writes a module outside the working folder (../tint);
			// TestPluginsNewBuilds runs it for real, in a folder of its own.
			continue
		}
		if c.Name() == "worker" || c.Name() == "status" {
			// They talk to a NATS server by its cluster name; the
			// TestQueue* tests run both against a real one.
			continue
		}
		switch c.Name() {
		case "run", "train":
			// Only --set changes what the file means to validate.
			sets, _ := c.Flags().GetStringArray("set")
			args = []string{"validate"}
			for _, s := range sets {
				args = append(args, "--set", s)
			}
			args = append(args, c.Flags().Args()...)
		}
		key := strings.Join(append(slices.Clone(e.env), args...), " ")
		if ran[key] {
			continue
		}
		ran[key] = true
		want := 0
		if slices.Contains(args, "examples/invalid.yaml") {
			want = 1
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cmd := exec.Command(pipelineExe(t), args...)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), markEnv+"="+mark, "XDG_DATA_HOME="+filepath.Join(dir, "xdg"))
			cmd.Env = append(cmd.Env, e.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			got := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				got = ee.ExitCode()
			} else if err != nil {
				t.Errorf("%s: %v", key, err)
				return
			}
			if got != want {
				t.Errorf("%q: example %q: `pipeline %s` exited %d, want %d:\n%s", e.owner.CommandPath(), e.text, key, got, want, stderr.String())
			}
		}()
	}
	wg.Wait()
	if len(ran) < 10 {
		t.Errorf("ran %d example command lines; the examples lost most of theirs", len(ran))
	}
}
