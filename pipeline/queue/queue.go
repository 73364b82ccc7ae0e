// Package queue runs a pipeline's items across machines through a NATS
// JetStream work queue. A submitter plans and validates the job once,
// stores it (the YAML, its folder, overrides, seed and lock) under the job
// id, and publishes one message per source item; workers anywhere pull
// items in batches, run the stages on them, write each output atomically
// under its deterministic name, and acknowledge an item only after its
// outputs are on disk.
//
// Delivery is at least once: JetStream redelivers an item whose worker died
// or stalled past the ack wait, and it does not promise exactly-once
// delivery. The effects are exactly once all the same: outputs have
// deterministic names and are written atomically, and a redelivered item
// whose outputs exist is acknowledged without work (the engine's resume).
//
// Subjects: genpipe.work.JOB (stream GENPIPE_WORK, work-queue retention:
// a message is gone once acknowledged), genpipe.done.JOB and
// genpipe.dead.JOB (stream GENPIPE_EVENTS: one record per finished or
// dead-lettered item), and the job records in the key-value bucket
// genpipe-jobs.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the JetStream assets the queue uses.
const (
	StreamWork   = "GENPIPE_WORK"
	StreamEvents = "GENPIPE_EVENTS"
	BucketJobs   = "genpipe-jobs"
)

// Job is what a submitter stores: everything a worker needs to run the
// job's items, so a job is self-contained.
type Job struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// File is the pipeline file's name and Dir its folder as the
	// submitter saw it: relative paths in the pipeline resolve against
	// Dir, which must be the same on every worker (shared storage).
	File string `json:"file"`
	Dir  string `json:"dir"`
	// YAML is the pipeline file's bytes; Sets its --set overrides.
	YAML []byte   `json:"yaml"`
	Sets []string `json:"sets,omitempty"`
	Seed uint64   `json:"seed"`
	// Lock is the lock file's bytes (pipeline lock); workers refuse the job
	// unless it equals their own.
	Lock []byte `json:"lock,omitempty"`
	// Source is the id of the source stage whose items the messages name,
	// Total how many were published.
	Source string `json:"source"`
	Total  int    `json:"total"`
	// AckWait is how long a worker may hold an item without a sign of
	// life before it is redelivered; MaxDeliver how many deliveries an
	// item gets before it is dead-lettered.
	AckWait    time.Duration `json:"ack_wait"`
	MaxDeliver int           `json:"max_deliver"`
	Created    time.Time     `json:"created"`
}

// Item is one work message: a source item of a job.
type Item struct {
	Job   string `json:"job"`
	Stage string `json:"stage"`
	Index int    `json:"index"`
}

// Key is the item's id within its job (and its Nats-Msg-Id after the job's).
func (it Item) Key() string { return it.Stage + "." + strconv.Itoa(it.Index) }

// Record is a done or dead-letter record.
type Record struct {
	Item
	Worker string `json:"worker,omitempty"`
	// Deliveries is the delivery that finished the item (1: the first);
	// Reasons, for dead-lettered items, why the tries failed.
	Deliveries int       `json:"deliveries,omitempty"`
	Reasons    []string  `json:"reasons,omitempty"`
	Time       time.Time `json:"time"`
}

// Queue is a connection to the queue's JetStream assets.
type Queue struct {
	NC   *nats.Conn
	JS   jetstream.JetStream
	jobs jetstream.KeyValue
}

// Connect connects to the NATS server at url and makes sure the streams
// and the bucket exist (creating them with file storage when they do not).
func Connect(ctx context.Context, url string, opts ...nats.Option) (*Queue, error) {
	opts = append([]nats.Option{nats.Name("genpipe"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("queue: connect %s: %w", url, err)
	}
	q, err := open(ctx, nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return q, nil
}

func open(ctx context.Context, nc *nats.Conn) (*Queue, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamWork, Subjects: []string{"genpipe.work.*"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
		// A resubmission within this window publishes nothing new; later
		// ones are caught by the job record (and, at worst, by the
		// outputs that exist).
		Duplicates: 10 * time.Minute,
	}); err != nil {
		return nil, fmt.Errorf("queue: stream %s: %w", StreamWork, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: StreamEvents, Subjects: []string{"genpipe.done.*", "genpipe.dead.*", "genpipe.refused.*"},
		Storage: jetstream.FileStorage, Duplicates: 10 * time.Minute,
	}); err != nil {
		return nil, fmt.Errorf("queue: stream %s: %w", StreamEvents, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketJobs, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("queue: bucket %s: %w", BucketJobs, err)
	}
	return &Queue{NC: nc, JS: js, jobs: kv}, nil
}

// Close closes the connection.
func (q *Queue) Close() { q.NC.Close() }

// ErrNoJob is returned for a job id the queue does not hold.
var ErrNoJob = errors.New("no such job")

// Job reads a job record.
func (q *Queue) Job(ctx context.Context, id string) (*Job, error) {
	e, err := q.jobs.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("job %s: %w", id, ErrNoJob)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: job %s: %w", id, err)
	}
	var j Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return nil, fmt.Errorf("queue: job %s: %w", id, err)
	}
	return &j, nil
}

// Jobs lists the ids of the jobs the queue holds.
func (q *Queue) Jobs(ctx context.Context) ([]string, error) {
	l, err := q.jobs.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: jobs: %w", err)
	}
	var ids []string
	for k := range l.Keys() {
		ids = append(ids, k)
	}
	if errors.Is(l.Stop(), jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	return ids, nil
}

// consumerName is the durable pull consumer all workers of a job share.
func consumerName(job string) string { return "work-" + job }

// consumer returns (creating it when needed) the job's shared consumer.
func (q *Queue) consumer(ctx context.Context, j *Job) (jetstream.Consumer, error) {
	c, err := q.JS.CreateOrUpdateConsumer(ctx, StreamWork, jetstream.ConsumerConfig{
		Durable:       consumerName(j.ID),
		FilterSubject: "genpipe.work." + j.ID,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       j.AckWait,
		MaxDeliver:    j.MaxDeliver,
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: consumer for job %s: %w", j.ID, err)
	}
	return c, nil
}

// Submit stores the job and publishes its items, each with Nats-Msg-Id
// JOB/KEY. A job id the queue already holds publishes nothing and reports
// exists: the same submission twice does no double work.
func (q *Queue) Submit(ctx context.Context, j *Job, items func(yield func(Item) error) error) (exists bool, err error) {
	b, err := json.Marshal(j)
	if err != nil {
		return false, err
	}
	if _, err := q.jobs.Create(ctx, j.ID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return true, nil
		}
		return false, fmt.Errorf("queue: store job %s: %w", j.ID, err)
	}
	if _, err := q.consumer(ctx, j); err != nil {
		return false, err
	}
	subj := "genpipe.work." + j.ID
	var futures []jetstream.PubAckFuture
	// settle waits for the acks outstanding, so a million items do not
	// sit in memory as futures.
	settle := func() error {
		select {
		case <-q.JS.PublishAsyncComplete():
		case <-ctx.Done():
			return ctx.Err()
		}
		for _, f := range futures {
			select {
			case err := <-f.Err():
				return fmt.Errorf("queue: publish: %w", err)
			default:
			}
		}
		futures = futures[:0]
		return nil
	}
	err = items(func(it Item) error {
		data, _ := json.Marshal(it)
		f, err := q.JS.PublishAsync(subj, data, jetstream.WithMsgID(j.ID+"/"+it.Key()))
		if err != nil {
			return fmt.Errorf("queue: publish item %s: %w", it.Key(), err)
		}
		futures = append(futures, f)
		if len(futures) == 1000 { // below the client's 4,000 outstanding async publishes
			return settle()
		}
		return nil
	})
	if err == nil {
		err = settle()
	}
	return false, err
}

// Status is a job's progress.
type Status struct {
	Job *Job
	// Done and Dead count distinct items finished and dead-lettered;
	// Pending are published and not yet delivered (or back for
	// redelivery); InFlight are held by a worker.
	Done, Dead, Pending, InFlight int
	// DeadItems are the dead-letter records (with reasons).
	DeadItems []Record
	// Refused are the workers' refusals of the whole job (with reasons):
	// a job no worker accepts runs nothing.
	Refused []Record
}

// Finished reports whether every item is done or dead-lettered.
func (s *Status) Finished() bool { return s.Done+s.Dead >= s.Job.Total }

// Status reads a job's progress.
func (q *Queue) Status(ctx context.Context, id string) (*Status, error) {
	j, err := q.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &Status{Job: j}
	ev, err := q.JS.Stream(ctx, StreamEvents)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	done, err := subjectCount(ctx, ev, "genpipe.done."+id)
	if err != nil {
		return nil, err
	}
	dead, err := subjectCount(ctx, ev, "genpipe.dead."+id)
	if err != nil {
		return nil, err
	}
	st.Done, st.Dead = done, dead
	c, err := q.JS.Consumer(ctx, StreamWork, consumerName(id))
	if err == nil {
		info, err := c.Info(ctx)
		if err == nil {
			st.Pending, st.InFlight = int(info.NumPending), info.NumAckPending
		}
	}
	if dead > 0 {
		if st.DeadItems, err = q.records(ctx, "dead", id); err != nil {
			return nil, err
		}
	}
	if n, err := subjectCount(ctx, ev, "genpipe.refused."+id); err != nil {
		return nil, err
	} else if n > 0 {
		if st.Refused, err = q.records(ctx, "refused", id); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func subjectCount(ctx context.Context, s jetstream.Stream, subj string) (int, error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	return int(info.State.Subjects[subj]), nil
}

// records reads a job's records of a kind (dead, refused).
func (q *Queue) records(ctx context.Context, kind, id string) ([]Record, error) {
	c, err := q.JS.OrderedConsumer(ctx, StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"genpipe." + kind + "." + id}})
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var out []Record
	for {
		m, err := c.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if err != nil {
			break // no more within the wait
		}
		var r Record
		if json.Unmarshal(m.Data(), &r) == nil {
			out = append(out, r)
		}
		if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
			break
		}
	}
	return out, nil
}

// record publishes a done or dead record, deduplicated per item.
func (q *Queue) record(ctx context.Context, kind string, r Record) error {
	data, _ := json.Marshal(r)
	id := kind + "/" + r.Job + "/" + r.Key()
	if kind == "refused" {
		id += "/" + r.Worker // each worker's refusal is news
	}
	_, err := q.JS.Publish(ctx, "genpipe."+kind+"."+r.Job, data, jetstream.WithMsgID(id))
	return err
}

// Records reads a job's records of a kind: "done", "dead" or "refused".
func (q *Queue) Records(ctx context.Context, kind, id string) ([]Record, error) {
	return q.records(ctx, kind, id)
}

// recordAll publishes records of a kind together and waits until the
// server has stored every one.
func (q *Queue) recordAll(ctx context.Context, kind string, rs []Record) error {
	var fs []jetstream.PubAckFuture
	for _, r := range rs {
		data, _ := json.Marshal(r)
		f, err := q.JS.PublishAsync("genpipe."+kind+"."+r.Job, data, jetstream.WithMsgID(kind+"/"+r.Job+"/"+r.Key()))
		if err != nil {
			return fmt.Errorf("queue: record: %w", err)
		}
		fs = append(fs, f)
	}
	for _, f := range fs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("queue: record: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
