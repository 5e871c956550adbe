package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// stateSummary is PostgreSQL's record of a batch's outcome: the like
// state, the net likes moved by it, the totals and the history kept.
type stateSummary struct {
	Liked    []string // "shopper/product", sorted
	Counters map[string]int64
	Totals   totals
	History  int64 // rows in like_events
}

func readState(t *testing.T, s *store.Stats) stateSummary {
	t.Helper()
	var st stateSummary
	if err := s.DB().Select(&st.Liked, `SELECT shopper_id || '/' || product_id FROM like_state WHERE liked ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	st.Counters = productLikes(t, s)
	for id, n := range st.Counters {
		if n == 0 {
			delete(st.Counters, id)
		}
	}
	st.Totals = readTotals(t, s)
	if err := s.DB().Get(&st.History, `SELECT count(*) FROM like_events`); err != nil {
		t.Fatal(err)
	}
	// The invariants every batch keeps.
	var check struct {
		Shoppers int64 `db:"shoppers"`
		Likes    int64 `db:"likes"`
		Off      int64 `db:"off"`
	}
	if err := s.DB().Get(&check, `SELECT (SELECT count(DISTINCT shopper_id) FROM like_state WHERE liked) AS shoppers,
    (SELECT count(*) FROM like_state WHERE liked) AS likes,
    (SELECT count(*) FROM product_counters c WHERE c.likes <> (SELECT count(*) FROM like_state l WHERE l.product_id = c.product_id AND l.liked)) AS off`); err != nil {
		t.Fatal(err)
	}
	if check.Shoppers != st.Totals.Shoppers || check.Likes != st.Totals.Likes || check.Off != 0 {
		t.Errorf("totals %+v, but like_state has %d likes by %d shoppers; %d products' counters differ from it",
			st.Totals, check.Likes, check.Shoppers, check.Off)
	}
	return st
}

func TestStats_ApplyBatchState(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	apply := func(t *testing.T, events ...store.Event) store.Applied {
		t.Helper()
		a, err := s.Apply(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	want := func(t *testing.T, liked []string, counters map[string]int64, tt totals, history int64) {
		t.Helper()
		got := readState(t, s)
		if !slices.Equal(got.Liked, liked) || fmt.Sprint(got.Counters) != fmt.Sprint(counters) || got.Totals != tt || got.History != history {
			t.Errorf("got %+v\nwant {Liked:%v Counters:%v Totals:%+v History:%d}", got, liked, counters, tt, history)
		}
	}
	t.Run("first like", func(t *testing.T) {
		apply(t, event("1-0", "pads", "alice", store.ActionLike, 1))
		want(t, []string{"alice/pads"}, map[string]int64{"pads": 1}, totals{Likes: 1, Shoppers: 1, Events: 1}, 1)
	})
	t.Run("like repeated after redis lost data", func(t *testing.T) {
		// Redis lost the like and said "changed" again: a new entry.
		a := apply(t, event("2-0", "pads", "alice", store.ActionLike, 1))
		if a.New != 1 || a.Changed != 0 {
			t.Errorf("applied %+v, want 1 new, 0 changed", a)
		}
		want(t, []string{"alice/pads"}, map[string]int64{"pads": 1}, totals{Likes: 1, Shoppers: 1, Events: 2}, 2)
	})
	t.Run("unlike of a like postgres does not have", func(t *testing.T) {
		apply(t, event("3-0", "tyre", "bob", store.ActionUnlike, 0))
		want(t, []string{"alice/pads"}, map[string]int64{"pads": 1}, totals{Likes: 1, Shoppers: 1, Events: 3}, 3)
	})
	t.Run("stream order within a batch", func(t *testing.T) {
		// Handed over out of order: like, unlike, like again.
		a := apply(t, event("4-2", "tyre", "carol", store.ActionLike, 2),
			event("4-0", "tyre", "carol", store.ActionLike, 1), event("4-1", "tyre", "carol", store.ActionUnlike, 0))
		if a.New != 3 || a.Changed != 3 {
			t.Errorf("applied %+v, want 3 new, 3 changed", a)
		}
		want(t, []string{"alice/pads", "carol/tyre"}, map[string]int64{"pads": 1, "tyre": 1}, totals{Likes: 2, Shoppers: 2, Events: 6}, 6)
	})
	t.Run("older unlike committed late", func(t *testing.T) {
		// Two workers: the batch with dave's like (6-0) commits before
		// the one with his earlier unlike (5-0).
		apply(t, event("6-0", "wiper", "dave", store.ActionLike, 1))
		a := apply(t, event("5-0", "wiper", "dave", store.ActionUnlike, 0))
		if a.New != 1 || a.Changed != 0 {
			t.Errorf("applied %+v, want 1 new, 0 changed", a)
		}
		want(t, []string{"alice/pads", "carol/tyre", "dave/wiper"}, map[string]int64{"pads": 1, "tyre": 1, "wiper": 1},
			totals{Likes: 3, Shoppers: 3, Events: 8}, 8)
	})
	t.Run("older like committed late", func(t *testing.T) {
		// The unlike (8-0) commits before the like it followed (7-0).
		apply(t, event("8-0", "wiper", "erin", store.ActionUnlike, 0))
		apply(t, event("7-0", "wiper", "erin", store.ActionLike, 1))
		want(t, []string{"alice/pads", "carol/tyre", "dave/wiper"}, map[string]int64{"pads": 1, "tyre": 1, "wiper": 1},
			totals{Likes: 3, Shoppers: 3, Events: 10}, 10)
	})
	t.Run("last like withdrawn", func(t *testing.T) {
		apply(t, event("9-0", "pads", "alice", store.ActionUnlike, 0), event("9-1", "wiper", "dave", store.ActionUnlike, 0))
		want(t, []string{"carol/tyre"}, map[string]int64{"tyre": 1}, totals{Likes: 1, Shoppers: 1, Events: 12}, 12)
	})
	t.Run("buckets count every event", func(t *testing.T) {
		var b struct {
			Likes   int64 `db:"likes"`
			Unlikes int64 `db:"unlikes"`
		}
		if err := s.DB().Get(&b, `SELECT sum(likes) AS likes, sum(unlikes) AS unlikes FROM like_buckets`); err != nil {
			t.Fatal(err)
		}
		if b.Likes != 6 || b.Unlikes != 6 {
			t.Errorf("buckets hold %d likes and %d unlikes, want 6 and 6", b.Likes, b.Unlikes)
		}
	})
}

func TestStats_ApplyBatchConflicts(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	stored := event("1-0", "pads", "alice", store.ActionLike, 1)
	if _, err := s.Apply(ctx, []store.Event{stored}); err != nil {
		t.Fatal(err)
	}
	parked := func(t *testing.T) int64 {
		t.Helper()
		var n int64
		if err := s.DB().Get(&n, `SELECT count(*) FROM event_conflicts`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	other := event("1-0", "tyre", "bob", store.ActionLike, 1)
	t.Run("different event under a stored id", func(t *testing.T) {
		a, err := s.Apply(ctx, []store.Event{other})
		if err != nil {
			t.Fatal(err)
		}
		if a.New != 0 || len(a.Conflicts) != 1 || a.Conflicts[0].Reason != store.ConflictDifferent ||
			a.Conflicts[0].Stored == nil || a.Conflicts[0].Stored.ProductID != "pads" || a.Conflicts[0].Event.ProductID != "tyre" {
			t.Fatalf("applied %+v, want one conflict of tyre with the stored pads", a)
		}
		var row struct {
			Product       string `db:"product_id"`
			StoredProduct string `db:"stored_product_id"`
			StoredShopper string `db:"stored_shopper_id"`
		}
		if err := s.DB().Get(&row, `SELECT product_id, stored_product_id, stored_shopper_id FROM event_conflicts`); err != nil {
			t.Fatal(err)
		}
		if row.Product != "tyre" || row.StoredProduct != "pads" || row.StoredShopper != "alice" {
			t.Errorf("parked %+v, want tyre beside the stored pads by alice", row)
		}
		if got := readState(t, s); got.Totals != (totals{Likes: 1, Shoppers: 1, Events: 1}) || got.History != 1 {
			t.Errorf("state %+v: the conflict changed it", got)
		}
	})
	t.Run("redelivered conflict", func(t *testing.T) {
		a, err := s.Apply(ctx, []store.Event{other, stored})
		if err != nil {
			t.Fatal(err)
		}
		if a.New != 0 || len(a.Conflicts) != 1 || parked(t) != 1 {
			t.Errorf("applied %+v with %d parked, want the one conflict again, parked once", a, parked(t))
		}
	})
	t.Run("same id on another shard", func(t *testing.T) {
		e := other
		e.Shard = 1
		a, err := s.Apply(ctx, []store.Event{e})
		if err != nil {
			t.Fatal(err)
		}
		if a.New != 1 || len(a.Conflicts) != 0 {
			t.Errorf("applied %+v, want 1 new event and no conflict", a)
		}
	})
	t.Run("within one batch", func(t *testing.T) {
		a, err := s.Apply(ctx, []store.Event{event("2-0", "wiper", "carol", store.ActionLike, 1), event("2-0", "wiper", "dave", store.ActionLike, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if a.New != 1 || len(a.Conflicts) != 1 || parked(t) != 2 {
			t.Errorf("applied %+v with %d parked, want 1 new and 1 conflict", a, parked(t))
		}
	})
}

func TestStats_MaintainHistory(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	now := time.Now()
	at := func(id string, age time.Duration, product, shopper string, a store.Action) store.Event {
		e := event(fmt.Sprintf("%d-%s", now.Add(-age).UnixMilli(), id), product, shopper, a, 1)
		e.At = now.Add(-age)
		return e
	}
	day := 24 * time.Hour
	old := at("0", 40*day, "pads", "alice", store.ActionLike)
	recent := at("0", 10*day, "tyre", "bob", store.ActionLike)
	events := []store.Event{old, recent, at("0", 0, "tyre", "alice", store.ActionLike), at("1", 0, "wiper", "carol", store.ActionLike), at("2", 0, "wiper", "carol", store.ActionUnlike)}
	if _, err := s.Apply(ctx, events); err != nil {
		t.Fatal(err)
	}
	before := readState(t, s)
	r, err := s.MaintainHistory(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Today and two days ahead, and the two old days out of the default.
	if r.Created != 5 || len(r.Dropped) != 0 || !r.KeptFrom.IsZero() {
		t.Errorf("without retention: %+v, want 5 partitions created, none dropped", r)
	}
	var inDefault int
	if err := s.DB().Get(&inDefault, `SELECT count(*) FROM like_events_default`); err != nil {
		t.Fatal(err)
	}
	if inDefault != 0 {
		t.Errorf("%d events left in the default partition", inDefault)
	}
	r, err = s.MaintainHistory(ctx, 30*day)
	if err != nil {
		t.Fatal(err)
	}
	if want := "like_events_" + now.Add(-40*day).UTC().Format("20060102"); len(r.Dropped) != 1 || r.Dropped[0] != want || r.Created != 0 {
		t.Errorf("with retention: %+v, want %s dropped", r, want)
	}
	after := readState(t, s)
	if fmt.Sprint(after.Liked, after.Counters, after.Totals) != fmt.Sprint(before.Liked, before.Counters, before.Totals) || after.History != before.History-1 {
		t.Errorf("after retention %+v, want %+v with one event less", after, before)
	}
	t.Run("replays", func(t *testing.T) {
		a, err := s.Apply(ctx, []store.Event{old, recent})
		if err != nil {
			t.Fatal(err)
		}
		if a.New != 0 || len(a.Conflicts) != 1 || a.Conflicts[0].Reason != store.ConflictExpired || a.Conflicts[0].Event.ID != old.ID {
			t.Errorf("replayed %+v, want the old one parked as expired", a)
		}
		if got := readState(t, s); fmt.Sprint(got) != fmt.Sprint(after) {
			t.Errorf("after replays %+v, want %+v", got, after)
		}
	})
	t.Run("again", func(t *testing.T) {
		r, err := s.MaintainHistory(ctx, 30*day)
		if err != nil {
			t.Fatal(err)
		}
		if r.Created != 0 || len(r.Dropped) != 0 || r.KeptFrom.After(now.Add(-30*day)) {
			t.Errorf("second run %+v, want nothing to do", r)
		}
	})
}
