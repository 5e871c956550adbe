package store_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// slowRate allows a burst of 3, then one request a minute: no test run is
// slow enough to see the refill.
var slowRate = store.Rate{Interval: time.Minute, Burst: 3}

// TestLikes_SetLimits checks the limits charged inside the Like's script:
// within them it likes, over one it changes nothing, and a shopper's limit
// is not another's.
func TestLikes_SetLimits(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		opt   store.LikesOptions
		other store.LikeInput // not limited by alice's use
	}{
		{"per shopper", store.LikesOptions{PerShopper: slowRate}, store.LikeInput{Shopper: "bob", ClientIP: "192.0.2.1"}},
		{"per address", store.LikesOptions{PerIP: slowRate}, store.LikeInput{Shopper: "alice", ClientIP: "192.0.2.2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := testkit.Likes(t, tt.opt)
			in := store.LikeInput{Shopper: "alice", ClientIP: "192.0.2.1", Product: "pads"}
			for i, a := range []store.Action{store.ActionLike, store.ActionUnlike, store.ActionLike} {
				in.Action = a
				if res, err := s.Set(ctx, in); err != nil || !res.Changed {
					t.Fatalf("request %d: %+v, %v; want a change", i+1, res, err)
				}
			}
			events := xlen(t, s)
			in.Action = store.ActionUnlike
			_, err := s.Set(ctx, in)
			var limited *store.LimitedError
			if !errors.As(err, &limited) || limited.RetryAfter <= 0 || limited.RetryAfter > time.Minute {
				t.Fatalf("over the limit: %v; want a LimitedError with 0 < retry <= 1m", err)
			}
			counts, liked, err := s.View(ctx, "alice", []string{"pads"})
			if err != nil {
				t.Fatal(err)
			}
			if after := xlen(t, s); counts["pads"] != 1 || !liked["pads"] || after != events {
				t.Errorf("refused unlike changed something: count %d, liked %v, events %d -> %d", counts["pads"], liked["pads"], events, after)
			}
			other := tt.other
			other.Product, other.Action = "disc", store.ActionLike
			if res, err := s.Set(ctx, other); err != nil || !res.Changed {
				t.Errorf("%+v: %+v, %v; want a change", other, res, err)
			}
		})
	}
}

// TestLikes_SetBusy checks back-pressure: at the bound a Like is refused
// with ErrBusy and changes nothing, and no event is trimmed.
func TestLikes_SetBusy(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	const bound = 3
	s := store.NewLikes(rdb, prefix, store.LikesOptions{MaxBacklog: bound})
	for i := range bound {
		if _, err := s.Set(ctx, store.LikeInput{Shopper: "s" + strconv.Itoa(i), Product: "pads", Action: store.ActionLike}); err != nil {
			t.Fatalf("like %d under the bound: %v", i+1, err)
		}
	}
	_, err := s.Set(ctx, store.LikeInput{Shopper: "late", Product: "pads", Action: store.ActionLike})
	if !errors.Is(err, store.ErrBusy) {
		t.Fatalf("like at the bound: %v, want ErrBusy", err)
	}
	counts, liked, err := s.View(ctx, "late", []string{"pads"})
	if err != nil {
		t.Fatal(err)
	}
	if n := xlen(t, s); counts["pads"] != bound || liked["pads"] || n != bound {
		t.Errorf("busy like changed something: count %d, liked %v, events %d", counts["pads"], liked["pads"], n)
	}
	if _, err := store.NewLikes(rdb, prefix).Like(ctx, "late", "pads"); err != nil {
		t.Errorf("no bound: %v", err)
	}
}

// TestLikes_SetTime checks that the event time is Redis's, not the caller's.
func TestLikes_SetTime(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	if _, err := s.Like(ctx, "alice", "pads"); err != nil {
		t.Fatal(err)
	}
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := rdb.XRange(ctx, s.StreamKey(), "-", "+").Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("stream: %v, %v", msgs, err)
	}
	ms, err := strconv.ParseInt(msgs[0].Values["at"].(string), 10, 64)
	if err != nil {
		t.Fatalf("at = %q: %v", msgs[0].Values["at"], err)
	}
	if d := now.Sub(time.UnixMilli(ms)); d < 0 || d > 5*time.Second {
		t.Errorf("event at %v, Redis time %v", time.UnixMilli(ms), now)
	}
}

// TestLikes_Admit checks the limit on new shopper ids per address.
func TestLikes_Admit(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix, store.LikesOptions{NewShoppersPerIP: slowRate})
	for i := range slowRate.Burst {
		if err := s.Admit(ctx, "192.0.2.1"); err != nil {
			t.Fatalf("shopper %d: %v", i+1, err)
		}
	}
	var limited *store.LimitedError
	if err := s.Admit(ctx, "192.0.2.1"); !errors.As(err, &limited) {
		t.Fatalf("over the burst: %v, want a LimitedError", err)
	}
	if err := s.Admit(ctx, "192.0.2.2"); err != nil {
		t.Errorf("another address: %v", err)
	}
	if err := store.NewLikes(rdb, prefix).Admit(ctx, "192.0.2.1"); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

// TestLikes_Known checks the look-up that keeps an unsigned shopper id.
func TestLikes_Known(t *testing.T) {
	ctx := context.Background()
	s := testkit.Likes(t)
	if _, err := s.Like(ctx, "alice", "pads"); err != nil {
		t.Fatal(err)
	}
	for shopper, want := range map[string]bool{"alice": true, "bob": false} {
		if got, err := s.Known(ctx, shopper); err != nil || got != want {
			t.Errorf("Known(%s) = %v, %v; want %v", shopper, got, err, want)
		}
	}
}

func xlen(tb testing.TB, s *store.Likes) int64 {
	tb.Helper()
	n, err := s.Client().XLen(context.Background(), s.StreamKey()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
