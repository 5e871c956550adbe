package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// repairRig is one shard's Redis (a private server, which a test may flush
// or kill) and PostgreSQL, and a worker's steps played by hand.
type repairRig struct {
	rdb   *redis.Client
	likes *store.Likes
	stats *store.Stats
}

const repairGroup = "repair"

func newRepairRig(t *testing.T, shards ...int) repairRig {
	t.Helper()
	srv := testkit.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	opt := store.LikesOptions{Shards: 1}
	if len(shards) > 0 {
		opt.Shards = shards[0]
	}
	r := repairRig{rdb: rdb, likes: store.NewLikes(rdb, "p:", opt), stats: testkit.Stats(t)}
	for i := range r.likes.Shards() {
		if err := r.likes.Shard(i).EnsureGroup(context.Background(), repairGroup); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// sync plays the worker until the stream is drained: read, commit,
// acknowledge, raise the synced mark.
func (r repairRig) sync(t *testing.T) {
	t.Helper()
	for i := range r.likes.Shards() {
		r.syncShard(t, i)
	}
}

func (r repairRig) syncShard(t *testing.T, shard int) {
	t.Helper()
	ctx := context.Background()
	likes := r.likes.Shard(shard)
	for {
		b, err := likes.ReadNew(ctx, repairGroup, "c1", 500, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if b.Len() == 0 {
			return
		}
		if _, err := r.stats.ApplyBatch(ctx, b.Events); err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(b.Events))
		for i, e := range b.Events {
			ids[i] = e.ID
		}
		if _, err := likes.Ack(ctx, repairGroup, ids); err != nil {
			t.Fatal(err)
		}
		if err := r.likes.MarkSynced(ctx, shard, ids[len(ids)-1]); err != nil {
			t.Fatal(err)
		}
	}
}

func (r repairRig) like(t *testing.T, shopper, product string) {
	t.Helper()
	if _, err := r.likes.Like(context.Background(), shopper, product); err != nil {
		t.Fatal(err)
	}
}

// record is PostgreSQL's like state: shopper -> sorted products.
func (r repairRig) record(t *testing.T) map[string][]string {
	t.Helper()
	rows := []struct {
		Shopper string `db:"shopper_id"`
		Product string `db:"product_id"`
	}{}
	if err := r.stats.DB().Select(&rows, `SELECT shopper_id, product_id FROM like_state WHERE liked ORDER BY 1, 2`); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, row := range rows {
		out[row.Shopper] = append(out[row.Shopper], row.Product)
	}
	return out
}

// requireRedisIsRecord fails unless every shopper's Redis set and every live
// count equal PostgreSQL's record, and the audit is exact.
func (r repairRig) requireRedisIsRecord(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	want := r.record(t)
	counts := map[string]int64{}
	for shopper, products := range want {
		_, liked, err := r.likes.View(ctx, shopper, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(liked)); !slices.Equal(got, products) {
			t.Errorf("shopper %s: redis set %v, record %v", shopper, got, products)
		}
		for _, p := range products {
			counts[p]++
		}
	}
	live, err := r.likes.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for p, n := range live {
		if n != counts[p] {
			t.Errorf("product %s: live count %d, record %d", p, n, counts[p])
		}
	}
	for p, n := range counts {
		if live[p] != n {
			t.Errorf("product %s: live count %d, record %d", p, live[p], n)
		}
	}
	a, err := store.RunAudit(ctx, r.likes, r.stats, repairGroup)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Final() || len(a.Mismatches()) > 0 || len(a.Failed()) > 0 {
		t.Errorf("audit final %v, mismatches %+v, failed checks %+v, want exact", a.Final(), a.Mismatches(), a.Failed())
	}
}

func TestRepairShard(t *testing.T) {
	ctx := context.Background()

	t.Run("flushall then reconcile", func(t *testing.T) {
		r := newRepairRig(t)
		for i := range 20 {
			r.like(t, fmt.Sprintf("s%02d", i), fmt.Sprintf("p%d", i%3))
			r.like(t, fmt.Sprintf("s%02d", i), "p9")
		}
		r.sync(t)
		c, err := store.CheckShard(ctx, r.likes, r.stats, repairGroup, 0, store.StreamID{})
		if err != nil || c.Lost != "" {
			t.Fatalf("before the flush: lost %q, err %v; want nothing lost", c.Lost, err)
		}
		if err := r.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		// A Like after the flush moves the stream's last id past the mark:
		// the synced mark still tells.
		r.like(t, "s00", "p7")
		if err := r.likes.EnsureGroup(ctx, repairGroup); err != nil {
			t.Fatal(err)
		}
		c, err = store.CheckShard(ctx, r.likes, r.stats, repairGroup, 0, c.Mark)
		if err != nil || c.Lost == "" {
			t.Fatalf("after the flush: check %+v, err %v; want a loss", c, err)
		}
		rep, err := store.RepairShard(ctx, r.likes, r.stats, repairGroup, 0, c.Lost, "test", false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.ShoppersFixed) != 20 || len(rep.ProductsRecounted) != 4 || rep.Drained != 1 {
			t.Errorf("repair %+v, want 20 shoppers fixed, 4 products recounted, 1 event drained", rep)
		}
		if n, err := r.likes.Repairs(ctx); err != nil || n != "1" {
			t.Errorf("repair count %q, err %v; want 1 after the first repair", n, err)
		}
		r.requireRedisIsRecord(t)
		if c, err := store.CheckShard(ctx, r.likes, r.stats, repairGroup, 0, c.Mark); err != nil || c.Lost != "" {
			t.Errorf("after the repair: lost %q, err %v; want nothing lost", c.Lost, err)
		}
		// New ids come after PostgreSQL's mark, and the next Like counts.
		r.like(t, "s01", "p7")
		r.sync(t)
		r.requireRedisIsRecord(t)
		n, err := r.stats.RecentRepairs(ctx, time.Now().Add(-time.Hour), 10)
		if err != nil || len(n) != 1 || n[0].ShoppersFixed != 20 {
			t.Errorf("repairs %+v, err %v; want the one repair recorded", n, err)
		}
		again, err := store.RepairShard(ctx, r.likes, r.stats, repairGroup, 0, "again", "test", true)
		if err != nil || len(again.ShoppersFixed)+len(again.ProductsRecounted) != 0 {
			t.Errorf("dry run after the repair: %+v, err %v; want nothing to fix", again, err)
		}
	})

	t.Run("a batch in flight is not a loss", func(t *testing.T) {
		// A worker committed a batch and has not acknowledged it yet (it
		// keeps retrying while Redis or PostgreSQL is away): a check a whole
		// interval later must not repair, which would refuse Likes.
		r := newRepairRig(t)
		r.like(t, "s1", "p1")
		b, err := r.likes.ReadNew(ctx, repairGroup, "c1", 10, time.Millisecond)
		if err != nil || b.Len() != 1 {
			t.Fatalf("read %d entries, err %v", b.Len(), err)
		}
		if _, err := r.stats.ApplyBatch(ctx, b.Events); err != nil {
			t.Fatal(err)
		}
		first, err := store.CheckShard(ctx, r.likes, r.stats, repairGroup, 0, store.StreamID{})
		if err != nil || !first.HasMark {
			t.Fatalf("first check %+v, err %v; want postgres's mark", first, err)
		}
		c, err := store.CheckShard(ctx, r.likes, r.stats, repairGroup, 0, first.Mark)
		if err != nil || c.Lost != "" {
			t.Errorf("a check later, batch unacknowledged: lost %q, err %v; want nothing lost", c.Lost, err)
		}
		// The same mark with the entry gone from Redis is a loss.
		if err := r.rdb.XDel(ctx, r.likes.StreamKey(), b.Events[0].ID).Err(); err != nil {
			t.Fatal(err)
		}
		if c, err := store.CheckShard(ctx, r.likes, r.stats, repairGroup, 0, first.Mark); err != nil || c.Lost == "" {
			t.Errorf("entry gone: check %+v, err %v; want a loss", c, err)
		}
	})

	t.Run("four shards", func(t *testing.T) {
		r := newRepairRig(t, 4)
		for i := range 40 {
			r.like(t, fmt.Sprintf("s%02d", i), fmt.Sprintf("p%d", i%5))
		}
		r.sync(t)
		// Flush one shard's keys only: shard 2 lost its writes.
		var lost []string
		for i := range 40 {
			if s := fmt.Sprintf("s%02d", i); r.likes.ShardOf(s) == 2 {
				lost = append(lost, s)
			}
		}
		keys, err := r.rdb.Keys(ctx, "p:{s2.*").Result()
		if err != nil || len(keys) == 0 {
			t.Fatalf("shard 2 keys %v, err %v", keys, err)
		}
		if err := r.rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
		for shard := range 4 {
			c, err := store.CheckShard(ctx, r.likes, r.stats, repairGroup, shard, store.StreamID{})
			if err != nil || (c.Lost != "") != (shard == 2) {
				t.Fatalf("shard %d: lost %q, err %v; want a loss on shard 2 only", shard, c.Lost, err)
			}
		}
		for shard := range 4 {
			rep, err := store.RepairShard(ctx, r.likes, r.stats, repairGroup, shard, "test", "test", false)
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool][]string{true: lost}[shard == 2]; !slices.Equal(rep.ShoppersFixed, want) {
				t.Errorf("shard %d: fixed %v, want %v", shard, rep.ShoppersFixed, want)
			}
		}
		r.requireRedisIsRecord(t)
	})

	t.Run("audit counts dead letters", func(t *testing.T) {
		r := newRepairRig(t)
		r.like(t, "s1", "pads")
		r.sync(t)
		bad := store.Malformed{ID: "1-1", Values: map[string]any{"junk": "x"}, Err: errors.New("missing field product")}
		if err := r.likes.DeadLetter(ctx, repairGroup, []store.Malformed{bad}); err != nil {
			t.Fatal(err)
		}
		a, err := store.RunAudit(ctx, r.likes, r.stats, repairGroup)
		if err != nil {
			t.Fatal(err)
		}
		f := a.Failed()
		if len(a.Mismatches()) != 0 || len(f) != 1 || f[0].Name != "dead letters" {
			t.Fatalf("mismatches %+v, failed checks %+v; want only the dead letter reported", a.Mismatches(), f)
		}
	})

	t.Run("audit checks totals and buckets", func(t *testing.T) {
		r := newRepairRig(t)
		r.like(t, "s1", "pads")
		r.sync(t)
		if _, err := r.stats.DB().Exec(`UPDATE totals SET shoppers = shoppers + 1`); err != nil {
			t.Fatal(err)
		}
		if _, err := r.stats.DB().Exec(`UPDATE like_buckets SET likes = likes + 1`); err != nil {
			t.Fatal(err)
		}
		a, err := store.RunAudit(ctx, r.likes, r.stats, repairGroup)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, c := range a.Failed() {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, []string{"totals", "buckets"}) {
			t.Fatalf("failed checks %+v, want totals and buckets", a.Failed())
		}
	})

	t.Run("like again after a loss", func(t *testing.T) {
		r := newRepairRig(t)
		r.like(t, "s1", "pads")
		r.like(t, "s2", "pads")
		r.sync(t)
		if err := r.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		if err := r.likes.EnsureGroup(ctx, repairGroup); err != nil {
			t.Fatal(err)
		}
		// Redis forgot s1's Like, so it takes it again; PostgreSQL must not
		// count s1 twice.
		r.like(t, "s1", "pads")
		r.sync(t)
		var counter, likers int64
		if err := r.stats.DB().Get(&counter, `SELECT likes FROM product_counters WHERE product_id = 'pads'`); err != nil {
			t.Fatal(err)
		}
		if err := r.stats.DB().Get(&likers, `SELECT count(DISTINCT shopper_id) FROM like_state WHERE product_id = 'pads' AND liked`); err != nil {
			t.Fatal(err)
		}
		if counter != 2 || likers != 2 {
			t.Fatalf("counter %d, distinct likers %d; want 2 and 2", counter, likers)
		}
		if _, err := store.RepairShard(ctx, r.likes, r.stats, repairGroup, 0, "test", "test", false); err != nil {
			t.Fatal(err)
		}
		r.requireRedisIsRecord(t)
	})

	t.Run("likes during the repair", func(t *testing.T) {
		r := newRepairRig(t)
		for i := range 200 {
			r.like(t, fmt.Sprintf("s%03d", i), fmt.Sprintf("p%d", i%7))
		}
		r.sync(t)
		if err := r.rdb.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		// Shoppers keep clicking, retrying on busy as the shop's 503 asks,
		// while a repair runs; every answered Like must end in the record.
		var wg sync.WaitGroup
		accepted := make(chan [2]string, 4000)
		stop := make(chan struct{})
		var busy sync.Map
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					shopper, product := fmt.Sprintf("s%03d", (g*50+i)%250), fmt.Sprintf("p%d", i%9)
					_, err := r.likes.Like(ctx, shopper, product)
					switch {
					case errors.Is(err, store.ErrBusy):
						busy.Store(g, true)
						continue
					case err != nil:
						t.Error(err)
						return
					}
					accepted <- [2]string{shopper, product}
					if len(accepted) == cap(accepted) {
						return
					}
				}
			})
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // let the clicks start before the repair
		if _, err := store.RepairShard(ctx, r.likes, r.stats, repairGroup, 0, "test", "test", false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) //nolint:forbidigo // and go on after it
		close(stop)
		wg.Wait()
		close(accepted)
		r.sync(t)
		r.requireRedisIsRecord(t)
		rec := r.record(t)
		n := 0
		for a := range accepted {
			n++
			if !slices.Contains(rec[a[0]], a[1]) {
				t.Errorf("accepted Like %v missing from the record", a)
			}
		}
		t.Logf("%d Likes accepted around the repair", n)
	})
}
