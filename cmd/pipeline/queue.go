package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/genpipe/genpipe/pipeline/lock"
	"github.com/genpipe/genpipe/pipeline/plan"
	"github.com/genpipe/genpipe/pipeline/queue"
)

// queueFlags are the flags of run in queue mode and of worker and status.
type queueFlags struct {
	url        string
	workers    int
	ackWait    time.Duration
	maxDeliver int
	storeDir   string
	creds      string
	nkey       string
	tlsCA      string
	tlsCert    string
	tlsKey     string
}

func addQueueFlags(fl *pflag.FlagSet, f *queueFlags) {
	fl.StringVar(&f.url, "queue", "", "run through a NATS JetStream work queue: nats://HOST:PORT, or embedded (a server in this process, with --workers worker processes)")
	fl.IntVar(&f.workers, "workers", 2, "with --queue embedded: worker processes to start on this machine")
	fl.DurationVar(&f.ackWait, "ack-wait", time.Minute, "with --queue: how long an item may go without a sign of life from its worker before it is redelivered")
	fl.IntVar(&f.maxDeliver, "max-deliver", 5, "with --queue: deliveries of an item before it goes to the dead letters")
	fl.StringVar(&f.storeDir, "queue-dir", "", "with --queue embedded: where the server keeps its streams (default: a temporary folder)")
	addConnFlags(fl, f)
}

// addConnFlags are the connection flags every queue command takes.
func addConnFlags(fl *pflag.FlagSet, f *queueFlags) {
	fl.StringVar(&f.creds, "creds", "", "NATS credentials file (JWT and nkey seed)")
	fl.StringVar(&f.nkey, "nkey", "", "NATS nkey seed file")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "CA certificate to verify the NATS server (TLS)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "client certificate for TLS (with --tls-key)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "client key for TLS")
}

// options are the NATS connection options the flags ask for.
func (f *queueFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if f.creds != "" {
		opts = append(opts, nats.UserCredentials(f.creds))
	}
	if f.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(f.nkey)
		if err != nil {
			return nil, fmt.Errorf("--nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if f.tlsCA != "" {
		opts = append(opts, nats.RootCAs(f.tlsCA))
	}
	if f.tlsCert != "" || f.tlsKey != "" {
		opts = append(opts, nats.ClientCert(f.tlsCert, f.tlsKey))
	}
	return opts, nil
}

// submitJob is run --queue: it stores the checked job, publishes its
// items, and follows it to the end, printing a summary like run's; the exit
// codes are run's.
func submitJob(ctx context.Context, cmd interface {
	ErrOrStderr() io.Writer
}, file string, f *runFlags, p *plan.Plan) error {
	stderr := cmd.ErrOrStderr()
	qf := &f.queue
	yaml, err := os.ReadFile(file)
	if err != nil {
		return &exitError{exitInvalid, err}
	}
	var lockBytes []byte
	if f.locked {
		if lockBytes, err = os.ReadFile(lock.PathFor(file)); err != nil {
			return &exitError{exitInvalid, err}
		}
	}
	j, err := queue.NewJob(p, yaml, f.sets, lockBytes, qf.ackWait, qf.maxDeliver)
	if err != nil {
		return &exitError{exitInvalid, fmt.Errorf("%s: %w", file, err)}
	}
	url := qf.url
	var workers []*exec.Cmd
	if url == "embedded" {
		dir := qf.storeDir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "genpipe-queue-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		s, err := queue.StartEmbedded(dir, 0)
		if err != nil {
			return err
		}
		defer s.Shutdown()
		url = s.ClientURL()
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		for i := 0; i < max(1, qf.workers); i++ {
			args := []string{"worker", "--queue", url, "--name", "w" + strconv.Itoa(i)}
			if f.locked {
				args = append(args, "--lock", lock.PathFor(file))
			}
			w := exec.Command(exe, args...)
			w.Stderr = stderr
			w.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := w.Start(); err != nil {
				return fmt.Errorf("queue: start worker: %w", err)
			}
			workers = append(workers, w)
		}
		defer func() {
			for _, w := range workers {
				_ = w.Process.Signal(syscall.SIGTERM)
			}
			for _, w := range workers {
				_ = w.Wait()
			}
		}()
	}
	opts, err := qf.options()
	if err != nil {
		return &exitError{exitInvalid, err}
	}
	q, err := queue.Connect(ctx, url, opts...)
	if err != nil {
		return err
	}
	defer q.Close()
	count, each, err := queue.Items(ctx, p, j.ID)
	if err != nil {
		return &exitError{exitInvalid, err}
	}
	if j.Total, err = count(); err != nil {
		return &exitError{exitInvalid, err}
	}
	start := time.Now()
	exists, err := q.Submit(ctx, j, each)
	if err != nil {
		return err
	}
	if exists {
		fmt.Fprintf(stderr, "%s: job %s was submitted before; following it\n", p.Name, j.ID)
	} else {
		fmt.Fprintf(stderr, "%s: submitted job %s: %d items\n", p.Name, j.ID, j.Total)
	}
	st, err := follow(ctx, q, j.ID, len(workers))
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{exitInterrupted, fmt.Errorf("interrupted; the job goes on in the queue (pipeline status %s)", j.ID)}
		}
		return err
	}
	printStatus(stderr, st, time.Since(start))
	switch {
	case len(st.Refused) > 0 && !st.Finished():
		return &exitError{exitInvalid, fmt.Errorf("job %s: refused by the workers (it stays queued for workers that accept it: pipeline status %s)", j.ID, j.ID)}
	case st.Dead > 0:
		return &exitError{exitItemsFailed, fmt.Errorf("%d item(s) failed", st.Dead)}
	}
	return nil
}

// refusedQuiet is how long a job that a worker refused may show no
// progress before the submitter gives up on it.
const refusedQuiet = 3 * time.Second

// follow polls a job until it is finished, or until a worker refused it
// and nothing has moved for refusedQuiet (every worker of an embedded
// queue refusing it ends it at once).
func follow(ctx context.Context, q *queue.Queue, id string, embeddedWorkers int) (*queue.Status, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	lastDone, moved := -1, time.Now()
	for {
		st, err := q.Status(ctx, id)
		if err != nil {
			return nil, err
		}
		if st.Finished() {
			return st, nil
		}
		if st.Done != lastDone || st.InFlight > 0 {
			lastDone, moved = st.Done, time.Now()
		}
		if len(st.Refused) > 0 && (embeddedWorkers > 0 && len(st.Refused) >= embeddedWorkers || time.Since(moved) > refusedQuiet) {
			return st, nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// printStatus prints a job's counts, its dead letters and refusals.
func printStatus(w io.Writer, st *queue.Status, took time.Duration) {
	j := st.Job
	s := fmt.Sprintf("%s: job %s: %d of %d items done, %d dead-lettered, %d pending, %d in flight", j.Name, j.ID, st.Done, j.Total, st.Dead, st.Pending, st.InFlight)
	if took > 0 {
		s += fmt.Sprintf(" in %s", took.Round(time.Millisecond))
		if secs := took.Seconds(); secs > 0 && st.Done > 0 {
			s += fmt.Sprintf(" (%.1f items/s)", float64(st.Done)/secs)
		}
	}
	fmt.Fprintln(w, s)
	for _, r := range st.DeadItems {
		fmt.Fprintf(w, "  dead letter: %s after %d deliveries: %s\n", r.Key(), r.Deliveries, strings.Join(r.Reasons, "; "))
	}
	for _, r := range st.Refused {
		fmt.Fprintf(w, "  refused by worker %s: %s\n", r.Worker, strings.Join(r.Reasons, "; "))
	}
}
