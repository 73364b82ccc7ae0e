// Package bench holds the job-level benchmarks of issue 2's "Measure"
// section: a whole load -> model -> save job with the model in a plugin
// process versus the same translator called in process, the CPU use of such
// a job, and the peak memory of the `pipeline` binary for 1,000 versus
// 10,000 images. README.md says how to run them and what they measured.
//
// The package has only test files: nothing outside bench/ depends on it.
package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/plugins/classic"
	"github.com/genpipe/genpipe/sdk"
)

// TestMain lets the test binary serve the built-in classic plugin when the
// plugin host re-executes it as `BINARY plugin serve classic`, exactly
// as the pipeline binary re-executes itself.
func TestMain(m *testing.M) {
	pluginhost.RegisterBuiltin(classic.Name, classic.New)
	if len(os.Args) == 4 && os.Args[1] == "plugin" && os.Args[2] == "serve" {
		f, ok := pluginhost.Builtin(os.Args[3])
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: no built-in plugin %q\n", os.Args[3])
			os.Exit(2)
		}
		if dir := os.Getenv("GENPIPE_BENCH_PLUGIN_PROFILE"); dir != "" {
			stop := profilePlugin(dir)
			defer stop()
		}
		sdk.Serve(f())
		return
	}
	os.Exit(m.Run())
}

// profilePlugin writes a CPU profile of this plugin process to
// DIR/plugin-PID.prof (GENPIPE_BENCH_PLUGIN_PROFILE=DIR), so the plugin
// side of a job can be read with go tool pprof next to the host's
// -cpuprofile.
func profilePlugin(dir string) (stop func()) {
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("plugin-%d.prof", os.Getpid())))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: plugin profile: %v\n", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "bench: plugin profile: %v\n", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}
