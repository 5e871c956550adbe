package worker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"phoenix/store"
)

// TestSync_Highlights checks that two running workers bring Likes and
// Unlikes from the shop's stream to the highlights in Redis, one round
// per interval between them, and write them again after Redis lost them.
func TestSync_Highlights(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, name := range []string{"w1", "w2"} {
		w := e.newSync(t, name)
		w.HighlightEvery = 100 * time.Millisecond
		start(t, w)
	}
	read := func() store.Extra {
		_, _, x, err := e.likes.ViewWith(ctx, "", nil, store.Extras{Highlights: true, AlsoLiked: "pads"})
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	show := func(x store.Extra) string {
		return fmt.Sprint(x.Highlights.MostLiked, x.Highlights.Trending, x.AlsoLiked)
	}
	waitShown := func(what, want string) {
		t.Helper()
		var got string
		waitFor(t, 10*time.Second, what, func() bool {
			got = show(read())
			return got == want
		})
	}
	for _, l := range []struct{ shopper, product string }{{"alice", "pads"}, {"alice", "tyre"}, {"bob", "pads"}} {
		if _, err := e.likes.Like(ctx, l.shopper, l.product); err != nil {
			t.Fatal(err)
		}
	}
	waitShown("likes in the highlights", "[{pads 2} {tyre 1}] [{pads 2} {tyre 1}] [{tyre 1}]")
	if _, err := e.likes.Unlike(ctx, "alice", "tyre"); err != nil {
		t.Fatal(err)
	}
	waitShown("the unlike in the highlights", "[{pads 2}] [{pads 2}] []")

	// Redis loses the keys: the next round writes them again.
	if _, err := e.likes.Like(ctx, "carol", "pads"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.likes.Like(ctx, "carol", "disc"); err != nil {
		t.Fatal(err)
	}
	waitShown("carol's likes", "[{pads 3} {disc 1}] [{pads 3} {disc 1}] [{disc 1}]")
	if err := e.rdb.Del(ctx, e.likes.HighlightsKey(), e.likes.AlsoLikedKey()).Err(); err != nil {
		t.Fatal(err)
	}
	waitShown("the highlights after redis lost them", "[{pads 3} {disc 1}] [{pads 3} {disc 1}] [{disc 1}]")

	// One round per interval, whichever worker runs it: the rounds' times
	// are at least most of the interval apart.
	var prev time.Time
	for range 5 {
		var at time.Time
		waitFor(t, 5*time.Second, "the next round", func() bool {
			at = read().Highlights.At
			return at.After(prev)
		})
		if !prev.IsZero() && at.Sub(prev) < 90*time.Millisecond {
			t.Errorf("rounds %s apart, want one per 100ms", at.Sub(prev))
		}
		prev = at
	}
}
