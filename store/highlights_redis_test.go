package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// TestRefreshHighlights checks one worker's round end to end: PostgreSQL's
// record to the Redis keys a page reads in its counts pipeline, one round
// per interval whoever asks, and the keys back after Redis lost them.
func TestRefreshHighlights(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name  string
		likes func(t *testing.T) *store.Likes
	}{
		{"1 shard", func(t *testing.T) *store.Likes { return testkit.Likes(t) }},
		{"3 shards", func(t *testing.T) *store.Likes { return testkit.Likes(t, store.LikesOptions{Shards: 3}) }},
		{"cluster, 6 shards", func(t *testing.T) *store.Likes {
			// The keys fall in slots of their own: the page's pipeline spans
			// nodes, the also-liked hash is written in a MULTI of one key.
			c, _, prefix := testkit.Cluster(t)
			likes, err := store.OpenLikes(ctx, c.URL(), prefix, store.LikesOptions{Shards: 6})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = likes.Close() })
			return likes
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			likes := tt.likes(t)
			now := time.Date(2026, 12, 2, 10, 30, 20, 0, time.UTC)
			stats := testkit.Stats(t).At(func() time.Time { return now })
			log := &likeLog{t: t, s: stats}
			view := func(t *testing.T) store.Extra {
				t.Helper()
				_, _, x, err := likes.ViewWith(ctx, "", []string{"pads"}, store.Extras{Highlights: true, AlsoLiked: "pads"})
				if err != nil {
					t.Fatal(err)
				}
				return x
			}
			// Rounds every second; "also liked" every AlsoRounds of them.
			round := func(t *testing.T, wantSkipped bool) store.HighlightReport {
				t.Helper()
				r, err := store.RefreshHighlights(ctx, likes, stats, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if r.Skipped != wantSkipped {
					t.Fatalf("round skipped %v, want %v", r.Skipped, wantSkipped)
				}
				return r
			}
			alsoEvery := store.AlsoRounds * time.Second
			if x := view(t); x.Highlights.MostLiked != nil || !x.Highlights.At.IsZero() || x.AlsoLiked != nil || x.AlsoKnown {
				t.Fatalf("before any round: %+v, want nothing", x)
			}
			round(t, false)
			if x := view(t); len(x.Highlights.MostLiked) != 0 || len(x.Highlights.Trending) != 0 || !x.Highlights.At.Equal(now) ||
				len(x.AlsoLiked) != 0 || !x.AlsoKnown {
				t.Errorf("no likes: %+v, want empty rankings and lists at %s", x, now)
			}
			log.add(now, store.ActionLike, "alice", "pads", "tyre")
			log.add(now, store.ActionLike, "bob", "pads")
			round(t, true) // within the interval: another worker's round
			now = now.Add(time.Second)
			if r := round(t, false); r.AlsoLiked != 0 {
				t.Errorf("a round after 1s recomputed %d also-liked lists, want none before %s", r.AlsoLiked, alsoEvery)
			}
			if x := view(t); fmt.Sprint(x.Highlights.MostLiked, x.AlsoLiked) != "[{pads 2} {tyre 1}] []" {
				t.Errorf("after 1s: %v %v, want the rankings, no also liked yet", x.Highlights.MostLiked, x.AlsoLiked)
			}
			now = now.Add(alsoEvery - time.Second)
			round(t, false)
			x := view(t)
			if got, want := fmt.Sprint(x.Highlights.MostLiked, x.Highlights.Trending, x.AlsoLiked), "[{pads 2} {tyre 1}] [{pads 2} {tyre 1}] [{tyre 1}]"; got != want {
				t.Errorf("after likes: got %s, want %s", got, want)
			}
			ttl := store.HighlightTTLRounds * time.Second
			if got := likes.Client().TTL(ctx, likes.HighlightsKey()).Val(); got <= ttl-time.Second || got > ttl {
				t.Errorf("highlights TTL %s, want %s", got, ttl)
			}
			if got := likes.Client().TTL(ctx, likes.AlsoLikedKey()).Val(); got <= ttl-time.Second || got > ttl {
				t.Errorf("also-liked TTL %s, want %s", got, ttl)
			}

			log.add(now, store.ActionUnlike, "alice", "tyre")
			// Redis loses both keys (a flush, a failover): the next round
			// writes them again, every list included, though pads did not
			// change since.
			for _, k := range []string{likes.HighlightsKey(), likes.AlsoLikedKey()} {
				if err := likes.Client().Del(ctx, k).Err(); err != nil {
					t.Fatal(err)
				}
			}
			log.add(now, store.ActionLike, "carol", "tyre", "disc")
			now = now.Add(time.Second)
			round(t, false)
			x = view(t)
			if got, want := fmt.Sprint(x.Highlights.MostLiked, x.Highlights.Trending, x.AlsoLiked), "[{pads 2} {disc 1} {tyre 1}] [{pads 2} {disc 1} {tyre 1}] []"; got != want {
				t.Errorf("after unlike and loss: got %s, want %s", got, want)
			}
			_, _, tyre, err := likes.ViewWith(ctx, "", nil, store.Extras{AlsoLiked: "tyre"})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fmt.Sprint(tyre.AlsoLiked), "[{disc 1}]"; got != want {
				t.Errorf("tyre also liked: got %s, want %s", got, want)
			}

			// A worker whose clock is an hour ahead runs a round; the
			// others take its lease and its also-liked stamp over at once.
			ahead := stats.At(func() time.Time { return now.Add(time.Hour) })
			if r, err := store.RefreshHighlights(ctx, likes, ahead, time.Second); err != nil || r.Skipped || r.AlsoLiked == 0 {
				t.Fatalf("worker an hour ahead: %+v, %v; want its round, with also liked", r, err)
			}
			now = now.Add(time.Second)
			if r := round(t, false); r.AlsoLiked == 0 {
				t.Error("after a round an hour ahead: also liked not recomputed")
			}
		})
	}
}

// TestLikes_ViewWithRedisDown checks that a page whose Redis is down gets
// an error, not empty highlights that look like "nothing yet".
func TestLikes_ViewWithRedisDown(t *testing.T) {
	// Nothing listens on port 1.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	likes := store.NewLikes(rdb, "down:")
	_, _, _, err := likes.ViewWith(context.Background(), "", []string{"pads"}, store.Extras{Highlights: true})
	if err == nil {
		t.Fatal("ViewWith on a closed client: no error")
	}
}
