package pluginhost_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
	"github.com/genpipe/genpipe/sdk/sdktest"
)

// The plugin boundary's cost. Run with
//
//	go test -run '^$' -bench . -benchtime 2s -count 5 ./pipeline/plugins | tee new.txt
//	benchstat -col /path new.txt
//
// Each throughput benchmark has three cases: "path=shm" (a real process,
// through Host/Model with supervision, tensor bytes in shared memory),
// "path=inline" (the same with shared memory switched off: tensor bytes in
// the gRPC messages) and "path=inprocess" (the same translator called
// directly); the difference to inprocess is what the boundary adds. Besides
// wall time they report CPU time of host and plugin together (cpu-us/op and
// per image, cpu-us/img), which other load on the machine does not change.

// cpuTime is the CPU time used so far by this process and the given
// children, so a benchmark can report CPU per call: unlike wall time, it
// does not change with other load on the machine.
func cpuTime(pids ...int) time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// utime and stime are fields 14 and 15 of stat, in clock ticks
		// (100 per second on Linux).
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}

// reportCPU reports the CPU time since start per call and per image
// (items per call).
func reportCPU(b *testing.B, start time.Duration, items int, pids ...int) {
	us := float64((cpuTime(pids...) - start).Microseconds()) / float64(b.N)
	b.ReportMetric(us, "cpu-us/op")
	b.ReportMetric(us/float64(items), "cpu-us/img")
}

// BenchmarkEmptyCall is the latency of one call carrying one 1x3x1x1 image
// through a real plugin process, with its median and p99.
func BenchmarkEmptyCall(b *testing.B) {
	m, _ := newPluginHost(b)
	p := open(b, m, pluginhost.Ref{Name: "testplug"})
	mdl := load(b, p, sdk.CapTranslate, "rgb8", nil)
	in := &sdk.Batch{Tensor: images(1, 3, 1, 1, 1)}
	c := context.Background()
	var lat []time.Duration
	cpu0 := cpuTime(p.Pid())
	for b.Loop() {
		t0 := time.Now()
		if _, err := mdl.Translate(c, in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportCPU(b, cpu0, 1, p.Pid())
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-us")
}

func BenchmarkGray28x64Copy(b *testing.B) {
	benchTranslate(b, "gray28", nil, images(64, 1, 28, 28, 1))
}

func BenchmarkGray28x64Edges(b *testing.B) {
	benchTranslate(b, "gray28", sdk.Params{"op": "edges"}, images(64, 1, 28, 28, 1))
}

// BenchmarkRGB256x16Copy uses the identity translator: nearly all of the
// plugin cases is transport.
func BenchmarkRGB256x16Copy(b *testing.B) {
	benchTranslate(b, "rgb8", nil, images(16, 3, 256, 256, 1))
}

func BenchmarkRGB256x16Edges(b *testing.B) {
	benchTranslate(b, "rgb8", sdk.Params{"op": "edges"}, images(16, 3, 256, 256, 1))
}

func benchTranslate(b *testing.B, preset string, params sdk.Params, in *sdk.Tensor) {
	batch := &sdk.Batch{Tensor: in}
	c := context.Background()
	for _, path := range []string{"shm", "inline"} {
		b.Run("path="+path, func(b *testing.B) {
			size := 0
			if path == "inline" {
				size = -1
			}
			m, _ := newHostWith(b, pluginhost.Options{SharedMemoryBytes: size})
			p := open(b, m, pluginhost.Ref{Name: "testplug"})
			mdl := load(b, p, sdk.CapTranslate, preset, params)
			if _, ok := p.SharedMemoryStats(); ok != (path == "shm") {
				b.Skipf("shared memory in use: %v (GENPIPE_SHM=%q)", ok, os.Getenv(client.SharedMemoryEnv))
			}
			b.SetBytes(int64(len(in.Data)))
			cpu0 := cpuTime(p.Pid())
			for b.Loop() {
				if _, err := mdl.Translate(c, batch); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0, in.Len(), p.Pid())
			if st, ok := p.SharedMemoryStats(); ok && st.Fallbacks > 0 {
				b.Errorf("%d calls fell back to inline", st.Fallbacks)
			}
		})
	}
	b.Run("path=inprocess", func(b *testing.B) {
		plug := sdktest.NewTestPlugin("testplug")
		desc := plug.Describe()
		spec := desc.Capability(sdk.CapTranslate)
		checked, errs := sdk.CheckParams(spec.Params, params, "")
		if len(errs) > 0 {
			b.Fatal(errs)
		}
		model, err := plug.Load(c, sdk.LoadRequest{Capability: sdk.CapTranslate, Preset: preset, Params: checked})
		if err != nil {
			b.Fatal(err)
		}
		tr := model.(sdk.Translator)
		b.SetBytes(int64(len(in.Data)))
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := tr.Translate(c, batch); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu0, in.Len())
	})
}
