package main

// TestREADME keeps every output README.md shows true: each ```console block
// is run as a user of a fresh clone runs it, and what it prints must be what
// the block shows. The README is a promise to people reading it before they
// have built anything, so it is tested with the real binaries built the way
// its set-up section builds them, in a working copy that starts as a clone
// does (no outputs, no installed plugins).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBuild is the README's set-up build command, run from the repository
// root with its -o folder replaced by a temporary one: the test runs the
// binaries a reader's first command makes.
var readmeBuild = []string{"build", "-o", "BIN/", "./cmd/pipeline", "./examples/edges/cmd/pipeline-plugin-edges"}

// readmeCopied are the folders of the repository a console block may read;
// each block gets its own copy of them, so what one block writes (e.g.
// examples/out) is neither in the repository nor seen by the next block.
var readmeCopied = []string{"examples"}

// readmeIgnored are the generated folders under readmeCopied that a fresh
// clone does not have (.gitignore lists them): outputs of earlier runs.
func readmeIgnored(rel string) bool {
	return filepath.Base(rel) == "out" || rel == filepath.Join("examples", "train", "weights")
}

// readmeMasks are the only parts of an output allowed to differ from what the
// README shows, one regexp per kind of legitimately varying text; each match
// is replaced by <kind> on both sides before comparing. They are anchored on
// word boundaries and units so a changed count, name or size still fails.
var readmeMasks = []struct {
	kind string
	re   *regexp.Regexp
}{
	// How long something took: run's summary ("in 140ms", "in 1.2s", Go's
	// time.Duration form "1m2.5s"); it depends on the machine and its load.
	{"duration", regexp.MustCompile(`\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?(?:ns|µs|us|ms|s)\b`)},
	// The Go release the reader built with (`pipeline version` prints it).
	{"go version", regexp.MustCompile(`\bgo1\.\d+(?:\.\d+)?(?:(?:rc|beta)\d+)?\b`)},
	// The reader's GOOS/GOARCH (`pipeline version` prints it).
	{"platform", regexp.MustCompile(`\b(?:linux|darwin|windows|freebsd|openbsd|netbsd|dragonfly|solaris|illumos|aix)/(?:amd64|arm64|386|arm|riscv64|ppc64|ppc64le|s390x|loong64|mips64|mips64le|wasm)\b`)},
}

// readmeMask replaces what legitimately varies in s by its kind. Trailing
// blanks are dropped from each line: a README cannot show them and editors
// strip them.
func readmeMask(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	s = strings.Join(lines, "\n")
	for _, m := range readmeMasks {
		s = m.re.ReplaceAllString(s, "<"+m.kind+">")
	}
	return s
}

// readmeMarkerRE is the one marker a console block may carry, on the lines
// just before its fence: skip excludes it always, long only with -short. The
// reason is required and is logged.
var readmeMarkerRE = regexp.MustCompile(`^<!-- readme-test: (skip|long) \((\S.*)\) -->$`)

// readmeFenceRE is a fenced code block's opening or closing line.
var readmeFenceRE = regexp.MustCompile("^( *)(```+)\\s*([^`\\s]*)")

// readmeCmd is one `$ ` command of a console block and the output shown
// under it.
type readmeCmd struct {
	line int      // README line of its `$ `
	src  []string // the command as shown, continuation lines included
	out  []string // the output shown
}

// text is the command for sh: the `$ ` removed, continuation lines kept
// (sh joins a backslash-newline).
func (c readmeCmd) text() string {
	return strings.TrimPrefix(strings.Join(c.src, "\n"), "$ ")
}

// shown is the output as the README shows it.
func (c readmeCmd) shown() string {
	if len(c.out) == 0 {
		return ""
	}
	return strings.Join(c.out, "\n") + "\n"
}

// readmeBlock is a ```console block of the README.
type readmeBlock struct {
	line       int    // README line of the opening fence
	indent     string // the fence's indentation, stripped from its lines
	start, end int    // its content, lines[start:end] (0-based)
	skip, long string // the marker's reason, if any
	cmds       []readmeCmd
	newContent []string // with -update: the block's content with real outputs
}

// parseReadme finds the console blocks of a README and their markers. A
// malformed or stray marker is an error, so a typo cannot silently turn the
// test of a block off.
func parseReadme(name string, lines []string) ([]readmeBlock, error) {
	var blocks []readmeBlock
	var errs []error
	type marker struct {
		line         int
		kind, reason string
	}
	var pending *marker
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "<!-- readme-test:") {
			m := readmeMarkerRE.FindStringSubmatch(trimmed)
			switch {
			case m == nil:
				errs = append(errs, fmt.Errorf("%s:%d: malformed marker %q: want <!-- readme-test: skip (REASON) --> or <!-- readme-test: long (REASON) -->", name, i+1, trimmed))
			case pending != nil:
				errs = append(errs, fmt.Errorf("%s:%d: a second marker; the one at line %d already applies to the next block", name, i+1, pending.line))
			default:
				pending = &marker{i + 1, m[1], m[2]}
			}
			continue
		}
		f := readmeFenceRE.FindStringSubmatch(l)
		if f == nil {
			if trimmed != "" && pending != nil {
				errs = append(errs, fmt.Errorf("%s:%d: the marker is not followed by a ```console block", name, pending.line))
				pending = nil
			}
			continue
		}
		indent, fence, info := f[1], f[2], f[3]
		end := -1
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == fence {
				end = j
				break
			}
		}
		if end < 0 {
			errs = append(errs, fmt.Errorf("%s:%d: the %s block is never closed", name, i+1, fence))
			break
		}
		if info != "console" {
			if pending != nil {
				errs = append(errs, fmt.Errorf("%s:%d: the marker is before a ```%s block; only console blocks are run", name, pending.line, info))
				pending = nil
			}
			i = end
			continue
		}
		b := readmeBlock{line: i + 1, indent: indent, start: i + 1, end: end}
		if pending != nil {
			if pending.kind == "skip" {
				b.skip = pending.reason
			} else {
				b.long = pending.reason
			}
			pending = nil
		}
		continuing := false
		for j := b.start; j < end; j++ {
			c := strings.TrimPrefix(lines[j], indent)
			switch {
			case continuing:
				last := &b.cmds[len(b.cmds)-1]
				last.src = append(last.src, c)
			case strings.HasPrefix(c, "$ "):
				b.cmds = append(b.cmds, readmeCmd{line: j + 1, src: []string{c}})
			case len(b.cmds) == 0:
				errs = append(errs, fmt.Errorf("%s:%d: output before the block's first `$ ` command", name, j+1))
				continue
			default:
				last := &b.cmds[len(b.cmds)-1]
				last.out = append(last.out, c)
				continue
			}
			continuing = strings.HasSuffix(c, `\`)
		}
		if len(b.cmds) == 0 {
			errs = append(errs, fmt.Errorf("%s:%d: a console block without a `$ ` command", name, b.line))
		}
		blocks = append(blocks, b)
		i = end
	}
	if pending != nil {
		errs = append(errs, fmt.Errorf("%s:%d: the marker is not followed by a ```console block", name, pending.line))
	}
	return blocks, errors.Join(errs...)
}

// TestREADME runs every ```console block of README.md and compares what each
// `$ ` command prints (stdout and stderr interleaved, as on a terminal) with
// the lines the block shows under it, after readmeMasks. The commands of a
// block run in order in one working copy (a rerun may depend on the run
// before it); each block starts afresh: a new copy of readmeCopied, the
// binaries in bin/ as the set-up command builds them, an empty home folder,
// no plugin or genpipe variables set. Commands run with sh in the copy's
// root, as a reader types them. Their exit status is logged, not compared:
// the README does not show it.
//
// A block preceded by <!-- readme-test: skip (REASON) --> is not run, nor
// with -short one preceded by <!-- readme-test: long (REASON) -->; the log
// lists them. After an output change,
//
//	go test ./cmd/pipeline -run TestREADME -update
//
// rewrites the shown output of every command that differs, leaving the rest
// of the README alone; a line that matches but for its masks keeps its
// shown text (durations), so the rewrite changes only what changed.
func TestREADME(t *testing.T) {
	// Most of the time is the build; let it overlap the other tests.
	t.Parallel()
	readmePath := filepath.Join(repoRoot, "README.md")
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	blocks, err := parseReadme("README.md", lines)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) == 0 {
		t.Fatal("README.md has no ```console block; this test would check nothing")
	}

	tmp := t.TempDir()
	bin := filepath.Join(tmp, "build", "bin")
	start := time.Now()
	if err := buildReadmeBinaries(bin); err != nil {
		t.Fatalf("the README's build command: %v", err)
	}
	t.Logf("built %s in %.1fs", strings.Join(readmeBuild[3:], " "), time.Since(start).Seconds())

	changed := false
	var skipped []string
	ran, cmds := 0, 0
	for n, b := range blocks {
		reason := b.skip
		if reason == "" && b.long != "" && testing.Short() {
			reason = b.long + " (long; -short)"
		}
		if reason != "" {
			skipped = append(skipped, fmt.Sprintf("README.md:%d: %s", b.line, reason))
			continue
		}
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			got := runReadmeBlock(t, filepath.Join(tmp, fmt.Sprintf("block%d", n)), bin, b)
			if len(got) != len(b.cmds) {
				return // runReadmeBlock failed the test
			}
			ran++
			cmds += len(b.cmds)
			var content []string
			for i, c := range b.cmds {
				content = append(content, c.src...)
				if readmeMask(got[i]) == readmeMask(c.shown()) {
					content = append(content, c.out...)
					continue
				}
				if !*update {
					t.Errorf("README.md:%d: `%s` prints other than the README shows (-update rewrites it):\n%s", c.line, c.text(), lineDiff(readmeMask(c.shown()), readmeMask(got[i])))
					continue
				}
				t.Logf("README.md:%d: rewriting the output of `%s`", c.line, c.text())
				out := strings.Split(strings.TrimSuffix(got[i], "\n"), "\n")
				if got[i] == "" {
					out = nil
				}
				for j, l := range out {
					// A line equal but for its masks keeps the shown
					// text: no churn of durations in the README.
					if j < len(c.out) && readmeMask(l) == readmeMask(c.out[j]) {
						l = c.out[j]
					}
					content = append(content, strings.TrimRight(l, " \t"))
				}
				changed = true
			}
			if *update {
				for i, l := range content {
					if l != "" {
						content[i] = b.indent + l
					}
				}
				blocks[n].newContent = content
			}
		})
	}
	for _, s := range skipped {
		t.Logf("skipped %s", s)
	}
	t.Logf("ran %d console block(s), %d command(s), skipped %d, in %.1fs", ran, cmds, len(skipped), time.Since(start).Seconds())
	if *update && changed {
		// Blocks are replaced from the last to the first so the line
		// numbers of the earlier ones stay valid.
		for i := len(blocks) - 1; i >= 0; i-- {
			b := blocks[i]
			if b.newContent == nil {
				continue
			}
			lines = slices.Concat(lines[:b.start], b.newContent, lines[b.end:])
		}
		if err := os.WriteFile(readmePath, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote README.md")
	}
}

// buildReadmeBinaries runs readmeBuild in the repository root with the
// binaries going to bin. GOWORK is dropped from the environment: a reader's
// build of the example plugin from the root relies on the repository's
// go.work.
func buildReadmeBinaries(bin string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	args := append([]string(nil), readmeBuild...)
	args[2] = bin + string(filepath.Separator)
	cmd := exec.Command(goBin, args...)
	cmd.Dir = repoRoot
	cmd.Env = readmeEnv(os.Environ(), "GOWORK")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return nil
}

// readmeEnv returns env without the variables named in drop, nor any that
// configure pipeline (PIPELINE_*, GENPIPE_*) or point at a data folder
// (XDG_DATA_HOME): a fresh clone's reader has none of them.
func readmeEnv(env []string, drop ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PIPELINE_") || strings.HasPrefix(k, "GENPIPE_") || k == "XDG_DATA_HOME" {
			continue
		}
		dropped := false
		for _, d := range drop {
			dropped = dropped || k == d
		}
		if !dropped {
			out = append(out, kv)
		}
	}
	return out
}

// runReadmeBlock lays out a fresh working copy in dir and runs the block's
// commands in it, in order. It returns each command's output, or fewer
// outputs after failing t.
func runReadmeBlock(t *testing.T, dir, bin string, b readmeBlock) []string {
	root, home := filepath.Join(dir, "clone"), filepath.Join(dir, "home")
	for _, d := range readmeCopied {
		if err := copyClone(filepath.Join(repoRoot, d), filepath.Join(root, d), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := linkDir(bin, filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	mark := newMark(t.Name())
	t.Cleanup(func() { killStray(mark) })
	env := append(readmeEnv(os.Environ(), "HOME", "PWD", "OLDPWD"), "HOME="+home, markEnv+"="+mark)

	var outs []string
	for _, c := range b.cmds {
		start := time.Now()
		out, code, err := runReadmeCmd(root, env, c.text())
		if err != nil {
			t.Errorf("README.md:%d: `%s`: %v\n%s", c.line, c.text(), err, out)
			return outs
		}
		t.Logf("README.md:%d: `%s`: exit %d in %.2fs", c.line, c.text(), code, time.Since(start).Seconds())
		// sh's own statuses: the command is missing from the working copy
		// (a block needing more than readmeCopied and bin/), never an
		// output to show, nor for -update to write.
		if code == 126 || code == 127 {
			t.Errorf("README.md:%d: `%s`: sh could not run it (exit %d) in a fresh clone's working copy (bin/ and %s):\n%s", c.line, c.text(), code, strings.Join(readmeCopied, ", "), out)
			return outs
		}
		// The README must show what any reader sees: a path of this
		// machine (the working copy, its home, the repository) in an
		// output means a command printed an absolute path where it
		// should print a relative one (see displayPath).
		for _, p := range []string{dir, repoRoot} {
			if strings.Contains(out, p) {
				t.Errorf("README.md:%d: `%s` prints a path of this machine (%s); the README must show what a fresh clone prints: print paths relative to the working folder or ~\n%s", c.line, c.text(), p, out)
				return outs
			}
		}
		outs = append(outs, out)
	}
	return outs
}

// runReadmeCmd runs one command line with sh in dir and returns its stdout
// and stderr interleaved (one pipe, as a terminal shows them) and its exit
// status. A command still running after two minutes is killed with its
// children.
func runReadmeCmd(dir string, env []string, line string) (string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String(), -1, fmt.Errorf("still running after 2 minutes: killed")
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode(), nil
	}
	if err != nil {
		return out.String(), -1, err
	}
	return out.String(), 0, nil
}

// copyClone copies the folder src (rel in the repository) to dst, without
// what readmeIgnored says a clone lacks.
func copyClone(src, dst, rel string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if d.IsDir() && readmeIgnored(filepath.Join(rel, r)) {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, r)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

// linkDir puts the files of src into a new folder dst as hard links (copies
// across file systems). Not symlinks: pipeline finds its built-ins through
// its own executable's resolved path, which must be dst's bin/pipeline for
// the output to show bin/pipeline.
func linkDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		if os.Link(from, to) != nil {
			if err := copyFile(from, to); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyFile copies a file with its permission bits.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestREADMEMask checks that the masks hide only what varies between
// machines and runs: a count, a name or a size that changes still shows.
func TestREADMEMask(t *testing.T) {
	for _, c := range []struct {
		shown, got string
		same       bool
	}{
		{"x: wrote 9 outputs in 140ms", "x: wrote 9 outputs in 1.204s", true},
		{"done in 1m2.5s", "done in 950µs", true},
		{"pipeline dev (plugin protocol 1, go1.26.8, linux/amd64)", "pipeline dev (plugin protocol 1, go1.27rc1, darwin/arm64)", true},
		{"row  \nnext", "row\nnext", true}, // trailing blanks
		{"x: wrote 9 outputs in 140ms", "x: wrote 8 outputs in 140ms", false},
		{"pipeline: examples/invalid.yaml: 8 problem(s)", "pipeline: examples/invalid.yaml: 9 problem(s)", false},
		{"fill: 256x256", "fill: 256x255", false},
		{"radius 3s", "radius 3", false},  // a unit is part of the duration
		{"step x12s", "step x13s", false}, // no duration inside a word
		{"pipeline dev (plugin protocol 1, go1.26.8, linux/amd64)", "pipeline dev (plugin protocol 2, go1.26.8, linux/amd64)", false},
		{"search path: bin, ~/.local/share/genpipe/plugins", "search path: /tmp/x/bin, ~/.local/share/genpipe/plugins", false},
		{"a\n\nb", "a\nb", false}, // blank lines are output too
	} {
		if same := readmeMask(c.shown) == readmeMask(c.got); same != c.same {
			t.Errorf("shown %q, printed %q: equal after masking = %v, want %v (%q, %q)", c.shown, c.got, same, c.same, readmeMask(c.shown), readmeMask(c.got))
		}
	}
}

// TestREADMEParse checks how console blocks, their commands and markers are
// read, and that a marker that would not apply is an error rather than a
// block silently left untested.
func TestREADMEParse(t *testing.T) {
	doc := strings.Join([]string{
		"# title",
		"```console",
		"$ a --x \\",
		"  --y",
		"out 1",
		"",
		"out 2",
		"$ b",
		"```",
		"```sh",
		"$ not run",
		"```",
		"<!-- readme-test: skip (needs a GPU) -->",
		"",
		"```console",
		"$ c",
		"```",
		"1. a list",
		"   ```console",
		"   $ d",
		"   d out",
		"   ```",
	}, "\n")
	blocks, err := parseReadme("R.md", strings.Split(doc, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 {
		t.Fatalf("%d blocks, want 3: %+v", len(blocks), blocks)
	}
	b := blocks[0]
	if b.line != 2 || len(b.cmds) != 2 || b.skip != "" {
		t.Fatalf("first block: %+v", b)
	}
	if got := b.cmds[0].text(); got != "a --x \\\n  --y" {
		t.Errorf("continued command: %q", got)
	}
	if got := b.cmds[0].shown(); got != "out 1\n\nout 2\n" {
		t.Errorf("its output: %q", got)
	}
	if b.cmds[1].text() != "b" || b.cmds[1].shown() != "" || b.cmds[1].line != 8 {
		t.Errorf("second command: %+v", b.cmds[1])
	}
	if blocks[1].skip != "needs a GPU" || blocks[1].cmds[0].text() != "c" {
		t.Errorf("skipped block: %+v", blocks[1])
	}
	if c := blocks[2].cmds[0]; blocks[2].indent != "   " || c.text() != "d" || c.shown() != "d out\n" {
		t.Errorf("indented block: %+v", blocks[2])
	}

	for _, c := range []struct{ doc, err string }{
		{"<!-- readme-test: skip -->\n```console\n$ a\n```", "R.md:1: malformed marker"},
		{"<!-- readme-test: skip () -->\n```console\n$ a\n```", "R.md:1: malformed marker"},
		{"<!-- readme-test: ignore (x) -->\n```console\n$ a\n```", "R.md:1: malformed marker"},
		{"<!-- readme-test: skip (slow) -->\ntext\n```console\n$ a\n```", "R.md:1: the marker is not followed by a ```console block"},
		{"<!-- readme-test: skip (slow) -->\n```sh\n$ a\n```", "R.md:1: the marker is before a ```sh block"},
		{"```console\n$ a\n```\n<!-- readme-test: long (slow) -->", "R.md:4: the marker is not followed"},
		{"<!-- readme-test: skip (a) -->\n<!-- readme-test: skip (b) -->\n```console\n$ a\n```", "R.md:2: a second marker"},
		{"```console\nout\n$ a\n```", "R.md:2: output before the block's first `$ ` command"},
		{"```console\n```", "R.md:1: a console block without a `$ ` command"},
		{"```console\n$ a\n", "R.md:1: the ``` block is never closed"},
	} {
		_, err := parseReadme("R.md", strings.Split(c.doc, "\n"))
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want one containing %q", c.doc, err, c.err)
		}
	}
}

// TestDisplayPathSymlinks checks that listings show bin/pipeline, not this
// machine's path, when the working folder or the home folder is reached
// through a symlink: the shell's $PWD keeps the link while the built-ins'
// location is the executable's resolved path.
func TestDisplayPathSymlinks(t *testing.T) {
	tmp, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	real := filepath.Join(tmp, "real")
	for _, d := range []string{"clone/bin", "home/.local/share/genpipe/plugins"} {
		if err := os.MkdirAll(filepath.Join(real, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"clone", "home"} {
		if err := os.Symlink(filepath.Join(real, d), filepath.Join(tmp, d)); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(filepath.Join(tmp, "clone")) // sets $PWD to the link, as a shell does
	t.Setenv("HOME", filepath.Join(tmp, "home"))
	for _, c := range []struct{ path, want string }{
		{filepath.Join(real, "clone", "bin", "pipeline"), "bin/pipeline"},                          // resolved (os.Executable)
		{filepath.Join(tmp, "clone", "bin", "pipeline-plugin-edges"), "bin/pipeline-plugin-edges"}, // through the link
		{filepath.Join(real, "home", ".local", "share", "genpipe", "plugins"), "~/.local/share/genpipe/plugins"},
		{filepath.Join(tmp, "home", ".local", "share", "genpipe", "plugins"), "~/.local/share/genpipe/plugins"},
		{filepath.Join(real, "elsewhere"), filepath.Join(real, "elsewhere")}, // outside both: as it is
	} {
		if got := displayPath(c.path); got != c.want {
			t.Errorf("displayPath(%s) = %s, want %s", c.path, got, c.want)
		}
	}
}

// TestREADMERunCmd checks how a shown command is run: stdout and stderr
// interleaved in the order written, as a terminal shows them, the exit
// status reported rather than failing, and a line continuation joined.
func TestREADMERunCmd(t *testing.T) {
	dir := t.TempDir()
	out, code, err := runReadmeCmd(dir, os.Environ(), "echo a; echo b >&2; echo c; exit 3")
	if err != nil || code != 3 || out != "a\nb\nc\n" {
		t.Errorf("got %q, exit %d, %v; want \"a\\nb\\nc\\n\", exit 3, no error", out, code, err)
	}
	cmd := readmeCmd{src: []string{`$ echo one \`, "  two"}}
	out, code, err = runReadmeCmd(dir, os.Environ(), cmd.text())
	if err != nil || code != 0 || out != "one two\n" {
		t.Errorf("continued command: got %q, exit %d, %v", out, code, err)
	}
	if _, code, _ := runReadmeCmd(dir, os.Environ(), "bin/no-such-command"); code != 127 {
		t.Errorf("a missing command exits %d, want 127 (TestREADME reports it)", code)
	}
}
