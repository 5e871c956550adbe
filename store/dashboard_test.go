package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

func TestStats_Dashboard(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	now := time.Now()
	testkit.SetProducts(t, s, testkit.Part("brake-pads", "Brake pads", "Brakes"), testkit.Part("brake-disc", "Brake disc", "Brakes"),
		testkit.Part("oil-filter", "Oil filter", "Filters"), testkit.Part("wiper", "Wiper", "Visibility"))
	// 5 likes and 1 unlike before the last hour; every like is a new
	// shopper's, so the 10 likes left are 10 shoppers.
	testkit.AddFirstLikes(t, s, "brake-pads", 4, now.Add(-2*time.Hour))
	testkit.AddLikes(t, s, "brake-pads", 1, 1, now.Add(-2*time.Hour))
	testkit.AddLikes(t, s, "brake-pads", 3, 0, now.Add(-10*time.Minute))
	testkit.AddFirstLikes(t, s, "oil-filter", 2, now)
	testkit.AddLikes(t, s, "brake-disc", 1, 1, now)
	testkit.AddLikes(t, s, "ghost", 1, 0, now) // counted, but not in the products table
	since := now.Add(-time.Hour)

	t.Run("totals", func(t *testing.T) {
		got, err := s.Totals(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := store.Totals{Likes: 10, LikedProducts: 3, Shoppers: 10, Events: 14}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("products", func(t *testing.T) {
		got, err := s.ProductStats(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.ProductStats{
			{ID: "brake-pads", Name: "Brake pads", Category: "Brakes", Likes: 7, LastHour: 3},
			{ID: "oil-filter", Name: "Oil filter", Category: "Filters", Likes: 2, LastHour: 2},
			{ID: "ghost", Name: "ghost", Category: "", Likes: 1, LastHour: 1},
			{ID: "brake-disc", Name: "Brake disc", Category: "Brakes", Likes: 0, LastHour: 0},
			{ID: "wiper", Name: "Wiper", Category: "Visibility", Likes: 0, LastHour: 0},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("categories", func(t *testing.T) {
		got, err := s.CategoryStats(ctx, since)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.CategoryStats{
			{Category: "Brakes", Products: 2, Likes: 7, LastHour: 3},
			{Category: "Filters", Products: 1, Likes: 2, LastHour: 2},
			{Category: "", Products: 1, Likes: 1, LastHour: 1},
			{Category: "Visibility", Products: 1, Likes: 0, LastHour: 0},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("got %+v\nwant %+v", got, want)
		}
	})
	t.Run("likes per minute", func(t *testing.T) {
		all, err := s.LikesPerMinute(ctx, "", now, 60)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 60 {
			t.Fatalf("got %d points, want 60", len(all))
		}
		last, tenAgo := all[59], all[49]
		if last.Likes != 4 || last.Unlikes != 1 || tenAgo.Likes != 3 {
			t.Errorf("last minute %+v, ten minutes ago %+v; want 4/1 and 3 likes", last, tenAgo)
		}
		if !last.At.Equal(now.Truncate(time.Minute)) || all[0].At.Add(59*time.Minute) != last.At {
			t.Errorf("series spans %v..%v, want 59 minutes ending %v", all[0].At, last.At, now.Truncate(time.Minute))
		}
		one, err := s.LikesPerMinute(ctx, "brake-pads", now, 60)
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, m := range one {
			sum += m.Likes
		}
		if sum != 3 || one[49].Likes != 3 {
			t.Errorf("brake-pads: %d likes in the hour, %d ten minutes ago; want 3 and 3", sum, one[49].Likes)
		}
	})
	t.Run("worker status", func(t *testing.T) {
		testkit.SetWorker(t, s, "worker-a", now.Add(-time.Minute), 10, 1500)
		testkit.SetWorker(t, s, "worker-b", now, 2, 40)
		got, err := s.WorkerStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].Consumer != "worker-b" || got[0].Backlog != 2 || got[1].LagMS != 1500 || !got[1].LastBatchAt.Valid {
			t.Errorf("got %+v, want worker-b (backlog 2) then worker-a (lag 1500)", got)
		}
	})
	t.Run("postgres down", func(t *testing.T) {
		down, err := store.OpenStats(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
		if err == nil {
			t.Fatal("open on a closed port: no error")
		}
		defer down.Close()
		if _, err := down.Totals(ctx); err == nil {
			t.Error("Totals on a closed port: no error")
		}
	})
}

// BenchmarkStats_Refresh measures one dashboard refresh (every read query)
// with few and with a million recorded Likes: the cost must not grow with
// the number of Likes, only with the number of products.
func BenchmarkStats_Refresh(b *testing.B) {
	for _, likes := range []int{10, 1_000_000} {
		b.Run(fmt.Sprintf("likes=%d", likes), func(b *testing.B) {
			ctx := context.Background()
			url := testkit.Postgres(b)
			s := testkit.StatsAt(b, url)
			testkit.SeedHistory(b, url, 48, likes)
			b.ResetTimer()
			for b.Loop() {
				now := time.Now()
				since := now.Add(-time.Hour)
				if _, err := s.Totals(ctx); err != nil {
					b.Fatal(err)
				}
				if _, err := s.ProductStats(ctx, since); err != nil {
					b.Fatal(err)
				}
				if _, err := s.CategoryStats(ctx, since); err != nil {
					b.Fatal(err)
				}
				if _, err := s.LikesPerMinute(ctx, "", now, 60); err != nil {
					b.Fatal(err)
				}
				if _, err := s.WorkerStatus(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
