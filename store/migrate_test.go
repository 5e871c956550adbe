package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// TestStats_MigrateLikeState upgrades a database written before the like
// state existed: the state, the stream mark and the counters come from the
// history, and every old event is shard 0's.
func TestStats_MigrateLikeState(t *testing.T) {
	ctx := context.Background()
	s := statsAt(t, 5)
	// alice liked pads and tyre, then unliked tyre; bob liked pads, Redis
	// lost it and he liked it again, counted twice by the old worker.
	for _, q := range []string{
		`INSERT INTO like_events (stream_id, product_id, shopper_id, action, at) VALUES
			('1000-0', 'pads', 'alice', 'like', '2025-03-01 12:00:00+00'),
			('1000-1', 'tyre', 'alice', 'like', '2025-03-01 12:00:01+00'),
			('86401000-0', 'tyre', 'alice', 'unlike', '2025-03-02 12:00:00+00'),
			('2000-0', 'pads', 'bob', 'like', '2025-03-01 12:00:02+00'),
			('2000-1', 'pads', 'bob', 'like', '2025-03-01 12:00:03+00')`,
		`INSERT INTO product_counters (product_id, likes, like_events, unlike_events) VALUES ('pads', 3, 3, 0), ('tyre', 0, 1, 1)`,
		`UPDATE totals SET likes = 3, shoppers = 2, events = 5`,
	} {
		if _, err := s.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st := readState(t, s) // checks totals and counters against like_state
	if want := "[alice/pads bob/pads]"; fmtList(st.Liked) != want || st.Counters["pads"] != 2 || st.History != 5 {
		t.Errorf("after the upgrade %+v, want %s, pads 2, 5 events", st, want)
	}
	var mark struct {
		Shard int   `db:"shard"`
		MS    int64 `db:"last_ms"`
		Seq   int64 `db:"last_seq"`
	}
	if err := s.DB().Get(&mark, `SELECT shard, last_ms, last_seq FROM stream_marks`); err != nil {
		t.Fatal(err)
	}
	if mark.Shard != 0 || mark.MS != 86401000 || mark.Seq != 0 {
		t.Errorf("stream mark %+v, want shard 0 at 86401000-0", mark)
	}
	var other, parts int
	if err := s.DB().Get(&other, `SELECT count(*) FROM like_events WHERE shard <> 0`); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Get(&parts, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'like_events'::regclass`); err != nil {
		t.Fatal(err)
	}
	if other != 0 || parts != 3 { // 1970-01-01, 1970-01-02, default
		t.Errorf("%d events on other shards, %d partitions; want 0 and 3", other, parts)
	}
	// The first event after the upgrade sees the history: a replay of an
	// old id is ignored, the state moves on from the backfill.
	a, err := s.Apply(ctx, []store.Event{
		{ID: "2000-1", ProductID: "pads", ShopperID: "bob", Action: store.ActionLike, At: mustTime(t, "2025-03-01T12:00:03Z")},
		{ID: "90000000-0", ProductID: "pads", ShopperID: "bob", Action: store.ActionUnlike, At: mustTime(t, "2025-03-03T12:00:00Z")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := readState(t, s); a.New != 1 || a.Changed != 1 || fmtList(st.Liked) != "[alice/pads]" {
		t.Errorf("applied %+v, state %+v; want the replay ignored and bob's unlike applied", a, st)
	}
}

// statsAt opens a new database migrated up to version only, as an older
// Phoenix left it.
func statsAt(t *testing.T, version int64) *store.Stats {
	t.Helper()
	s, err := store.OpenStats(context.Background(), testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.MigrateTo(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return s
}

func fmtList(l []string) string { return "[" + strings.Join(l, " ") + "]" }

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestStats_MigrateTombstones upgrades a database whose unliked pairs were
// kept apart (like_gone): they become like_state rows that are not liked,
// with the position of their last event, so an older event arriving late
// still changes nothing.
func TestStats_MigrateTombstones(t *testing.T) {
	ctx := context.Background()
	s := statsAt(t, 11)
	// bob likes pads; alice liked pads (1000-0) and unliked it (3000-0).
	for _, q := range []string{
		`INSERT INTO like_state (shopper_id, product_id, shard, liked_at, last_ms, last_seq) VALUES ('bob', 'pads', 0, '2025-03-01 12:00:00+00', 2000, 0)`,
		`INSERT INTO like_gone (shopper_id, product_id, shard, last_ms, last_seq) VALUES ('alice', 'pads', 0, 3000, 0)`,
		`INSERT INTO product_counters (product_id, likes, like_events, unlike_events) VALUES ('pads', 1, 2, 1)`,
		`UPDATE totals SET likes = 1, shoppers = 1, events = 3`,
	} {
		if _, err := s.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Pair  string `db:"pair"`
		Liked bool   `db:"liked"`
		MS    int64  `db:"last_ms"`
	}
	if err := s.DB().Select(&rows, `SELECT shopper_id || '/' || product_id AS pair, liked, last_ms FROM like_state ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != "[{alice/pads false 3000} {bob/pads true 2000}]" {
		t.Errorf("like_state after the upgrade %v, want alice's pair unliked at 3000 and bob's liked", rows)
	}
	// A Like of alice's older than her Unlike: recorded, changes nothing.
	a, err := s.Apply(ctx, []store.Event{{ID: "2500-0", ProductID: "pads", ShopperID: "alice", Action: store.ActionLike, At: mustTime(t, "2025-03-01T12:00:02Z")}})
	if err != nil {
		t.Fatal(err)
	}
	if st := readState(t, s); a.New != 1 || a.Changed != 0 || fmtList(st.Liked) != "[bob/pads]" || st.Counters["pads"] != 1 {
		t.Errorf("applied %+v, state %+v; want the late Like stored and ignored", a, st)
	}
}
