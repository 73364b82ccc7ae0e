package pluginhost_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/genpipe/genpipe/pipeline/pluginhost"
	"github.com/genpipe/genpipe/sdk"
	"github.com/genpipe/genpipe/sdk/client"
)

// The shared-memory data plane under supervision. The sdk package tests the
// protocol; these run it through Host with real plugin processes.

func needSharedMemory(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || !client.SharedMemoryEnabled() {
		t.Skip("no shared memory on this OS or with GENPIPE_SHM=off")
	}
}

// TestSharedMemoryUnderLoad runs many goroutines with batches of several
// sizes against a small memory: some calls find no room and go inline, one
// batch never fits, and every result is right.
func TestSharedMemoryUnderLoad(t *testing.T) {
	needSharedMemory(t)
	m, _ := newHostWith(t, pluginhost.Options{SharedMemoryBytes: 256 << 10})
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	mdl := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert", "delay_ms": 2})
	if _, ok := p.SharedMemoryStats(); !ok {
		t.Fatal("the plugin does not use shared memory")
	}
	sizes := [][4]int{{1, 3, 16, 16}, {2, 3, 32, 32}, {4, 3, 48, 48}, {1, 3, 96, 96}}
	var wg sync.WaitGroup
	var calls atomic.Int32
	for g := range 12 {
		wg.Go(func() {
			for i := range 12 {
				d := sizes[(g+i)%len(sizes)]
				in := images(d[0], d[1], d[2], d[3], uint64(100*g+i))
				out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
				if err != nil {
					t.Errorf("goroutine %d call %d: %v", g, i, err)
					return
				}
				if err := checkInverted(in, out); err != nil {
					t.Errorf("goroutine %d call %d (%v): %v", g, i, d, err)
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	// 1x3x192x192 needs 2 x 108 KiB: more than the arena holds.
	huge := images(1, 3, 192, 192, 7)
	out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: huge})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkInverted(huge, out); err != nil {
		t.Error(err)
	}
	st, _ := p.SharedMemoryStats()
	t.Logf("%d calls: %+v", calls.Load()+1, st)
	if st.Calls == 0 || st.Fallbacks == 0 {
		t.Errorf("want calls through shared memory and fallbacks to inline: %+v", st)
	}
	if st.InUse != 0 || st.Pending != 0 {
		t.Errorf("memory still held after every call returned: %+v", st)
	}
}

// TestSharedMemoryOff: both switches keep every call inline, and so does
// a plugin that does not map the memory (as one built with an older SDK).
func TestSharedMemoryOff(t *testing.T) {
	for _, tt := range []struct {
		name      string
		env       string
		size      int
		pluginEnv []string
	}{
		{"GENPIPE_SHM=off", "off", 0, nil},
		{"Options.SharedMemoryBytes < 0", "", -1, nil},
		{"the plugin does not map it", "", 0, []string{client.SharedMemoryEnv + "=off"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(client.SharedMemoryEnv, tt.env)
			m, _ := newHostWith(t, pluginhost.Options{SharedMemoryBytes: tt.size, Env: tt.pluginEnv})
			p := open(t, m, pluginhost.Ref{Name: "testplug"})
			mdl := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert"})
			in := images(4, 3, 32, 32, 1)
			out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
			if err != nil {
				t.Fatal(err)
			}
			if err := checkInverted(in, out); err != nil {
				t.Error(err)
			}
			if st, ok := p.SharedMemoryStats(); ok {
				t.Errorf("shared memory in use: %+v", st)
			}
		})
	}
}

// TestKilledMidCallWithSharedMemory SIGKILLs the plugin while calls are in
// flight through shared memory: the calls are retried in a new process,
// with its own memory, and every batch comes back once and right.
func TestKilledMidCallWithSharedMemory(t *testing.T) {
	needSharedMemory(t)
	m, logs := newPluginHost(t)
	p := open(t, m, pluginhost.Ref{Name: "testplug"})
	mdl := load(t, p, sdk.CapTranslate, "rgb8", sdk.Params{"op": "invert", "delay_ms": 15})
	first := p.Pid()
	const batches, workers = 24, 4
	var (
		mu      sync.Mutex
		results = make([]int, batches)
		done    atomic.Int32
		killed  sync.Once
	)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				in := images(8, 3, 64, 64, uint64(i))
				out, err := mdl.Translate(ctx(t), &sdk.Batch{Tensor: in})
				if err != nil {
					t.Errorf("batch %d: %v", i, err)
					continue
				}
				if err := checkInverted(in, out); err != nil {
					t.Errorf("batch %d: %v", i, err)
				}
				mu.Lock()
				results[i]++
				mu.Unlock()
				if done.Add(1) == 6 {
					killed.Do(func() { _ = syscall.Kill(first, syscall.SIGKILL) })
				}
			}
		})
	}
	for i := range batches {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for i, n := range results {
		if n != 1 {
			t.Errorf("batch %d came back %d times", i, n)
		}
	}
	if p.Restarts() < 1 || p.Pid() == first {
		t.Fatalf("restarts %d, pid %d (first %d): the plugin was not restarted\n%s", p.Restarts(), p.Pid(), first, logs.String())
	}
	st, ok := p.SharedMemoryStats()
	if !ok || st.Calls == 0 || st.InUse != 0 {
		t.Errorf("the new process's shared memory: %+v (in use: %v)", st, ok)
	}
}
