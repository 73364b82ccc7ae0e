package queue

import (
	"context"
	"testing"
	"time"
)

// TestSubmitManyItems publishes more items than the client's limit of
// outstanding asynchronous publishes (4,000; a 100,000-item job once
// stalled on it), then submits the same job again: nothing new.
func TestSubmitManyItems(t *testing.T) {
	srv, err := StartEmbedded(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := Connect(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 12345
	j := &Job{ID: "many", Name: "many", Source: "s", Total: n, AckWait: time.Minute, MaxDeliver: 3}
	items := func(yield func(Item) error) error {
		for i := 0; i < n; i++ {
			if err := yield(Item{Job: j.ID, Stage: "s", Index: i}); err != nil {
				return err
			}
		}
		return nil
	}
	exists, err := q.Submit(ctx, j, items)
	if err != nil || exists {
		t.Fatalf("submit: exists %v, %v", exists, err)
	}
	st, err := q.Status(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != n || st.Done != 0 || st.Finished() {
		t.Errorf("status after submit: %d pending, %d done, finished %v; want %d pending", st.Pending, st.Done, st.Finished(), n)
	}
	exists, err = q.Submit(ctx, j, items)
	if err != nil || !exists {
		t.Fatalf("second submit: exists %v, %v", exists, err)
	}
	if st, _ = q.Status(ctx, j.ID); st.Pending != n {
		t.Errorf("after the second submit %d pending, want %d", st.Pending, n)
	}
}
