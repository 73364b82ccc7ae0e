package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkCLI runs the built `pipeline` binary, as a user does, on jobs of
// N/10 and N images, N = GENPIPE_BENCH_N (default 500): the 256x256 RGB
// posterize job and the 28x28 gray threshold job of BenchmarkJob, with the
// classic plugin in its own process. The binary is built once per benchmark
// run with `go build`. Metrics:
//
//	us/img          wall time per image
//	cpu/wall        user+system time of the host and its plugin (the
//	                plugin is reaped by the host, so the host's rusage
//	                holds both) per wall second
//	host-MB         peak RSS (VmHWM) of the host process
//	plugin-MB       peak RSS (VmHWM) of the plugin process
//	plugin-cpu/wall the plugin's share of cpu/wall
//	other-cpu/wall  CPU time other programs used meanwhile (see BenchmarkJob)
//
// The host and plugin figures come from /proc/PID/status and /proc/PID/stat,
// read every 20 ms while the job runs (VmHWM only grows, so the last
// reading before exit is the peak, give or take the last 20 ms).
func BenchmarkCLI(b *testing.B) {
	bin := buildPipeline(b)
	n := benchN(b)
	for _, w := range []workload{workloads[0], workloads[2]} {
		for _, size := range []int{n / 10, n} {
			b.Run(fmt.Sprintf("%s/n=%d", w, size), func(b *testing.B) {
				benchCLI(b, bin, w, size)
			})
		}
	}
}

func benchCLI(b *testing.B, bin string, w workload, size int) {
	dir := b.TempDir()
	out := filepath.Join(outRoot(b, dir), "out")
	file, _, err := w.pipelineFile(size, dir, out)
	if err != nil {
		b.Fatal(err)
	}
	var tot procStats
	runs := 0
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(out); err != nil {
			b.Fatal(err)
		}
		waitQuiet(b)
		b.StartTimer()
		st, err := runCLI(bin, file)
		if err != nil {
			b.Fatal(err)
		}
		tot.add(st)
		runs++
	}
	wall := tot.wall.Seconds()
	b.ReportMetric(float64(tot.wall.Microseconds())/float64(runs*size), "us/img")
	b.ReportMetric(tot.cpu.Seconds()/wall, "cpu/wall")
	b.ReportMetric(tot.pluginCPU.Seconds()/wall, "plugin-cpu/wall")
	b.ReportMetric(tot.other.Seconds()/wall, "other-cpu/wall")
	b.ReportMetric(tot.hostHWM/float64(runs), "host-MB")
	b.ReportMetric(tot.pluginHWM/float64(runs), "plugin-MB")
}

// buildPipeline builds cmd/pipeline into a temporary folder.
func buildPipeline(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "pipeline")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/genpipe/genpipe/cmd/pipeline")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/pipeline: %v\n%s", err, out)
	}
	return bin
}

// procStats are the measurements of one CLI run (or sums of several).
type procStats struct {
	wall, cpu, pluginCPU time.Duration
	other                time.Duration // CPU other programs used meanwhile
	hostHWM, pluginHWM   float64       // MB
}

func (s *procStats) add(o procStats) {
	s.wall += o.wall
	s.cpu += o.cpu
	s.pluginCPU += o.pluginCPU
	s.other += o.other
	s.hostHWM += o.hostHWM
	s.pluginHWM += o.pluginHWM
}

// runCLI runs `pipeline run FILE` and samples the host and its children.
func runCLI(bin, file string) (procStats, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", file, "--progress", "none")
	cmd.Stderr = &stderr
	m0 := machineBusy()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return procStats{}, err
	}
	pid := cmd.Process.Pid
	var (
		mu        sync.Mutex
		hostHWM   int64
		childHWM  = map[int]int64{}
		childTick = map[int]int64{}
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			mu.Lock()
			if v := vmHWM(pid); v > 0 {
				hostHWM = v
			}
			for _, c := range children(pid) {
				if v := vmHWM(c); v > 0 {
					childHWM[c] = v
				}
				if t := cpuTicks(c); t > 0 {
					childTick[c] = t
				}
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	err := cmd.Wait()
	wall := time.Since(t0)
	busy := machineBusy() - m0
	close(stop)
	<-sampled
	if err != nil {
		return procStats{}, fmt.Errorf("pipeline run %s: %v\n%s", file, err, stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	st := procStats{
		wall:    wall,
		cpu:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		hostHWM: float64(hostHWM) / 1024,
	}
	st.other = max(busy-st.cpu, 0)
	for c, v := range childHWM {
		st.pluginHWM = max(st.pluginHWM, float64(v)/1024)
		st.pluginCPU += time.Duration(childTick[c]) * time.Second / clockTicks
	}
	return st, nil
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTicks = 100

// vmHWM returns a process's peak resident set in KiB (0 if gone).
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// cpuTicks returns a process's utime+stime in clock ticks (0 if gone).
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return u + sy
}

// children lists the child processes of pid (from every thread's children
// file: the plugin is started from a locked thread of its own).
func children(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}
