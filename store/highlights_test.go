package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// likeLog writes named shoppers' Likes and Unlikes through the worker's
// writer (ApplyBatch), each with the next stream id.
type likeLog struct {
	t   *testing.T
	s   *store.Stats
	seq int
}

func (l *likeLog) add(at time.Time, a store.Action, shopper string, products ...string) {
	l.t.Helper()
	var events []store.Event
	for _, p := range products {
		l.seq++
		events = append(events, store.Event{ID: fmt.Sprintf("%d-%d", at.UnixMilli(), l.seq), ProductID: p,
			ShopperID: shopper, Action: a, At: at})
	}
	if _, err := l.s.ApplyBatch(context.Background(), events); err != nil {
		l.t.Fatal(err)
	}
}

func rankedString(r []store.Ranked) string { return fmt.Sprint(r) }

func TestStats_Highlights(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	now := time.Date(2026, 12, 2, 10, 30, 20, 0, time.UTC)
	log := &likeLog{t: t, s: s}
	want := func(t *testing.T, what string, got []store.Ranked, err error, want string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if rankedString(got) != want {
			t.Errorf("%s: got %v, want %s", what, got, want)
		}
	}
	t.Run("empty", func(t *testing.T) {
		most, err := s.MostLiked(ctx, 3)
		want(t, "most liked", most, err, "[]")
		trending, err := s.Trending(ctx, now, 3)
		want(t, "trending", trending, err, "[]")
		also, err := s.AlsoLiked(ctx, []string{"pads"}, 100, 3)
		want(t, "also liked", also["pads"], err, "[]")
	})
	t.Run("likes", func(t *testing.T) {
		log.add(now, store.ActionLike, "alice", "pads", "tyre", "disc")
		log.add(now, store.ActionLike, "bob", "pads", "tyre")
		log.add(now, store.ActionLike, "carol", "pads")
		most, err := s.MostLiked(ctx, 2)
		want(t, "most liked", most, err, "[{pads 3} {tyre 2}]")
		trending, err := s.Trending(ctx, now, 10)
		want(t, "trending", trending, err, "[{pads 3} {tyre 2} {disc 1}]")
		also, err := s.AlsoLiked(ctx, []string{"pads", "disc"}, 100, 10)
		want(t, "also liked pads", also["pads"], err, "[{tyre 2} {disc 1}]")
		want(t, "also liked disc", also["disc"], err, "[{pads 1} {tyre 1}]")
	})
	t.Run("unlike", func(t *testing.T) {
		log.add(now, store.ActionUnlike, "alice", "pads", "tyre")
		log.add(now, store.ActionUnlike, "bob", "tyre")
		most, err := s.MostLiked(ctx, 10)
		want(t, "most liked", most, err, "[{pads 2} {disc 1}]") // tyre has no likers left
		trending, err := s.Trending(ctx, now, 10)
		want(t, "trending", trending, err, "[{pads 2} {disc 1}]") // tyre's hour nets 0
		also, err := s.AlsoLiked(ctx, []string{"pads", "tyre"}, 100, 10)
		want(t, "also liked pads", also["pads"], err, "[]") // bob and carol like nothing else now
		want(t, "also liked tyre", also["tyre"], err, "[]")
	})
	t.Run("sample", func(t *testing.T) {
		// With a sample of one, only pads' most recent liker is read:
		// dave, who likes lamp too.
		log.add(now.Add(time.Second), store.ActionLike, "dave", "pads", "lamp")
		also, err := s.AlsoLiked(ctx, []string{"pads"}, 1, 10)
		want(t, "also liked pads, 1 liker", also["pads"], err, "[{lamp 1}]")
	})
}

// TestStats_TrendingWindow checks the window's edges: the 60 one-minute
// buckets that end with the current one.
func TestStats_TrendingWindow(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	now := time.Date(2026, 12, 2, 10, 30, 20, 0, time.UTC)
	log := &likeLog{t: t, s: s}
	first := time.Date(2026, 12, 2, 9, 31, 0, 0, time.UTC) // 59 minutes before 10:30
	if got := store.TrendingSince(now); !got.Equal(first) {
		t.Fatalf("TrendingSince(%s) = %s, want %s", now, got, first)
	}
	log.add(first.Add(-time.Millisecond), store.ActionLike, "alice", "old")    // 9:30:59.999: out
	log.add(first, store.ActionLike, "bob", "edge")                            // 9:31:00: in
	log.add(now.Add(-time.Hour), store.ActionLike, "carol", "mixed", "recent") // 9:30:20: out
	log.add(now.Add(-time.Minute), store.ActionLike, "dave", "recent")         // in
	log.add(now.Add(-time.Second), store.ActionUnlike, "carol", "mixed")       // in: -1 for a like of before
	log.add(now.Add(-time.Second), store.ActionLike, "erin", "mixed", "recent")
	log.add(now.Add(-time.Second), store.ActionUnlike, "erin", "mixed", "other") // other: an unlike of nothing
	got, err := s.Trending(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	// recent: dave and erin; edge: bob, in the window's first bucket;
	// mixed: carol's unlike, erin's like and unlike = -1: out; other: -1.
	if w := "[{recent 2} {edge 1}]"; rankedString(got) != w {
		t.Errorf("trending at %s: got %v, want %s", now, got, w)
	}
	// A minute later bob's like has left the window.
	later, err := s.Trending(ctx, first.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if w := "[{recent 2}]"; rankedString(later) != w {
		t.Errorf("trending at %s: got %v, want %s", first.Add(time.Hour), later, w)
	}
	most, err := s.MostLiked(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	// Most liked has no window: alice's old like counts.
	if w := "[{recent 3} {edge 1} {old 1}]"; rankedString(most) != w {
		t.Errorf("most liked: got %v, want %s", most, w)
	}
}

// TestStats_AlsoTargets checks which products a round recomputes: the
// changed ones oldest first, then the sweep, within the budget.
func TestStats_AlsoTargets(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	now := time.Date(2026, 12, 2, 10, 30, 20, 0, time.UTC)
	log := &likeLog{t: t, s: s}
	targets := func(t *testing.T, c store.AlsoCursor, budget int, want string) store.AlsoCursor {
		t.Helper()
		got, next, err := s.AlsoTargets(ctx, c, budget)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("AlsoTargets(%+v, %d) = %v, want %s", c, budget, got, want)
		}
		return next
	}
	targets(t, store.AlsoCursor{}, 5, "[]")
	log.add(now, store.ActionLike, "alice", "c")
	log.add(now, store.ActionLike, "alice", "a")
	log.add(now, store.ActionLike, "alice", "b")
	c := targets(t, store.AlsoCursor{}, 2, "[c a]") // the two oldest changes
	c = targets(t, c, 2, "[b a]")                   // then b, and the sweep from the start
	c = targets(t, c, 2, "[b c]")                   // nothing changed: the sweep goes on
	log.add(now, store.ActionUnlike, "alice", "a")  // a changes, and has no likers now
	c = targets(t, c, 2, "[a b]")                   // a changed (its list empties); the sweep wraps
	targets(t, c, 2, "[c b]")
}
