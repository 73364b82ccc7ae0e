package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/genpipe/genpipe/pipeline/queue"
)

// queueJob writes a pipeline of n MNIST test digits denoised by the DAE
// into dir and returns its path.
func queueJob(t *testing.T, dir string, n int) string {
	t.Helper()
	yaml := fmt.Sprintf(`version: 1
name: qjob
seed: 1
stages:
  - id: digits
    load: {idx: %s, limit: %d}
  - id: noisy
    preprocess: [{noise: {type: gaussian, amount: 0.3}}]
  - id: clean
    denoise: {model: vae, preset: mnist-dae, batch: 16}
  - id: out
    save: {dir: out}
`, filepath.Join(repoRoot, "examples/data/mnist/t10k-images-idx3-ubyte.gz"), n)
	file := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o666); err != nil {
		t.Fatal(err)
	}
	return file
}

// startWorker starts a worker process (its own process group, so a kill
// takes its plugins too) and returns it.
func startWorker(t *testing.T, url, name string, stderr *syncBuffer) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(pipelineExe(t), "worker", "--queue", url, "--name", name, "--batch", "32")
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

// TestQueueSurvivesAKilledWorker: three worker processes drain a
// 3,000-item job from an embedded NATS JetStream server; one is SIGKILLed
// (with its plugin) mid-job. The job completes, every output exists
// exactly once and decodes (no partial output), and the items finished on a
// second delivery are at most the killed worker's two batches in flight.
func TestQueueSurvivesAKilledWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 3,000 items through three worker processes; -short")
	}
	const n = 3000
	srv, err := queue.StartEmbedded(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := srv.ClientURL()
	dir := t.TempDir()
	file := queueJob(t, dir, n)

	var logs [3]syncBuffer
	workers := make([]*exec.Cmd, 3)
	for i := range workers {
		workers[i] = startWorker(t, url, fmt.Sprintf("w%d", i), &logs[i])
	}
	sub := exec.Command(pipelineExe(t), "run", "--queue", url, "--ack-wait", "3s", file)
	var subErr syncBuffer
	sub.Stderr = &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	q, err := queue.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	// Kill worker 0 once the job is well under way and it holds items.
	killed := false
	for !killed {
		select {
		case err := <-subDone:
			t.Fatalf("the job ended before a worker could be killed: %v\n%s", err, subErr.String())
		case <-ctx.Done():
			t.Fatalf("timed out; submitter:\n%s", subErr.String())
		case <-time.After(50 * time.Millisecond):
		}
		ids, _ := q.Jobs(ctx)
		if len(ids) != 1 {
			continue
		}
		st, err := q.Status(ctx, ids[0])
		if err != nil || st.Done < n/4 || st.InFlight == 0 {
			continue
		}
		if err := syscall.Kill(-workers[0].Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = true
		t.Logf("killed worker w0 at %d of %d items done, %d in flight", st.Done, n, st.InFlight)
	}
	select {
	case err := <-subDone:
		if err != nil {
			t.Fatalf("submitter: %v\n%s", err, subErr.String())
		}
	case <-ctx.Done():
		t.Fatalf("the job did not finish; submitter:\n%s", subErr.String())
	}
	t.Logf("submitter: %s", strings.TrimSpace(subErr.String()))
	if !strings.Contains(subErr.String(), fmt.Sprintf("%d of %d items done, 0 dead-lettered", n, n)) {
		t.Errorf("summary does not say every item is done:\n%s", subErr.String())
	}
	ents, err := os.ReadDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	pngs, temps := 0, 0
	for _, e := range ents {
		switch name := e.Name(); {
		case strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"):
			// The killed worker's unfinished atomic writes: hidden
			// temporaries, never under an output's name.
			temps++
		case strings.HasSuffix(name, ".png"):
			pngs++
			decodeFile(t, filepath.Join(dir, "out", name)) // a partial output fails to decode
		case strings.HasSuffix(name, ".json"):
		default:
			t.Errorf("unexpected file %s", name)
		}
	}
	t.Logf("the killed worker left %d hidden temporary files", temps)
	if pngs != n {
		t.Errorf("%d images written, want %d", pngs, n)
	}
	ids, _ := q.Jobs(ctx)
	done, err := q.Records(ctx, "done", ids[0])
	if err != nil {
		t.Fatal(err)
	}
	redelivered, byWorker := 0, map[string]int{}
	seen := map[string]bool{}
	for _, r := range done {
		if seen[r.Key()] {
			t.Errorf("item %s recorded done twice", r.Key())
		}
		seen[r.Key()] = true
		byWorker[r.Worker]++
		if r.Deliveries > 1 {
			redelivered++
		}
	}
	t.Logf("done records: %d; by worker %v; finished on a redelivery: %d", len(done), byWorker, redelivered)
	if len(done) != n {
		t.Errorf("%d done records, want %d", len(done), n)
	}
	// The killed worker held at most its two batches of 32 in flight.
	if redelivered == 0 || redelivered > 64 {
		t.Errorf("%d items finished on a redelivery, want 1 to 64 (the killed worker's batches in flight)", redelivered)
	}
}

// queueServer starts an embedded NATS JetStream server for one test.
func queueServer(t *testing.T) string {
	t.Helper()
	srv, err := queue.StartEmbedded(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// testplugDir is the folder of the SDK's test plugin, for
// PIPELINE_PLUGIN_PATH.
func testplugDir(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("pipeline-plugin-testplug")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(p)
}

// submit runs `pipeline run --queue URL ARGS... FILE` and returns its exit
// code and stderr.
func submit(t *testing.T, url, file string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(pipelineExe(t), append(append([]string{"run", "--queue", url}, args...), file)...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatalf("submit: %v", err)
	return 0, ""
}

// TestQueuePoisonItemAndResubmission: an item on which the plugin's process
// dies is dead-lettered after --max-deliver deliveries and named in the
// summary (exit 2), its batch-mates are done; the same job submitted again
// publishes nothing and does no work.
func TestQueuePoisonItemAndResubmission(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; -short")
	}
	url := queueServer(t)
	dir := t.TempDir()
	if err := writeNoiseImages(filepath.Join(dir, "in", "good"), 15, 16, 16); err != nil {
		t.Fatal(err)
	}
	if err := writeNoiseImages(filepath.Join(dir, "in", "poison"), 1, 16, 16); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "job.yaml")
	if err := os.WriteFile(file, []byte(`version: 1
name: poison
stages:
  - id: in
    load: {dir: in, labels: folders}
  - id: f
    translate: {model: testplug, preset: rgb8, exit_on_label: 1, batch: 4}
  - id: out
    save: {dir: out}
`), 0o666); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIPELINE_PLUGIN_PATH", testplugDir(t))
	var logs syncBuffer
	for i := 0; i < 2; i++ {
		startWorker(t, url, fmt.Sprintf("w%d", i), &logs)
	}
	code, out := submit(t, url, file, "--max-deliver", "2", "--ack-wait", "5s")
	t.Logf("submitter:\n%s", out)
	if code != 2 {
		t.Errorf("exit code %d, want 2 (items failed)", code)
	}
	for _, want := range []string{"15 of 16 items done, 1 dead-lettered", "dead letter: in.15 after 2 deliveries: ", "died on this batch of 1 items twice"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	n, _ := filepath.Glob(filepath.Join(dir, "out", "*", "*.png"))
	if len(n) != 15 {
		t.Errorf("%d outputs, want 15", len(n))
	}
	code, out = submit(t, url, file, "--max-deliver", "2", "--ack-wait", "5s")
	if code != 2 || !strings.Contains(out, "was submitted before; following it") || !strings.Contains(out, "15 of 16 items done, 1 dead-lettered") {
		t.Errorf("resubmission: exit %d:\n%s", code, out)
	}
	ctx := context.Background()
	q, err := queue.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ids, _ := q.Jobs(ctx)
	if len(ids) != 1 {
		t.Fatalf("%d jobs in the queue, want 1: %v", len(ids), ids)
	}
	// pipeline status says the same, with run's exit code.
	st := exec.Command(pipelineExe(t), "status", ids[0], "--queue", url)
	out2, err := st.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out2), "15 of 16 items done, 1 dead-lettered") || !strings.Contains(string(out2), "dead letter: in.15 after 2 deliveries") {
		t.Errorf("pipeline status: %v\n%s", err, out2)
	}
	if err := exec.Command(pipelineExe(t), "status", "nosuchjob", "--queue", url).Run(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("pipeline status of an unknown job: %v, want exit 1", err)
	}
	done, _ := q.Records(ctx, "done", ids[0])
	if len(done) != 15 {
		t.Errorf("%d done records after the resubmission, want 15", len(done))
	}
}

// TestQueueRefusesHostileJobs: whoever can publish to the queue cannot
// make a worker run a plugin executable the job names, touch storage
// outside the folders the worker was given, or run with a lock other than
// its own. Each job is refused, named in the submitter's summary (exit 1),
// and nothing is written.
func TestQueueRefusesHostileJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; -short")
	}
	url := queueServer(t)
	dir := t.TempDir()
	allowed := filepath.Join(dir, "allowed")
	if err := writeNoiseImages(filepath.Join(allowed, "in"), 2, 16, 16); err != nil {
		t.Fatal(err)
	}
	job := func(name, extra, save string) string {
		file := filepath.Join(allowed, name+".yaml")
		y := fmt.Sprintf("version: 1\nname: %s\n%sstages:\n  - id: in\n    load: {dir: in}\n  - id: f\n    translate: {model: classic, method: posterize}\n  - id: out\n    save: {dir: %s}\n", name, extra, save)
		if err := os.WriteFile(file, []byte(y), 0o666); err != nil {
			t.Fatal(err)
		}
		return file
	}
	good := job("good", "", "out")
	// The worker's lock, written for the good job.
	lockRun := exec.Command(pipelineExe(t), "lock", good)
	if out, err := lockRun.CombinedOutput(); err != nil {
		t.Fatalf("pipeline lock: %v\n%s", err, out)
	}
	workerLock := good + ".lock"
	var logs syncBuffer
	cmd := exec.Command(pipelineExe(t), "worker", "--queue", url, "--name", "guard", "--allow", allowed, "--lock", workerLock)
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })

	// The good job, locked, runs.
	if code, out := submit(t, url, good, "--locked"); code != 0 || !strings.Contains(out, "2 of 2 items done") {
		t.Fatalf("the good job: exit %d\n%s\nworker:\n%s", code, out, logs.String())
	}
	for _, c := range []struct {
		name, extra, save string
		raw               bool
		want              string
	}{
		// The submitter would refuse to start /bin/sh itself: publish it
		// as a hostile client would, straight to the queue.
		{"exe", "plugins:\n  classic: {path: /bin/sh}\n", "out-exe", true, "the job names a plugin executable (plugins.classic.path \"/bin/sh\")"},
		{"escape", "", "../../escaped", false, "outside the folders this worker may use"},
		{"bucket", "", "mem://elsewhere/out", false, "the job touches mem://elsewhere/out, outside the folders this worker may use"},
		{"unlocked", "", "out-unlocked", false, "this worker runs only locked jobs (its --lock) and the job carries no lock"},
	} {
		file := job(c.name, c.extra, c.save)
		var code int
		var out string
		var args []string
		if c.name != "unlocked" {
			// Carrying the worker's own lock, so what is refused is the
			// case itself.
			b, err := os.ReadFile(workerLock)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file+".lock", b, 0o666); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--locked")
		}
		if c.raw {
			b, _ := os.ReadFile(workerLock)
			code, out = submitRaw(t, url, file, b)
		} else {
			code, out = submit(t, url, file, args...)
		}
		if code != 1 || !strings.Contains(out, "refused by worker guard: ") || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, want 1 and a refusal saying %q:\n%s", c.name, code, c.want, out)
		}
	}
	// A lock that differs from the worker's (another plugin's checksum).
	other := job("otherlock", "", "out-other")
	b, err := os.ReadFile(workerLock)
	if err != nil {
		t.Fatal(err)
	}
	var lf map[string]any
	if err := json.Unmarshal(b, &lf); err != nil {
		t.Fatal(err)
	}
	lf["plugins"].(map[string]any)["classic"].(map[string]any)["sha256"] = strings.Repeat("ab", 32)
	b, _ = json.MarshalIndent(lf, "", "  ")
	if err := os.WriteFile(other+".lock", b, 0o666); err != nil {
		t.Fatal(err)
	}
	// Submitting --locked checks the submitter's own plugins first, so
	// publish the job as a hostile client would: with the lock it likes.
	code, out := submitRaw(t, url, other, b)
	if code != 1 || !strings.Contains(out, "the job's lock differs from this worker's: plugin classic: the lock pins sha256:") {
		t.Errorf("other lock: exit %d:\n%s", code, out)
	}
	for _, d := range []string{"out-exe", "out-unlocked", "out-other", "../escaped"} {
		if _, err := os.Stat(filepath.Join(allowed, d)); err == nil {
			t.Errorf("%s was written", d)
		}
	}
}

// submitRaw publishes a job straight to the queue, as a client that skips
// every check of pipeline run would, and waits for a worker to take it or
// refuse it: exit 1 and the refusals when it is refused, 0 when it is done.
func submitRaw(t *testing.T, url, file string, lockBytes []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := queue.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	yaml, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	j := &queue.Job{ID: "raw-" + strings.TrimSuffix(filepath.Base(file), ".yaml"), Name: "raw", File: filepath.Base(file), Dir: filepath.Dir(file),
		YAML: yaml, Lock: lockBytes, Source: "in", Total: 2, AckWait: 5 * time.Second, MaxDeliver: 2, Created: time.Now()}
	if _, err := q.Submit(ctx, j, func(yield func(queue.Item) error) error {
		for i := 0; i < 2; i++ {
			if err := yield(queue.Item{Job: j.ID, Stage: "in", Index: i}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		st, err := q.Status(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Finished() {
			return 0, fmt.Sprintf("%d of %d done", st.Done, j.Total)
		}
		if len(st.Refused) > 0 {
			var b strings.Builder
			printStatus(&b, st, 0)
			return 1, b.String()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: neither done nor refused within a minute", file)
	return 0, ""
}

// TestQueueServerRestart: the NATS server (file storage) is stopped and
// started again on the same port mid-job; the workers and the submitter
// reconnect and the job completes with every output exactly once.
func TestQueueServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts worker processes; -short")
	}
	store := t.TempDir()
	srv, err := queue.StartEmbedded(store, 0)
	if err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	port := srv.Addr().(*net.TCPAddr).Port
	defer func() { srv.Shutdown() }()
	dir := t.TempDir()
	const n = 1500
	file := queueJob(t, dir, n)
	var logs [2]syncBuffer
	for i := range logs {
		startWorker(t, url, fmt.Sprintf("w%d", i), &logs[i])
	}
	sub := exec.Command(pipelineExe(t), "run", "--queue", url, file)
	var subErr syncBuffer
	sub.Stderr = &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan error, 1)
	go func() { subDone <- sub.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Restart once a quarter of the items are done.
	for {
		time.Sleep(100 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("timed out before the restart")
		}
		q, err := queue.Connect(ctx, url, nats.MaxReconnects(0))
		if err != nil {
			continue
		}
		ids, _ := q.Jobs(ctx)
		var st *queue.Status
		if len(ids) == 1 {
			st, _ = q.Status(ctx, ids[0])
		}
		q.Close()
		if st != nil && st.Done >= n/4 {
			t.Logf("stopping the server at %d of %d done", st.Done, n)
			break
		}
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	time.Sleep(2 * time.Second)
	if srv, err = queue.StartEmbedded(store, port); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-subDone:
		if err != nil {
			t.Fatalf("submitter: %v\n%s\nworker 0:\n%s", err, subErr.String(), logs[0].String())
		}
	case <-ctx.Done():
		t.Fatalf("the job did not finish after the restart; submitter:\n%s\nworker 0:\n%s", subErr.String(), logs[0].String())
	}
	t.Logf("submitter: %s", strings.TrimSpace(subErr.String()))
	if !strings.Contains(subErr.String(), fmt.Sprintf("%d of %d items done, 0 dead-lettered", n, n)) {
		t.Errorf("summary:\n%s", subErr.String())
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "out", "*.png"))
	if len(pngs) != n {
		t.Errorf("%d images, want %d", len(pngs), n)
	}
}
