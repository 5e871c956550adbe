package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// BenchmarkRefreshHighlights times one worker's round over a record of
// 5,000 shoppers who like 12 of the embedded catalog's 48 parts each,
// with every product changed since the last round (as under steady Likes):
// the cost the highlights add to PostgreSQL every HighlightEvery.
func BenchmarkRefreshHighlights(b *testing.B) {
	ctx := context.Background()
	likes := testkit.Likes(b)
	now := time.Now()
	stats := testkit.Stats(b)
	catalog, err := store.DefaultCatalog()
	if err != nil {
		b.Fatal(err)
	}
	ps := catalog.Products()
	r := rand.New(rand.NewPCG(1, 2)) // #nosec G404 -- test data
	var events []store.Event
	for sh := range 5000 {
		for _, i := range r.Perm(len(ps))[:12] {
			events = append(events, store.Event{ID: fmt.Sprintf("%d-%d", now.UnixMilli(), len(events)), ProductID: ps[i].ID,
				ShopperID: fmt.Sprintf("shopper-%d", sh), Action: store.ActionLike, At: now})
		}
	}
	for i := 0; i < len(events); i += 5000 {
		if _, err := stats.ApplyBatch(ctx, events[i:min(i+5000, len(events))]); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		// Every product changed, as under steady Likes; a new clock reading
		// each round so that the lease lets it run.
		if err := likes.Client().Del(ctx, likes.AlsoLikedKey()).Err(); err != nil {
			b.Fatal(err)
		}
		at := now.Add(time.Duration(i+1) * time.Minute)
		r, err := store.RefreshHighlights(ctx, likes, stats.At(func() time.Time { return at }), time.Second)
		if err != nil || r.Skipped || r.AlsoLiked != len(ps) {
			b.Fatalf("round: %+v, %v", r, err)
		}
	}
}
