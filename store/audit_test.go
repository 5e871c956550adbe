package store_test

import (
	"context"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

func TestRunAudit(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	likes := store.NewLikes(rdb, prefix)
	stats := testkit.Stats(t)
	const group = "audit"
	audit := func(t *testing.T) store.Audit {
		t.Helper()
		a, err := store.RunAudit(ctx, likes, stats, group)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	click := func(shopper, product string, like bool) {
		t.Helper()
		var err error
		if like {
			_, err = likes.Like(ctx, shopper, product)
		} else {
			_, err = likes.Unlike(ctx, shopper, product)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// drain plays the worker: read, commit, then acknowledge.
	drain := func(t *testing.T, n int) {
		t.Helper()
		b, err := likes.ReadNew(ctx, group, "c1", n, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stats.ApplyBatch(ctx, b.Events); err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(b.Events))
		for i, e := range b.Events {
			ids[i] = e.ID
		}
		if _, err := likes.Ack(ctx, group, ids); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("empty", func(t *testing.T) {
		a := audit(t)
		if !a.Final() || len(a.Rows) != 0 {
			t.Fatalf("got %+v, want a final audit with no rows", a)
		}
	})

	click("alice", "pads", true)
	click("bob", "pads", true)
	click("alice", "tyre", true)
	click("alice", "pads", false)

	t.Run("no worker yet", func(t *testing.T) {
		a := audit(t)
		if a.Final() || a.Backlog.Total() != 4 {
			t.Fatalf("backlog %+v final %v, want 4 waiting and not final", a.Backlog, a.Final())
		}
		if m := a.Mismatches(); len(m) != 0 {
			t.Fatalf("mismatches %+v: the waiting events should explain the live counts", m)
		}
		if tot := a.Totals(); tot.Live != 2 || tot.Waiting != 2 || tot.Counter != 0 {
			t.Fatalf("totals %+v, want live 2, waiting 2, stored 0", tot)
		}
	})

	if err := likes.EnsureGroup(ctx, group); err != nil {
		t.Fatal(err)
	}
	t.Run("pending and undelivered", func(t *testing.T) {
		// Delivered but not acknowledged: still waiting.
		if _, err := likes.ReadNew(ctx, group, "c0", 1, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		a := audit(t)
		if a.Backlog.Pending != 1 || a.Backlog.Undelivered != 3 {
			t.Fatalf("backlog %+v, want 1 pending and 3 undelivered", a.Backlog)
		}
		if m := a.Mismatches(); len(m) != 0 || a.Totals().Waiting != 2 {
			t.Fatalf("mismatches %+v, totals %+v", m, a.Totals())
		}
		if _, _, err := likes.Claim(ctx, group, "c1", 0, "0-0", 10); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("drained", func(t *testing.T) {
		// c1 now owns the claimed entry; process it with the rest.
		b, err := likes.ReadPending(ctx, group, "c1", "0", 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stats.ApplyBatch(ctx, b.Events); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			if _, err := likes.Ack(ctx, group, []string{e.ID}); err != nil {
				t.Fatal(err)
			}
		}
		drain(t, 10)
		a := audit(t)
		if !a.Final() {
			t.Fatalf("backlog %+v stable %v, want final", a.Backlog, a.Stable)
		}
		want := []store.AuditRow{
			{ProductID: "pads", Live: 1, Counter: 1, Events: 1},
			{ProductID: "tyre", Live: 1, Counter: 1, Events: 1},
		}
		if len(a.Rows) != len(want) {
			t.Fatalf("rows %+v, want %+v", a.Rows, want)
		}
		for i := range want {
			if a.Rows[i] != want[i] {
				t.Errorf("row %d: got %+v, want %+v", i, a.Rows[i], want[i])
			}
		}
	})

	t.Run("counter off", func(t *testing.T) {
		if _, err := stats.DB().Exec(`UPDATE product_counters SET likes = likes + 1 WHERE product_id = 'pads'`); err != nil {
			t.Fatal(err)
		}
		m := audit(t).Mismatches()
		if len(m) != 1 || m[0].ProductID != "pads" || m[0].Problem() == "" {
			t.Fatalf("mismatches %+v, want pads", m)
		}
		if _, err := stats.DB().Exec(`UPDATE product_counters SET likes = likes - 1 WHERE product_id = 'pads'`); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("event lost", func(t *testing.T) {
		// A Like in Redis whose event never reached PostgreSQL.
		if err := rdb.HIncrBy(ctx, likes.CountsKey(), "tyre", 1).Err(); err != nil {
			t.Fatal(err)
		}
		a := audit(t)
		m := a.Mismatches()
		if !a.Final() || len(m) != 1 || m[0].ProductID != "tyre" {
			t.Fatalf("final %v, mismatches %+v, want tyre", a.Final(), m)
		}
	})
}
