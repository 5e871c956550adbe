package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// BenchmarkSync_Drain measures how fast workers drain a backlog of b.N
// events into a PostgreSQL server with fsync on (a private one, as in
// production durability). Run it with a fixed count, e.g.
//
//	go test ./worker/ -run '^$' -bench Drain -benchtime 1000000x
//
// and read the events/s metric. The events come from 100,000 shoppers, so
// nearly every event of a batch touches a different shopper counter: the
// worst case for the worker.
//
// The fsync=false case uses the shared test server (no durability) to show
// how much of the time is spent waiting for the disk.
func BenchmarkSync_Drain(b *testing.B) {
	cases := []struct {
		fsync                  bool
		shards, workers, batch int
	}{
		{true, 1, 1, DefaultBatchSize}, {false, 1, 1, DefaultBatchSize}, {true, 1, 2, DefaultBatchSize},
		{true, 1, 1, 1000}, {true, 2, 1, DefaultBatchSize}, {true, 2, 2, DefaultBatchSize},
	}
	for _, c := range cases {
		fsync := c.fsync
		name := fmt.Sprintf("fsync=%v/workers=%d/batch=%d", c.fsync, c.workers, c.batch)
		if c.shards > 1 {
			name = fmt.Sprintf("fsync=%v/shards=%d/workers=%d/batch=%d", c.fsync, c.shards, c.workers, c.batch)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var url string
			if fsync {
				url = privateURL(b)
			} else {
				url = testkit.Postgres(b)
			}
			rdb, prefix := testkit.Redis(b)
			e := (&env{rdb: rdb, likes: store.NewLikes(rdb, prefix, store.LikesOptions{Shards: c.shards})}).withPostgres(b, url)
			fillStream(b, e, b.N)
			// The worker role's GC target (cmd/phoenix sets it), so the
			// figures are those of the deployed worker.
			defer debug.SetGCPercent(debug.SetGCPercent(GCPercent))
			cpu0 := cpuNow(b, e)
			b.ResetTimer()
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, c.workers)
			for i := range c.workers {
				w := &Sync{Likes: e.likes, Stats: e.stats, Consumer: fmt.Sprintf("bench%d", i), Block: 10 * time.Millisecond, BatchSize: c.batch}
				go func() { done <- w.Run(runCtx) }()
			}
			for eventsStored(b, e.db) < int64(b.N) {
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			cpu := cpuNow(b, e).since(cpu0)
			cancel()
			for range c.workers {
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// CPU time per event of each part: a figure that does not depend
			// on how busy the machine is. Their sum over the cores they share
			// bounds the drain.
			b.ReportMetric(float64(cpu.pgTotal().Microseconds())/float64(b.N), "pg-µs/event")
			b.ReportMetric(float64(cpu.redis.Microseconds())/float64(b.N), "redis-µs/event")
			b.ReportMetric(float64(cpu.self.Microseconds())/float64(b.N), "go-µs/event")
		})
	}
}

// cpuTimes is CPU time used so far by the database's PostgreSQL backends
// (by pid: the workers' pool may open more during a run), the Redis server
// and this process.
type cpuTimes struct {
	pg          map[int]time.Duration
	redis, self time.Duration
}

// since is the CPU time used from a to t. A backend that ended in between
// is lost to the figure, which then reads low.
func (t cpuTimes) since(a cpuTimes) cpuTimes {
	d := cpuTimes{pg: map[int]time.Duration{}, redis: t.redis - a.redis, self: t.self - a.self}
	for pid, used := range t.pg {
		d.pg[pid] = used - a.pg[pid]
	}
	return d
}

// pgTotal is the CPU time of every backend in t.
func (t cpuTimes) pgTotal() time.Duration {
	var sum time.Duration
	for _, used := range t.pg {
		sum += used
	}
	return sum
}

func cpuNow(b *testing.B, e *env) cpuTimes {
	b.Helper()
	var pids []int
	if err := e.db.Select(&pids, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
		b.Fatal(err)
	}
	t := cpuTimes{pg: map[int]time.Duration{}}
	for _, pid := range pids {
		t.pg[pid] = procCPU(b, pid)
	}
	t.self = procCPU(b, os.Getpid())
	info, err := e.rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			t.redis += time.Duration(f * float64(time.Second))
		}
	}
	return t
}

// procCPU reads a process's user and system CPU time from /proc.
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		// The pool closed the connection: its CPU time is lost to the
		// metric, which then reads low.
		b.Logf("read cpu time: %v", err)
		return 0
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// fillStream appends n well-formed events straight to the stream (the
// benchmark measures the worker, not the shop's script). Like the shop's
// script, it appends only changes: a shopper's like of a product not
// liked, or an unlike of one liked, so every event moves PostgreSQL's state.
func fillStream(b *testing.B, e *env, n int) {
	b.Helper()
	ctx := context.Background()
	at := strconv.FormatInt(time.Now().UnixMilli(), 10)
	type pair struct{ shopper, product int }
	liked := map[pair]bool{}
	likes := map[int]int{} // per shopper
	for done := 0; done < n; {
		pipe := e.rdb.Pipeline()
		for i := 0; i < 10000 && done < n; i++ {
			p := pair{rand.IntN(100000), rand.IntN(len(products))}
			action := "like"
			if liked[p] {
				action = "unlike"
				likes[p.shopper]--
			} else {
				likes[p.shopper]++
			}
			liked[p] = !liked[p]
			shopper := fmt.Sprintf("%032x", p.shopper)
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: e.likes.Shard(e.likes.ShardOf(shopper)).StreamKey(), Values: []any{
				"product", products[p.product], "shopper", shopper,
				"action", action, "at", at, "likes", strconv.Itoa(likes[p.shopper]),
			}})
			done++
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// privateURL is a database on a private PostgreSQL server with fsync on, as
// production durability has it, and memory as a production server of a
// write-heavy app has it rather than PostgreSQL's defaults, made to start
// on any machine: 1 GB of shared buffers (a quarter of a 4 GB machine, the
// start PostgreSQL's manual suggests; these have more) and WAL enough that
// a drain does not force checkpoints.
func privateURL(b *testing.B) string {
	b.Helper()
	pg := testkit.PostgresServer(b, "shared_buffers=1GB", "max_wal_size=4GB")
	if err := pg.CreateDatabase(context.Background(), "phoenix"); err != nil {
		b.Fatal(err)
	}
	return pg.URL("phoenix")
}

// privateDB is a pool on a migrated privateURL database.
func privateDB(b *testing.B) *sqlx.DB {
	b.Helper()
	url := privateURL(b)
	openStats(b, url) // the schema
	return testkit.DB(b, url)
}

// BenchmarkCopy is the drain's yardstick: b.N event rows written to
// like_events with COPY in one transaction, the fastest way into
// PostgreSQL, on the same kind of private server (fsync on). The worker
// does more per event (counters, buckets, de-duplication), so a fair
// target is a fraction of this rate, measured in the same run.
func BenchmarkCopy(b *testing.B) {
	ctx := context.Background()
	db := privateDB(b)
	at := time.Now()
	b.ResetTimer()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.Prepare("COPY like_events (stream_id, stream_ms, product_id, shopper_id, action, at) FROM STDIN")
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		if _, err := stmt.Exec(fmt.Sprintf("%d-0", i), i, products[i%len(products)], fmt.Sprintf("%032x", i%100000), "like", at); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := stmt.Exec(); err != nil {
		b.Fatal(err)
	}
	if err := stmt.Close(); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkStateWrites is the drain's floor: the two writes each event
// needs and nothing else (its history row, and its pair's like state as
// one upsert), b.N events from the drain's 100,000 shoppers in batches of
// the default size, on the same kind of private server (fsync on), from
// one connection and from two with shoppers of their own. No read, no
// counters, no Redis: a worker's drain cannot beat the rate of as many
// apply streams as it runs.
func BenchmarkStateWrites(b *testing.B) {
	for _, streams := range []int{1, 2} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			ctx := context.Background()
			db := privateDB(b)
			b.ResetTimer()
			var wg sync.WaitGroup
			for s := range streams {
				wg.Go(func() {
					if err := writeStates(ctx, db, s, streams, b.N); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// writeStates writes stream s's share of n events (of streams) as
// BenchmarkStateWrites describes: shopper i%streams == s, stream ids of
// shard s.
func writeStates(ctx context.Context, db *sqlx.DB, s, streams, n int) error {
	type pair struct{ shopper, product int }
	liked := map[pair]bool{}
	for done := s; done < n; {
		var ids, eventProducts, eventShoppers, actions []string
		var ms []int64
		last := map[pair]int{} // the batch's last event of each pair
		for i := 0; i < DefaultBatchSize && done < n; i++ {
			p := pair{rand.IntN(100000/streams)*streams + s, rand.IntN(len(products))}
			liked[p] = !liked[p]
			action := "like"
			if !liked[p] {
				action = "unlike"
			}
			ids, ms = append(ids, fmt.Sprintf("%d-0", done)), append(ms, int64(done))
			eventProducts, eventShoppers = append(eventProducts, products[p.product]), append(eventShoppers, fmt.Sprintf("%032x", p.shopper))
			actions = append(actions, action)
			last[p] = len(ids) - 1
			done += streams
		}
		var shoppers, pairProducts []string
		var pairLiked []bool
		var pairMS []int64
		for _, i := range last {
			shoppers, pairProducts = append(shoppers, eventShoppers[i]), append(pairProducts, eventProducts[i])
			pairLiked, pairMS = append(pairLiked, actions[i] == "like"), append(pairMS, ms[i])
		}
		_, err := db.ExecContext(ctx, `
WITH events AS (
    INSERT INTO like_events (shard, stream_id, stream_ms, product_id, shopper_id, action, at)
    SELECT $1, id, ms, product_id, shopper_id, action, now()
    FROM unnest($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS e(id, ms, product_id, shopper_id, action)
    RETURNING 1
), state AS (
    INSERT INTO like_state AS s (shopper_id, product_id, shard, liked, liked_at, last_ms, last_seq)
    SELECT shopper_id, product_id, $1, liked, now(), ms, 0
    FROM unnest($7::text[], $8::text[], $9::boolean[], $10::bigint[]) AS p(shopper_id, product_id, liked, ms)
    ON CONFLICT (shopper_id, product_id) DO UPDATE SET liked = EXCLUDED.liked, liked_at = EXCLUDED.liked_at, last_ms = EXCLUDED.last_ms
    RETURNING 1
)
SELECT 1`, s, pq.StringArray(ids), pq.Int64Array(ms), pq.StringArray(eventProducts), pq.StringArray(eventShoppers), pq.StringArray(actions),
			pq.StringArray(shoppers), pq.StringArray(pairProducts), pq.BoolArray(pairLiked), pq.Int64Array(pairMS))
		if err != nil {
			return err
		}
	}
	return nil
}
