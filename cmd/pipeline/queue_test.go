package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
// exactly once with no partial file, and the items finished on a second
// delivery are at most the killed worker's batch in flight.
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
	pngs := 0
	for _, e := range ents {
		switch {
		case strings.HasSuffix(e.Name(), ".png"):
			pngs++
		case strings.HasSuffix(e.Name(), ".json"):
		default:
			t.Errorf("unexpected file %s (a partial write?)", e.Name())
		}
	}
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
	// The killed worker held at most one batch of 32 (it pulls the next
	// only after settling one).
	if redelivered == 0 || redelivered > 32 {
		t.Errorf("%d items finished on a redelivery, want 1 to 32 (the killed worker's batch)", redelivered)
	}
}
