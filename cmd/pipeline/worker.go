package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/genpipe/genpipe/pipeline/blobstore"
	"github.com/genpipe/genpipe/pipeline/lock"
	"github.com/genpipe/genpipe/pipeline/queue"
)

func newWorkerCmd() *cobra.Command {
	var (
		qf    queueFlags
		name  string
		batch int
		allow []string
		lockF string
	)
	cmd := &cobra.Command{
		Use:   "worker --queue URL",
		Short: "Pull items of queued jobs from NATS JetStream and run them, until stopped",
		Long: `worker connects to the queue, and for each job with work left pulls its items
in batches, runs the job's stages on them (plugins start once and stay up),
writes each output atomically under its deterministic name, and acknowledges
an item only once its outputs are written. While a batch runs it tells the
queue it is alive; an item whose worker dies is redelivered after the job's
ack wait; an item that fails --max-deliver times goes to the dead letters
with its reasons. A redelivered item whose outputs exist is acknowledged
without work, so effects are exactly once though delivery is at least once.

A job cannot make a worker run anything it was not given: the worker starts
only plugins installed on it (a job naming a plugin executable is refused),
with --lock only those its lock pins and only a job carrying the same lock,
and with --allow only jobs whose loads, saves and weights lie under those
folders or blob URL prefixes (a URL's query, e.g. its endpoint, must match
too). A refused job is named in pipeline status, with its reason.
SIGTERM or Ctrl-C stops the worker; items it held are redelivered.`,
		Example: `  # Serve the jobs of a NATS server, reading and writing only under /data
  pipeline worker --queue nats://nats:4222 --allow /data --lock /etc/genpipe/job.yaml.lock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if qf.url == "" {
				return &exitError{exitInvalid, fmt.Errorf("worker: --queue nats://HOST:PORT is required")}
			}
			ss, err := startWorkerSession(cmd)
			defer ss.close()
			if err != nil {
				return err
			}
			w := &queue.Worker{Host: ss.m, Name: name, Batch: batch, Logf: func(format string, a ...any) {
				fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", a...)
			}}
			if w.Name == "" {
				h, _ := os.Hostname()
				w.Name = fmt.Sprintf("%s-%d", h, os.Getpid())
			}
			for _, a := range allow {
				if blobstore.IsBlob(a) {
					if _, err := blobstore.Parse(a); err != nil {
						return &exitError{exitInvalid, fmt.Errorf("worker: --allow: %w", err)}
					}
					w.Allow = append(w.Allow, a)
					continue
				}
				abs, err := filepath.Abs(blobstore.LocalPath(a))
				if err != nil {
					return &exitError{exitInvalid, err}
				}
				w.Allow = append(w.Allow, abs)
			}
			if lockF != "" {
				if w.Lock, err = lock.Read(lockF); err != nil {
					return &exitError{exitInvalid, fmt.Errorf("worker: %w", err)}
				}
				ss.m.Lock(lockF, w.Lock.PluginSums())
			}
			opts, err := qf.options()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			if w.Q, err = queue.Connect(ss.ctx, qf.url, opts...); err != nil {
				return err
			}
			defer w.Q.Close()
			if p := os.Getenv("GENPIPE_WORKER_CPUPROFILE"); p != "" {
				// Where a worker's time goes, for tuning the queue.
				f, err := os.Create(p)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			return w.Run(ss.ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&qf.url, "queue", "", "the NATS server: nats://HOST:PORT")
	addConnFlags(fl, &qf)
	fl.StringVar(&name, "name", "", "the worker's name in records and logs (default HOST-PID)")
	fl.IntVar(&batch, "batch", 64, "items pulled and run at a time")
	fl.StringArrayVar(&allow, "allow", nil, "a folder or blob URL prefix (s3://bucket/prefix?endpoint=...) under which jobs may load and save (repeatable; default: anywhere)")
	fl.StringVar(&lockF, "lock", "", "run only jobs that carry this lock, with only the plugins and weights it pins")
	return cmd
}

// startWorkerSession is the signal context and plugin host of a worker
// (there is no file to check until a job arrives).
func startWorkerSession(cmd *cobra.Command) (*session, error) {
	s := &session{}
	s.ctx, s.stop = signalContext()
	m, err := newPluginHost(cmd.ErrOrStderr())
	if err != nil {
		return s, err
	}
	s.m = m
	return s, nil
}

func newStatusCmd() *cobra.Command {
	var qf queueFlags
	cmd := &cobra.Command{
		Use:     "status JOB --queue URL",
		Short:   "Show a queued job's progress: done, pending, in flight, dead-lettered (with reasons)",
		Example: `  pipeline status 3f2a9c0d1e4b5a67 --queue nats://nats:4222`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if qf.url == "" {
				return &exitError{exitInvalid, fmt.Errorf("status: --queue nats://HOST:PORT is required")}
			}
			ctx, stop := signalContext()
			defer stop()
			opts, err := qf.options()
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			q, err := queue.Connect(ctx, qf.url, opts...)
			if err != nil {
				return err
			}
			defer q.Close()
			st, err := q.Status(ctx, args[0])
			if err != nil {
				return &exitError{exitInvalid, err}
			}
			printStatus(cmd.OutOrStdout(), st, 0)
			if st.Dead > 0 {
				return &exitError{exitItemsFailed, fmt.Errorf("%d item(s) failed", st.Dead)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&qf.url, "queue", "", "the NATS server: nats://HOST:PORT")
	addConnFlags(fl, &qf)
	return cmd
}
