package store_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

func TestLikes_Like(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	t.Run("first click", func(t *testing.T) {
		res, err := s.Like(ctx, "alice", "pads")
		if err != nil {
			t.Fatal(err)
		}
		if res != (store.LikeResult{Liked: true, Count: 1, Changed: true}) {
			t.Errorf("got %+v", res)
		}
	})
	t.Run("double click", func(t *testing.T) {
		res, err := s.Like(ctx, "alice", "pads")
		if err != nil {
			t.Fatal(err)
		}
		if res != (store.LikeResult{Liked: true, Count: 1, Changed: false}) {
			t.Errorf("got %+v", res)
		}
	})
	t.Run("unlike twice", func(t *testing.T) {
		for i, want := range []bool{true, false} {
			res, err := s.Unlike(ctx, "alice", "pads")
			if err != nil {
				t.Fatal(err)
			}
			if res.Changed != want || res.Count != 0 || res.Liked {
				t.Errorf("unlike %d: got %+v", i+1, res)
			}
		}
	})
	t.Run("stream holds one event per change", func(t *testing.T) {
		msgs, err := rdb.XRange(ctx, s.StreamKey(), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range msgs {
			got = append(got, fmt.Sprint(m.Values["action"], ":", m.Values["product"], ":", m.Values["shopper"]))
		}
		if fmt.Sprint(got) != "[like:pads:alice unlike:pads:alice]" {
			t.Errorf("got %v", got)
		}
	})
	t.Run("view", func(t *testing.T) {
		if _, err := s.Like(ctx, "bob", "disc"); err != nil {
			t.Fatal(err)
		}
		counts, liked, err := s.View(ctx, "bob", []string{"pads", "disc", "none"})
		if err != nil {
			t.Fatal(err)
		}
		if counts["pads"] != 0 || counts["disc"] != 1 || counts["none"] != 0 || !liked["disc"] || liked["pads"] {
			t.Errorf("got counts %v liked %v", counts, liked)
		}
		// Of the given ids only (a page's), else the whole set (My likes).
		if _, err := s.Like(ctx, "bob", "plug"); err != nil {
			t.Fatal(err)
		}
		if _, liked, err := s.View(ctx, "bob", []string{"disc", "pads"}); err != nil || len(liked) != 1 || !liked["disc"] {
			t.Errorf("liked among disc, pads: %v, %v; want disc alone", liked, err)
		}
		if _, liked, err := s.View(ctx, "bob", nil); err != nil || len(liked) != 2 || !liked["disc"] || !liked["plug"] {
			t.Errorf("liked, all: %v, %v; want disc and plug", liked, err)
		}
	})
}

// TestLikes_LostStream: a Like that finds its stream gone (Redis lost it)
// takes an id past every one the stream gave out, even within the same
// millisecond: an id PostgreSQL may hold already would park the new event
// as a conflict.
func TestLikes_LostStream(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	if err := s.EnsureGroup(ctx, "workers"); err != nil { // the stream, as a worker makes it
		t.Fatal(err)
	}
	last := func() store.StreamID {
		t.Helper()
		msgs, err := rdb.XRevRangeN(ctx, s.StreamKey(), "+", "-", 1).Result()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("last entry: %v, %v", msgs, err)
		}
		id, err := store.ParseStreamID(msgs[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for i := range 50 {
		// One loss a millisecond at the most: the stream of the round
		// before started a millisecond ahead of the clock.
		time.Sleep(2 * time.Millisecond)
		if _, err := s.Like(ctx, fmt.Sprint("shopper-", i), "pads"); err != nil {
			t.Fatal(err)
		}
		before := last()
		if err := rdb.Del(ctx, s.StreamKey()).Err(); err != nil {
			t.Fatal(err)
		}

		if _, err := s.Like(ctx, fmt.Sprint("shopper-", i), "disc"); err != nil {
			t.Fatal(err)
		}
		if after := last(); after.Compare(before) <= 0 {
			t.Fatalf("round %d: id %s after the stream was lost, not past %s", i, after, before)
		}
	}
}

// TestLikes_Concurrent has many shoppers click at once, each several times:
// the count must equal the number of distinct shoppers.
func TestLikes_Concurrent(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	const shoppers, clicks = 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, shoppers*clicks)
	for i := range shoppers {
		for range clicks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Like(ctx, fmt.Sprint("shopper-", i), "pads"); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	counts, err := s.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts["pads"] != shoppers {
		t.Errorf("count %d, want %d", counts["pads"], shoppers)
	}
	if n := rdb.XLen(ctx, s.StreamKey()).Val(); n != shoppers {
		t.Errorf("stream has %d events, want %d", n, shoppers)
	}
}
