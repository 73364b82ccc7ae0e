// Package pluginhost is the host's side of model plugins: it finds, launches
// and supervises plugin processes.
//
// A plugin is either built into the host binary (registered with
// [RegisterBuiltin] and run out of process by re-executing the host with
// `plugin serve NAME`), an external executable named pipeline-plugin-NAME
// found in the directories of PIPELINE_PLUGIN_PATH and then [DefaultDir], or
// an executable given by path in the pipeline file. An external plugin with a
// built-in's name overrides the built-in (with a notice in the log).
//
// A [Host] starts each plugin process once, restarts it when it dies in
// the middle of a call (retrying that call once, alone), and kills every
// plugin on Close; on Linux a plugin also dies with the host, even when the
// host is killed with SIGKILL.
package pluginhost

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/genpipe/genpipe/sdk"
)

// Discovery settings.
const (
	// PathEnv lists directories searched for external plugins, separated by
	// os.PathListSeparator, before DefaultDir.
	PathEnv = "PIPELINE_PLUGIN_PATH"
	// Prefix starts the file name of every external plugin executable.
	Prefix = "pipeline-plugin-"
)

// Kind says where a plugin comes from.
type Kind string

// Plugin kinds.
const (
	KindBuiltin  Kind = "builtin"  // compiled into the host, run by re-executing it
	KindExternal Kind = "external" // pipeline-plugin-NAME found on the search path
	KindPath     Kind = "path"     // an executable named by path in the pipeline file
)

// Info says what runs a plugin.
type Info struct {
	Name string
	Kind Kind
	// Location is the executable: the plugin's file, or the host binary for
	// a built-in.
	Location string
	// Args are the arguments the executable is run with (for a built-in:
	// "plugin", "serve", NAME).
	Args []string
	// Overrides is set on an external plugin that shadows a built-in of the
	// same name.
	Overrides bool
}

var (
	builtinMu sync.RWMutex
	builtins  = map[string]func() sdk.Plugin{}
)

// RegisterBuiltin makes a plugin compiled into the host available by name.
// The host's `plugin serve NAME` command serves factory() with sdk.Serve.
// It panics on an empty or duplicate name (a programming error).
func RegisterBuiltin(name string, factory func() sdk.Plugin) {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	if name == "" || factory == nil {
		panic("plugins: RegisterBuiltin with an empty name or nil factory")
	}
	if _, dup := builtins[name]; dup {
		panic(fmt.Sprintf("plugins: built-in %q registered twice", name))
	}
	builtins[name] = factory
}

// Builtin returns the factory of a registered built-in plugin.
func Builtin(name string) (func() sdk.Plugin, bool) {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	f, ok := builtins[name]
	return f, ok
}

// Builtins returns the names of the registered built-ins, sorted.
func Builtins() []string {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DefaultDir is the per-user plugin directory searched after
// PIPELINE_PLUGIN_PATH: $XDG_DATA_HOME/genpipe/plugins, or
// ~/.local/share/genpipe/plugins when XDG_DATA_HOME is unset. It is "" when
// neither is known.
func DefaultDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "genpipe", "plugins")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".local", "share", "genpipe", "plugins")
}

// SearchDirs returns the directories searched for external plugins, in
// order: the entries of PIPELINE_PLUGIN_PATH, then DefaultDir.
func SearchDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(PathEnv)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if d := DefaultDir(); d != "" {
		dirs = append(dirs, d)
	}
	return dirs
}

func exeName(name string) string {
	if runtime.GOOS == "windows" {
		return Prefix + name + ".exe"
	}
	return Prefix + name
}

// NotFoundError reports a plugin name that is neither external nor built in.
type NotFoundError struct {
	Name string
	// Dirs are the directories searched.
	Dirs []string
	// Hint is a "did you mean" among known names, or "".
	Hint string
}

func (e *NotFoundError) Error() string {
	where := "no directories (PIPELINE_PLUGIN_PATH is empty and there is no home directory)"
	if len(e.Dirs) > 0 {
		where = strings.Join(e.Dirs, string(os.PathListSeparator))
	}
	s := fmt.Sprintf("plugin %q not found: it is not built in and no executable %s is in %s (set %s or give path: in the pipeline)",
		e.Name, exeName(e.Name), where, PathEnv)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// ErrNotExecutable is wrapped by errors about a plugin file that cannot be run.
var ErrNotExecutable = errors.New("not an executable file")

// checkExecutable reports why path cannot be run as a plugin, or nil.
func checkExecutable(name, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	if st.IsDir() {
		return fmt.Errorf("plugin %s: %s is a directory: %w", name, path, ErrNotExecutable)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin %s: %s: %w (mode %v; chmod +x it)", name, path, ErrNotExecutable, st.Mode().Perm())
	}
	return nil
}

// findExternal looks for pipeline-plugin-NAME in dirs. It returns "" when
// there is none; a file that exists but is not executable is an error, so it
// does not silently fall back to a built-in.
func findExternal(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, exeName(name))
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("plugin %s: %w", name, err)
		}
		if st.IsDir() {
			continue
		}
		if err := checkExecutable(name, p); err != nil {
			return "", err
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		return abs, nil
	}
	return "", nil
}

// listExternal returns the external plugins in dirs, the first of a name
// winning.
func listExternal(dirs []string) map[string]string {
	found := map[string]string{}
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			n := e.Name()
			if !strings.HasPrefix(n, Prefix) || e.IsDir() {
				continue
			}
			name := strings.TrimSuffix(strings.TrimPrefix(n, Prefix), ".exe")
			if name == "" {
				continue
			}
			if _, seen := found[name]; seen {
				continue
			}
			p, _ := filepath.Abs(filepath.Join(d, n))
			if checkExecutable(name, p) == nil {
				found[name] = p
			}
		}
	}
	return found
}
