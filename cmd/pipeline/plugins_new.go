package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/genpipe/genpipe/internal/scaffold"
	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/spf13/cobra"
)

// newPluginsNewCmd is `pipeline plugins new`, the documented form: the
// visible plugins group is where everything about plugins lives (help,
// completion), kubectl-style noun then verb. The hidden `plugin` command
// gets the same command so that `pipeline plugin new`, the wording,
// works too.
func newPluginsNewCmd() *cobra.Command {
	var module, sdkDir string
	cmd := &cobra.Command{
		Use:   "new NAME DIR",
		Short: "Create a plugin module in DIR: go.mod wired to the SDK, one capability, its conformance test",
		Long: `new writes a Go module for a new plugin into DIR, which must not exist or be
empty: go.mod (requiring the SDK, replaced by a clone of this repository,
since the SDK has no published release yet), a plugin with one capability
(translate: it inverts images, with one parameter), its conformance test with
sdk/sdktest, an example pipeline and a README. As generated it builds, passes
its tests and runs in a pipeline; replace the operation with your model.

--sdk is the clone the module builds against. Without it, new looks for the
clone from the working folder upwards, then from where the pipeline binary
lies (bin/pipeline in a clone), and asks for --sdk when it finds none.`,
		Example: `  # From a clone of genpipe: a plugin module next to it; then, in ../tint,
  # go mod tidy && go test ./... && go build -o bin/ ./cmd/pipeline-plugin-tint
  pipeline plugins new tint ../tint --module github.com/you/tint

  # From anywhere, naming the clone
  pipeline plugins new tint ~/src/tint --sdk ~/src/genpipe`,
		Args: cobra.ExactArgs(2),
		// NAME is the user's to invent; DIR and --sdk are folders.
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return nil, cobra.ShellCompDirectiveFilterDirs
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPluginsNew(cmd, args[0], args[1], module, sdkDir)
		},
	}
	cmd.Flags().StringVar(&module, "module", "", "Go module path of the new module (default example.com/NAME)")
	cmd.Flags().StringVar(&sdkDir, "sdk", "", "a clone of github.com/genpipe/genpipe to build against (default: the clone around the working folder or the pipeline binary)")
	_ = cmd.MarkFlagDirname("sdk")
	return cmd
}

func runPluginsNew(cmd *cobra.Command, name, dir, module, sdkDir string) error {
	fail := func(err error) error {
		return &exitError{exitInvalid, fmt.Errorf("plugins new: %w", err)}
	}
	// Check the cheap arguments first, so a typo in NAME is reported
	// before anything about the clone.
	if _, err := scaffold.CheckName(name); err != nil {
		return fail(err)
	}
	if module != "" {
		if err := scaffold.CheckModule(module); err != nil {
			return fail(fmt.Errorf("--module: %w", err))
		}
	}
	if err := scaffold.CheckDir(dir); err != nil {
		return fail(err)
	}
	flagged := sdkDir != ""
	if !flagged {
		sdkDir = findClone()
		if sdkDir == "" {
			return fail(fmt.Errorf("no clone of %s found around the working folder or the pipeline binary; "+
				"the SDK is not published yet, so the new module builds against a clone: pass --sdk DIR "+
				"(git clone the repository first if you have none)", scaffold.SDKModule))
		}
	}
	sdkAbs, _, err := scaffold.CheckSDK(sdkDir)
	if err != nil {
		if flagged {
			err = fmt.Errorf("--sdk: %w", err)
		}
		return fail(err)
	}
	if module == "" {
		module = "example.com/" + name
	}
	written, err := scaffold.Generate(scaffold.Options{Name: name, Dir: dir, Module: module, SDKDir: sdkAbs})
	if err != nil {
		return fail(err)
	}

	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "created plugin %q in %s (module %s, SDK from %s):\n", name, dir, module, sdkAbs)
	for _, f := range written {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if _, ok := pluginhost.Builtin(name); ok {
		fmt.Fprintf(cmd.ErrOrStderr(), "note: %q is also a built-in plugin; where the host finds this one it overrides the built-in\n", name)
	}
	if dirAbs, err := filepath.Abs(dir); err == nil {
		if rel, err := filepath.Rel(sdkAbs, dirAbs); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			if _, err := os.Stat(filepath.Join(sdkAbs, "go.work")); err == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s is inside the clone, whose go.work does not list it: run go commands there with GOWORK=off, or add it with go work use\n", dir)
			}
		}
	}
	q := scaffold.ShellQuote
	fmt.Fprintf(w, "\nnext:\n")
	fmt.Fprintf(w, "  cd %s\n", q(dir))
	fmt.Fprintf(w, "  go mod tidy                # fills go.sum and the SDK's dependencies\n")
	fmt.Fprintf(w, "  go test ./...              # includes the conformance kit against the built plugin\n")
	fmt.Fprintf(w, "  go build -o bin/ ./cmd/pipeline-plugin-%s\n", name)
	fmt.Fprintf(w, "  mkdir -p images && cp %s/examples/data/photos/people/* images/\n", q(sdkAbs))
	fmt.Fprintf(w, "  pipeline run example.yaml  # writes out/; README.md says how to get pipeline and what changes once the SDK is published\n")
	return nil
}

// findClone is the default of --sdk: the clone around the working folder,
// else the one around the running binary.
func findClone() string {
	if wd, err := os.Getwd(); err == nil {
		if d := scaffold.FindClone(wd); d != "" {
			return d
		}
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		return scaffold.FindClone(filepath.Dir(exe))
	}
	return ""
}
