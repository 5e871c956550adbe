package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// listen runs s.Listen until the test ends and, once it has subscribed,
// returns a channel that receives one value per call of its callback.
func listen(t *testing.T, s *store.Stats) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	calls := make(chan struct{}, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Listen(ctx, func() { calls <- struct{}{} }); err != nil {
			t.Errorf("listen: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	// Listen has subscribed once a NOTIFY sent now arrives.
	deadline := time.Now().Add(5 * time.Second)
	for subscribed := false; !subscribed; {
		if _, err := s.DB().Exec(`SELECT pg_notify($1, '')`, store.NotifyChannel); err != nil {
			t.Fatal(err)
		}
		select {
		case <-calls:
			subscribed = true
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("listener never subscribed")
			}
		}
	}
	for len(calls) > 0 {
		<-calls
	}
	return calls
}

func expectCall(t *testing.T, calls <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-calls:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no notification within 5 s", what)
	}
}

func expectNoCall(t *testing.T, calls <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-calls:
		t.Fatalf("%s: unexpected notification", what)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestStats_Listen(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	calls := listen(t, s)

	t.Run("batch commits", func(t *testing.T) {
		if _, err := s.ApplyBatch(ctx, []store.Event{event("1-0", "pads", "alice", store.ActionLike, 1)}); err != nil {
			t.Fatal(err)
		}
		expectCall(t, calls, "new batch")
	})
	t.Run("replayed batch", func(t *testing.T) {
		// Nothing new: no rows changed, so nothing to announce.
		if _, err := s.ApplyBatch(ctx, []store.Event{event("1-0", "pads", "alice", store.ActionLike, 1)}); err != nil {
			t.Fatal(err)
		}
		expectNoCall(t, calls, "replayed batch")
	})
	t.Run("worker status", func(t *testing.T) {
		if err := s.RecordWorkerStatus(ctx, store.WorkerReport{Consumer: "w1"}); err != nil {
			t.Fatal(err)
		}
		expectCall(t, calls, "worker status")
	})
	t.Run("rolled back", func(t *testing.T) {
		tx, err := s.DB().Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`SELECT pg_notify($1, '')`, store.NotifyChannel); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		expectNoCall(t, calls, "rolled back")
	})
}

func TestStats_ListenStops(t *testing.T) {
	// PostgreSQL unreachable: Listen keeps retrying, and still returns
	// promptly when ctx is done.
	s, _ := store.OpenStats(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, func() {}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("got %v, want nil after ctx is done", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Listen did not return after ctx was done")
	}
}
