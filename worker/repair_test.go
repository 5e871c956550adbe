package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"phoenix/store"
	"phoenix/testkit"
)

// privateEnv is an env on a private Redis server, which the test may flush
// or kill.
func privateEnv(t *testing.T) (*env, *redis.Client) {
	t.Helper()
	r := testkit.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return (&env{rdb: rdb, likes: store.NewLikes(rdb, "t:")}).withPostgres(t, testkit.Postgres(t)), rdb
}

// likeUntil clicks Likes and Unlikes as shoppers do, retrying a busy answer
// (the shop's 503 while a shard is repaired), until stop is closed or n
// clicks were answered. It returns the answered clicks.
func likeUntil(t testing.TB, likes *store.Likes, ids []string, n int64, stop <-chan struct{}) int64 {
	t.Helper()
	var answered atomic.Int64
	g, ctx := errgroup.WithContext(context.Background())
	for range 4 {
		g.Go(func() error {
			for answered.Load() < n {
				select {
				case <-stop:
					return nil
				default:
				}
				set := likes.Like
				if rand.IntN(3) == 0 {
					set = likes.Unlike
				}
				_, err := set(ctx, ids[rand.IntN(len(ids))], products[rand.IntN(len(products))])
				switch {
				case errors.Is(err, store.ErrBusy):
					time.Sleep(time.Millisecond)
				case errors.Is(err, store.ErrUnavailable):
					time.Sleep(5 * time.Millisecond) // Redis restarting
				case err != nil:
					return err
				default:
					answered.Add(1)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return answered.Load()
}

// waitRepairedExact waits until the audit is exact and every shopper's set
// in Redis is PostgreSQL's record.
func waitRepairedExact(t *testing.T, e *env, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		a, err := store.RunAudit(ctx, e.likes, e.stats, DefaultGroup)
		diff := ""
		if err == nil && a.Final() && len(a.Mismatches()) == 0 && len(a.Failed()) == 0 {
			if diff = setsDiffer(t, e); diff == "" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not exact after %s: err %v, final %v, mismatches %+v, failed %+v, sets: %s",
				timeout, err, a.Final(), a.Mismatches(), a.Failed(), diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// setsDiffer names a shopper whose Redis set is not the record ("" if none).
func setsDiffer(t *testing.T, e *env) string {
	t.Helper()
	ctx := context.Background()
	rows := []struct {
		Shopper string `db:"shopper_id"`
		Product string `db:"product_id"`
	}{}
	if err := e.db.SelectContext(ctx, &rows, `SELECT shopper_id, product_id FROM like_state WHERE liked ORDER BY 1, 2`); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, r := range rows {
		want[r.Shopper] = append(want[r.Shopper], r.Product)
	}
	for _, s := range shoppers(200) {
		_, liked, err := e.likes.View(ctx, s, nil)
		if err != nil {
			return err.Error()
		}
		if got := slices.Sorted(maps.Keys(liked)); !slices.Equal(got, want[s]) {
			return fmt.Sprintf("%s: redis %v, record %v", s, got, want[s])
		}
	}
	return ""
}

// TestSync_RepairsAfterFlush flushes Redis under load: the worker notices by
// itself, says so (metric, repair log), and repairs Redis from PostgreSQL
// while shoppers keep clicking; the audit ends exact.
func TestSync_RepairsAfterFlush(t *testing.T) {
	ctx := context.Background()
	e, rdb := privateEnv(t)
	ids := shoppers(200)
	w := e.newSync(t, "w1")
	w.RepairCheckEvery = 100 * time.Millisecond
	w.Metrics = NewMetrics(prometheus.NewRegistry(), 0)
	start(t, w)
	likeUntil(t, e.likes, ids, 3000, nil)
	waitRepairedExact(t, e, 30*time.Second)

	stop := make(chan struct{})
	done := make(chan int64)
	go func() { done <- likeUntil(t, e.likes, ids, 1<<40, stop) }()
	time.Sleep(100 * time.Millisecond)
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a repair", func() bool {
		n, err := e.stats.RecentRepairs(ctx, time.Now().Add(-time.Hour), 10)
		return err == nil && len(n) > 0
	})
	time.Sleep(200 * time.Millisecond)
	close(stop)
	t.Logf("%d clicks answered around the flush", <-done)
	waitRepairedExact(t, e, 30*time.Second)
	if n := counterValue(t, w.Metrics.lost.WithLabelValues("0")); n < 1 {
		t.Errorf("loss detected %v times, want at least once", n)
	}
	if n := counterValue(t, w.Metrics.repairs.WithLabelValues("0")); n < 1 {
		t.Errorf("repairs %v, want at least one", n)
	}
}

// TestSync_RepairsAfterLostTail kills Redis (appendonly yes, appendfsync
// everysec) with kill -9 right after a burst the worker has applied, cuts
// the append-only file's unsynced tail as a machine crash would (a killed
// process alone loses nothing: its writes are in the OS cache), and
// restarts it while shoppers go on: the worker notices, repairs Redis from
// PostgreSQL, and the audit ends exact, no shopper counted twice.
func TestSync_RepairsAfterLostTail(t *testing.T) {
	ctx := context.Background()
	r := testkit.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	e := (&env{rdb: rdb, likes: store.NewLikes(rdb, "t:")}).withPostgres(t, testkit.Postgres(t))
	ids := shoppers(200)
	w := e.newSync(t, "w1")
	w.RepairCheckEvery = 100 * time.Millisecond
	start(t, w)
	var fixed int64
	for round := range 2 {
		likeUntil(t, e.likes, ids, 4000, nil)
		waitFor(t, 30*time.Second, "the burst applied", func() bool {
			b, err := e.likes.GroupBacklog(ctx, DefaultGroup)
			return err == nil && b.Total() == 0
		})
		if err := r.Kill(); err != nil {
			t.Fatal(err)
		}
		cutAOFTail(t, r.Dir())
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
		likeUntil(t, e.likes, ids, 500, nil) // shoppers go on at once
		waitRepairedExact(t, e, 60*time.Second)
		n, err := e.stats.RecentRepairs(ctx, time.Now().Add(-time.Hour), 10)
		if err != nil || len(n) < round+1 {
			t.Fatalf("round %d: %d repairs (err %v), want %d", round+1, len(n), err, round+1)
		}
		t.Logf("round %d: exact after repair: %+v", round+1, n[0])
		fixed += n[0].ShoppersFixed
	}
	if fixed == 0 {
		t.Error("no repair fixed a shopper: the cut lost no Like, the test proves little")
	}
	var over int64
	if err := e.db.GetContext(ctx, &over, `
SELECT count(*) FROM product_counters c
WHERE c.likes > (SELECT count(DISTINCT shopper_id) FROM like_state s WHERE s.product_id = c.product_id AND s.liked)`); err != nil {
		t.Fatal(err)
	}
	if over != 0 {
		t.Errorf("%d products count more likes than distinct likers", over)
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// cutAOFTail removes the last third of the newest incremental append-only
// file under dir (Redis 7's appendonlydir): the burst's Likes as well as
// the worker's acknowledgements.
func cutAOFTail(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "appendonlydir", "*.incr.aof"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no incremental append-only file under %s (err %v)", dir, err)
	}
	slices.Sort(files) // the sequence number grows; the last one is being written
	f := files[len(files)-1]
	st, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	cut := st.Size() / 3
	if err := os.Truncate(f, st.Size()-cut); err != nil {
		t.Fatal(err)
	}
	t.Logf("cut %d of %d bytes from %s", cut, st.Size(), filepath.Base(f))
}

// TestSync_AckedElsewhere: a batch that another consumer claimed and
// acknowledged while this worker applied it (PostgreSQL away for longer
// than ClaimIdle) is not a loss, and repairing for it would refuse Likes
// for nothing. The same shortfall after a repair of the shard in between
// is one: the repair may have read the record before this commit.
func TestSync_AckedElsewhere(t *testing.T) {
	for _, repaired := range []bool{false, true} {
		t.Run(fmt.Sprintf("repair in between %v", repaired), func(t *testing.T) {
			e := newEnv(t)
			ids := shoppers(10)
			n := clicks(t, e.likes, ids, 200)
			ctx := context.Background()
			w := e.newSync(t, "w1")
			var done atomic.Bool
			w.afterCommit = func(b store.Batch) error {
				if done.Swap(true) {
					return nil
				}
				if repaired {
					if _, err := store.RepairShard(ctx, e.likes, e.stats, DefaultGroup, 0, "test", "test", false); err != nil {
						return err
					}
				}
				taken := make([]string, len(b.Events))
				for i, ev := range b.Events {
					taken[i] = ev.ID
				}
				args := &redis.XClaimArgs{Stream: e.likes.StreamKey(), Group: DefaultGroup, Consumer: "w2", Messages: taken}
				if err := e.rdb.XClaimJustID(ctx, args).Err(); err != nil {
					return err
				}
				return e.rdb.XAck(ctx, e.likes.StreamKey(), DefaultGroup, taken...).Err()
			}
			start(t, w)
			waitDrained(t, e, n, 30*time.Second)
			assertExact(t, e, ids, n)
			var repairs int
			if err := e.db.Get(&repairs, `SELECT count(*) FROM redis_repairs`); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 2}[repaired]; repairs != want {
				t.Errorf("%d repairs recorded, want %d", repairs, want)
			}
		})
	}
}
