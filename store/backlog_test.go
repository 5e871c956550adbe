package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// readAck delivers up to n new entries to consumer c of group g and
// acknowledges the first ack of them.
func readAck(t *testing.T, s *store.Likes, g string, n, ack int) {
	t.Helper()
	b, err := s.ReadNew(context.Background(), g, "c", n, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ack(context.Background(), g, ids(b)[:ack]); err != nil {
		t.Fatal(err)
	}
}

func wantBacklog(t *testing.T, s *store.Likes, want store.Backlog) {
	t.Helper()
	got, err := s.GroupBacklog(context.Background(), "g")
	if err != nil || got != want {
		t.Fatalf("backlog %+v (%v), want %+v", got, err, want)
	}
}

func TestLikes_GroupBacklog(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)

	t.Run("no stream", func(t *testing.T) { wantBacklog(t, s, store.Backlog{}) })
	addEvents(t, rdb, s, 40)
	t.Run("no group", func(t *testing.T) { wantBacklog(t, s, store.Backlog{Undelivered: 40}) })
	if err := s.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	t.Run("pending and undelivered", func(t *testing.T) {
		readAck(t, s, "g", 30, 10)
		wantBacklog(t, s, store.Backlog{Undelivered: 10, Pending: 20})
	})
	t.Run("lag counter wrong", func(t *testing.T) {
		readAck(t, s, "g", 100, 0)
		b, _ := s.ReadPending(ctx, "g", "c", "0", 100)
		if _, err := s.Ack(ctx, "g", ids(b)); err != nil {
			t.Fatal(err)
		}
		// What Redis 7.0 can report after a restart (redis/redis#13337):
		// a lag although everything was delivered.
		if err := rdb.Do(ctx, "XGROUP", "SETID", s.StreamKey(), "g", "$", "ENTRIESREAD", 1).Err(); err != nil {
			t.Fatal(err)
		}
		g, err := rdb.XInfoGroups(ctx, s.StreamKey()).Result()
		if err != nil || len(g) != 1 || g[0].Lag != 39 {
			t.Fatalf("xinfo groups %+v (%v): the forged lag did not take, the test proves nothing", g, err)
		}
		wantBacklog(t, s, store.Backlog{})
	})
	t.Run("long head, short tail", func(t *testing.T) {
		addEvents(t, rdb, s, 3000) // more than the script counts on one side (500)
		readAck(t, s, "g", 2990, 2990)
		wantBacklog(t, s, store.Backlog{Undelivered: 10})
	})
	t.Run("long head and tail", func(t *testing.T) {
		readAck(t, s, "g", 10, 10)
		addEvents(t, rdb, s, 5000)
		readAck(t, s, "g", 2500, 2500)
		// Too long to count on either side: an estimate, within the bounds
		// the counts proved (more than the 500 counted after the last
		// delivered id, fewer than XLEN less the 500 counted before).
		got, err := s.GroupBacklog(ctx, "g")
		n := rdb.XLen(ctx, s.StreamKey()).Val()
		if err != nil || !got.Estimated || got.Pending != 0 || got.Undelivered <= 500 || got.Undelivered > n-501 {
			t.Fatalf("backlog %+v (%v) of %d entries, want an estimate of the 2500 undelivered within (500, %d]", got, err, n, n-501)
		}
	})
}

// TestLikes_GroupBacklogRedisRestart restarts Redis (append-only file on)
// with entries undelivered and pending: the backlog reads the same after.
func TestLikes_GroupBacklogRedisRestart(t *testing.T) {
	ctx := context.Background()
	r := testkit.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := store.NewLikes(rdb, "t:")
	if err := s.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	want := store.Backlog{}
	for round := range 3 {
		addEvents(t, rdb, s, 500)
		readAck(t, s, "g", 450, 400)
		want.Undelivered, want.Pending = want.Undelivered+50, want.Pending+50
		if _, err := s.TrimAcked(ctx, "g"); err != nil {
			t.Fatal(err)
		}
		wantBacklog(t, s, want)
		if err := r.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: restarted", round+1)
		wantBacklog(t, s, want)
	}
}

func TestLikes_DeleteIdleConsumers(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	addEvents(t, rdb, s, 10)
	if err := s.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"idle", "busy", "self"} {
		b, err := s.ReadNew(ctx, "g", c, 1, 0)
		if err != nil || b.Len() != 1 {
			t.Fatalf("read as %s: %d entries (%v)", c, b.Len(), err)
		}
		if c != "busy" {
			if _, err := s.Ack(ctx, "g", ids(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	consumers := func() []string {
		cs, err := rdb.XInfoConsumers(ctx, s.StreamKey(), "g").Result()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range cs {
			names = append(names, c.Name)
		}
		slices.Sort(names)
		return names
	}
	t.Run("not idle long enough", func(t *testing.T) {
		gone, err := s.DeleteIdleConsumers(ctx, "g", "self", time.Hour)
		if err != nil || len(gone) != 0 {
			t.Fatalf("deleted %v (%v), want none", gone, err)
		}
	})
	t.Run("idle and empty", func(t *testing.T) {
		gone, err := s.DeleteIdleConsumers(ctx, "g", "self", 0)
		if err != nil || !slices.Equal(gone, []string{"idle"}) {
			t.Fatalf("deleted %v (%v), want [idle]", gone, err)
		}
		if got := consumers(); !slices.Equal(got, []string{"busy", "self"}) {
			t.Errorf("consumers left %v, want busy (it has a pending entry) and self", got)
		}
	})
	t.Run("no group", func(t *testing.T) {
		if gone, err := s.DeleteIdleConsumers(ctx, "other", "self", 0); err != nil || len(gone) != 0 {
			t.Fatalf("deleted %v (%v), want none", gone, err)
		}
	})
}

// BenchmarkLikes_GroupBacklog measures the backlog script in its usual
// state (a trimmed head of about one node, a short tail) and in its worst
// (both sides past the scan cap, so it reads 2 × 501 entries and estimates).
func BenchmarkLikes_GroupBacklog(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name              string
		head, undelivered int
	}{{"trimmed", 100, 50}, {"worst", 5000, 5000}} {
		b.Run(bc.name, func(b *testing.B) {
			rdb, prefix := testkit.Redis(b)
			s := store.NewLikes(rdb, prefix)
			addEvents(b, rdb, s, bc.head)
			if err := s.EnsureGroup(ctx, "g"); err != nil {
				b.Fatal(err)
			}
			if _, err := s.ReadNew(ctx, "g", "c", bc.head, 0); err != nil {
				b.Fatal(err)
			}
			addEvents(b, rdb, s, bc.undelivered)
			for b.Loop() {
				if _, err := s.GroupBacklog(ctx, "g"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
