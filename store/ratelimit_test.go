package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/store/storetest"
)

// slowRate allows a burst of 3, then one request a minute: no test run is
// slow enough to see the refill.
var slowRate = store.Rate{Interval: time.Minute, Burst: 3}

func TestLimiter_Allow(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := storetest.Redis(t)
	l := store.NewLimiter(rdb, prefix+"rate:")
	a, b := store.Hit{Key: "a", Rate: slowRate}, store.Hit{Key: "b", Rate: slowRate}
	for i := range 3 {
		if ok, _, err := l.Allow(ctx, a); err != nil || !ok {
			t.Fatalf("request %d: allowed %v, %v; want allowed", i+1, ok, err)
		}
	}
	ok, retry, err := l.Allow(ctx, b, a)
	if err != nil || ok || retry <= 0 || retry > time.Minute {
		t.Fatalf("over the burst: allowed %v, retry %v, %v; want refused with 0 < retry <= 1m", ok, retry, err)
	}
	// All or nothing: the refused call did not charge b.
	for i := range 3 {
		if ok, _, err := l.Allow(ctx, b); err != nil || !ok {
			t.Fatalf("b request %d: allowed %v, %v; want allowed", i+1, ok, err)
		}
	}
	if ok, _, err := l.Allow(ctx, store.Hit{Key: "c"}); err != nil || !ok {
		t.Errorf("disabled rate: allowed %v, %v", ok, err)
	}
}

// TestLikes_SetCharge checks the Like that charges its limits in its own
// script: within the limit it likes, over it it changes nothing.
func TestLikes_SetCharge(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := storetest.Redis(t)
	s := store.NewLikes(rdb, prefix)
	charge := store.NewLimiter(rdb, prefix+"rate:").Charge(store.Hit{Key: "alice", Rate: slowRate})
	for i, a := range []store.Action{store.ActionLike, store.ActionUnlike, store.ActionLike} {
		if res, err := s.Set(ctx, "alice", "pads", a, charge); err != nil || !res.Changed {
			t.Fatalf("request %d: %+v, %v; want a change", i+1, res, err)
		}
	}
	events, err := rdb.XLen(ctx, s.StreamKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Set(ctx, "alice", "pads", store.ActionUnlike, charge)
	var limited *store.LimitedError
	if !errors.As(err, &limited) || limited.RetryAfter <= 0 {
		t.Fatalf("over the limit: %v; want a LimitedError with a retry time", err)
	}
	counts, liked, err := s.View(ctx, "alice", []string{"pads"})
	if err != nil {
		t.Fatal(err)
	}
	after, err := rdb.XLen(ctx, s.StreamKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if counts["pads"] != 1 || !liked["pads"] || after != events {
		t.Errorf("refused unlike changed something: count %d, liked %v, events %d -> %d", counts["pads"], liked["pads"], events, after)
	}
	// Without limits the same shopper is not limited.
	if res, err := s.Set(ctx, "alice", "pads", store.ActionUnlike, store.Charge{}); err != nil || !res.Changed {
		t.Errorf("unlimited unlike: %+v, %v", res, err)
	}
}
