package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/store/storetest"
)

// BenchmarkSync_Drain measures how fast one worker drains a backlog of b.N
// events into a PostgreSQL server with fsync on (a private one, as in
// production durability). Run it with a fixed count, e.g.
//
//	go test ./worker/ -run '^$' -bench Drain -benchtime 1000000x
//
// and read the events/s metric.
//
// The fsync=off case uses the shared test server (no durability) to show
// how much of the time is spent waiting for the disk.
func BenchmarkSync_Drain(b *testing.B) {
	cases := []struct {
		fsync   bool
		workers int
	}{{true, 1}, {false, 1}, {true, 2}}
	for _, c := range cases {
		fsync := c.fsync
		b.Run(fmt.Sprintf("fsync=%v/workers=%d", c.fsync, c.workers), func(b *testing.B) {
			ctx := context.Background()
			var url string
			if fsync {
				pg := storetest.PostgresServer(b)
				if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
					b.Fatal(err)
				}
				url = pg.URL("phoenix")
			} else {
				url = storetest.Postgres(b)
			}
			rdb, prefix := storetest.Redis(b)
			e := &env{rdb: rdb, likes: store.NewLikes(rdb, prefix), stats: openStats(b, url)}
			fillStream(b, e, b.N)
			b.ResetTimer()
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, c.workers)
			for i := range c.workers {
				w := &Sync{Likes: e.likes, Stats: e.stats, Consumer: fmt.Sprintf("bench%d", i), Block: 10 * time.Millisecond}
				go func() { done <- w.Run(runCtx) }()
			}
			for eventsStored(b, e.stats) < int64(b.N) {
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			cancel()
			for range c.workers {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// fillStream appends n well-formed events straight to the stream (the
// benchmark measures the worker, not the shop's script).
func fillStream(b *testing.B, e *env, n int) {
	b.Helper()
	ctx := context.Background()
	at := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for done := 0; done < n; {
		pipe := e.rdb.Pipeline()
		for i := 0; i < 10000 && done < n; i++ {
			action := "like"
			if rand.IntN(3) == 0 {
				action = "unlike"
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: e.likes.StreamKey(), Values: []any{
				"product", products[rand.IntN(len(products))], "shopper", fmt.Sprintf("%032x", rand.IntN(100000)),
				"action", action, "at", at,
			}})
			done++
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
