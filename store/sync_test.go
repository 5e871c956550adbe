package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

type totals struct {
	Likes    int64 `db:"likes"`
	Shoppers int64 `db:"shoppers"`
	Events   int64 `db:"events"`
}

func readTotals(t *testing.T, s *store.Stats) totals {
	t.Helper()
	var tt totals
	if err := s.DB().Get(&tt, `SELECT likes, shoppers, events FROM totals`); err != nil {
		t.Fatal(err)
	}
	return tt
}

func productLikes(t *testing.T, s *store.Stats) map[string]int64 {
	t.Helper()
	var rows []struct {
		ID    string `db:"product_id"`
		Likes int64  `db:"likes"`
	}
	if err := s.DB().Select(&rows, `SELECT product_id, likes FROM product_counters`); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, r := range rows {
		out[r.ID] = r.Likes
	}
	return out
}

// event builds an event; shopperLikes is the shopper's like count after it,
// as the shop's script records it.
func event(id, product, shopper string, a store.Action, shopperLikes int64) store.Event {
	return store.Event{ID: id, ProductID: product, ShopperID: shopper, Action: a,
		At: time.Date(2025, 3, 1, 12, 30, 15, 0, time.UTC), ShopperLikes: shopperLikes}
}

func TestStats_ApplyBatch(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	first := []store.Event{
		event("1-0", "pads", "alice", store.ActionLike, 1),
		event("1-1", "tyre", "alice", store.ActionLike, 2),
		event("1-2", "pads", "bob", store.ActionLike, 1),
	}
	apply := func(t *testing.T, events []store.Event, want int) {
		t.Helper()
		got, err := s.ApplyBatch(ctx, events)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("applied %d, want %d", got, want)
		}
	}
	t.Run("new events", func(t *testing.T) {
		apply(t, first, 3)
		if got, want := readTotals(t, s), (totals{Likes: 3, Shoppers: 2, Events: 3}); got != want {
			t.Errorf("totals %+v, want %+v", got, want)
		}
	})
	t.Run("replay", func(t *testing.T) {
		apply(t, first, 0)
		apply(t, append(first, first...), 0)
		if got, want := readTotals(t, s), (totals{Likes: 3, Shoppers: 2, Events: 3}); got != want {
			t.Errorf("totals %+v, want %+v", got, want)
		}
	})
	t.Run("partial replay", func(t *testing.T) {
		apply(t, []store.Event{first[2], event("2-0", "pads", "alice", store.ActionUnlike, 1), first[0]}, 1)
		if got := productLikes(t, s); got["pads"] != 1 || got["tyre"] != 1 {
			t.Errorf("likes %v, want pads 1, tyre 1", got)
		}
	})
	t.Run("last like withdrawn", func(t *testing.T) {
		apply(t, []store.Event{event("3-0", "pads", "bob", store.ActionUnlike, 0)}, 1)
		if got, want := readTotals(t, s), (totals{Likes: 1, Shoppers: 1, Events: 5}); got != want {
			t.Errorf("totals %+v, want %+v", got, want)
		}
	})
	t.Run("buckets", func(t *testing.T) {
		var b struct {
			Minute  time.Time `db:"minute"`
			Likes   int64     `db:"likes"`
			Unlikes int64     `db:"unlikes"`
		}
		if err := s.DB().Get(&b, `SELECT minute, likes, unlikes FROM like_buckets WHERE product_id = 'pads'`); err != nil {
			t.Fatal(err)
		}
		if want := time.Date(2025, 3, 1, 12, 30, 0, 0, time.UTC); !b.Minute.Equal(want) || b.Likes != 2 || b.Unlikes != 2 {
			t.Errorf("bucket %+v, want 2 likes and 2 unlikes at %v", b, want)
		}
	})
	t.Run("empty", func(t *testing.T) {
		apply(t, nil, 0)
	})
}

// TestStats_ApplyBatchConcurrent applies overlapping batches from several
// goroutines at once, in different orders, as workers that claimed each
// other's entries would: no error (deadlocks are retried), exact totals.
func TestStats_ApplyBatchConcurrent(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	const n = 2000
	events := make([]store.Event, n)
	for i := range events {
		// Shopper i%13 likes a product for the (i/13+1)-th time: every
		// event is a real change, as the shop writes only those.
		events[i] = event(fmt.Sprintf("%d-0", 1000+i), fmt.Sprintf("p%d", i/13), fmt.Sprintf("s%d", i%13), store.ActionLike, int64(i/13+1))
	}
	var wg sync.WaitGroup
	applied := make([]int, 4)
	for g := range applied {
		wg.Go(func() {
			for i := 0; i < n; i += 100 {
				// Each goroutine walks the events in its own order.
				lo := (i + g*500) % n
				batch := append([]store.Event(nil), events[lo:lo+100]...)
				if g%2 == 1 {
					for a, b := 0, len(batch)-1; a < b; a, b = a+1, b-1 {
						batch[a], batch[b] = batch[b], batch[a]
					}
				}
				k, err := s.ApplyBatch(ctx, batch)
				if err != nil {
					t.Error(err)
					return
				}
				applied[g] += k
			}
		})
	}
	wg.Wait()
	sum := 0
	for _, k := range applied {
		sum += k
	}
	if sum != n {
		t.Errorf("applied %d in all, want %d", sum, n)
	}
	if got, want := readTotals(t, s), (totals{Likes: n, Shoppers: 13, Events: n}); got != want {
		t.Errorf("totals %+v, want %+v", got, want)
	}
}

// TestStats_ApplyShardConcurrent applies the batches of four shards side by
// side (ApplyShard), each shard's twice and in two orders (a worker and one
// that claimed its entries), beside a worker of an old two-shard layout
// that holds a third of the same shoppers' events under its own shards,
// and batches mixing every shard that replay them through Apply. The
// state, the counters and the totals are exactly those of the newest event
// per pair, and a reader following the products' change numbers never sees
// one appear below a number it has seen.
func TestStats_ApplyShardConcurrent(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	const shards, oldShards, perShard, batch = 4, 2, 600, 50
	if err := s.RecordShards(ctx, shards); err != nil {
		t.Fatal(err)
	}
	layout, oldLayout := store.NewLikes(nil, "t:", store.LikesOptions{Shards: shards}), store.NewLikes(nil, "t:", store.LikesOptions{Shards: oldShards})
	// Seven shoppers of each shard.
	shoppersOf := make([][]string, shards)
	for i := 0; slices.ContainsFunc(shoppersOf, func(ids []string) bool { return len(ids) < 7 }); i++ {
		id := fmt.Sprintf("shopper-%d", i)
		if k := layout.ShardOf(id); len(shoppersOf[k]) < 7 {
			shoppersOf[k] = append(shoppersOf[k], id)
		}
	}
	type pair struct{ shopper, product string }
	liked := map[pair]bool{}
	events := make([][]store.Event, shards) // per shard of the layout
	old := make([][]store.Event, oldShards) // per shard of the old layout
	var all []store.Event
	for i := range perShard {
		for k := range shards {
			// Products of the shard's own and products every shard shares.
			product := fmt.Sprintf("p%d", i%5)
			if i%5 < 3 {
				product = fmt.Sprintf("p%d-%d", k, i%5)
			}
			p := pair{shoppersOf[k][i%7], product}
			a := store.ActionLike
			if liked[p] {
				a = store.ActionUnlike
			}
			liked[p] = !liked[p]
			e := event(fmt.Sprintf("%d-%d", 1000+i, k), p.product, p.shopper, a, 1)
			if i%3 == 0 {
				e.Shard = oldLayout.ShardOf(p.shopper)
				old[e.Shard] = append(old[e.Shard], e)
			} else {
				e.Shard = k
				events[k] = append(events[k], e)
			}
			all = append(all, e)
		}
	}
	readerDone := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		seen, top := map[string]int64{}, int64(0)
		for {
			select {
			case <-readerDone:
				return
			default:
			}
			var rows []struct {
				ID      string `db:"product_id"`
				Changed int64  `db:"changed"`
			}
			if err := s.DB().Select(&rows, `SELECT product_id, changed FROM product_counters`); err != nil {
				t.Error(err)
				return
			}
			next := top
			for _, r := range rows {
				if r.Changed != seen[r.ID] && r.Changed <= top {
					t.Errorf("%s changed under number %d after %d was seen", r.ID, r.Changed, top)
				}
				seen[r.ID], next = r.Changed, max(next, r.Changed)
			}
			top = next
		}
	})
	applyAll := func(apply func([]store.Event) error, events []store.Event, reverse bool) {
		n := (len(events) + batch - 1) / batch
		for i := range n {
			if reverse {
				i = n - 1 - i
			}
			if err := apply(events[i*batch : min((i+1)*batch, len(events))]); err != nil {
				t.Error(err)
				return
			}
		}
	}
	applyShard := func(n int) func([]store.Event) error {
		return func(b []store.Event) error { _, err := s.ApplyShard(ctx, n, b); return err }
	}
	var wg sync.WaitGroup
	for k := range shards {
		wg.Go(func() { applyAll(applyShard(shards), events[k], false) })
		wg.Go(func() { applyAll(applyShard(shards), events[k], true) })
	}
	for k := range oldShards {
		wg.Go(func() { applyAll(applyShard(oldShards), old[k], false) })
	}
	wg.Go(func() {
		applyAll(func(b []store.Event) error { _, err := s.Apply(ctx, b); return err }, all, true)
	})
	wg.Wait()
	close(readerDone)
	reader.Wait()
	want := totals{Events: int64(len(all))}
	wantProducts := map[string]int64{}
	likers := map[string]bool{}
	for p, l := range liked {
		if l {
			want.Likes++
			wantProducts[p.product]++
			likers[p.shopper] = true
		}
	}
	want.Shoppers = int64(len(likers))
	if got := readTotals(t, s); got != want {
		t.Errorf("totals %+v, want %+v", got, want)
	}
	if got := productLikes(t, s); fmt.Sprint(got) != fmt.Sprint(wantProducts) {
		t.Errorf("product likes %v, want %v", got, wantProducts)
	}
	var pairs int64
	if err := s.DB().Get(&pairs, `SELECT count(*) FROM like_state WHERE liked`); err != nil {
		t.Fatal(err)
	}
	if pairs != want.Likes {
		t.Errorf("%d liked pairs, want %d", pairs, want.Likes)
	}
}

// TestStats_ApplyShardPastMark: a shard's batch whose ids are all past the
// shard's highest applied id (stream_marks) is copied into the history
// without looking for them; if the history holds one after all (the mark
// was lost), replays are still told from new events and conflicts.
func TestStats_ApplyShardPastMark(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	if err := s.RecordShards(ctx, 1); err != nil {
		t.Fatal(err)
	}
	first := []store.Event{
		event("1-0", "pads", "alice", store.ActionLike, 1),
		event("1-1", "tyre", "alice", store.ActionLike, 2),
		event("1-2", "pads", "bob", store.ActionLike, 1),
	}
	if a, err := s.ApplyShard(ctx, 1, first); err != nil || a.New != 3 {
		t.Fatalf("first batch: %+v, %v; want 3 new", a, err)
	}
	if _, err := s.DB().Exec(`DELETE FROM stream_marks`); err != nil {
		t.Fatal(err)
	}
	different := event("1-2", "tyre", "bob", store.ActionLike, 1)
	a, err := s.ApplyShard(ctx, 1, []store.Event{first[1], different, event("2-0", "tyre", "alice", store.ActionUnlike, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if a.New != 1 || a.Changed != 1 || len(a.Conflicts) != 1 || a.Conflicts[0].Event != different {
		t.Errorf("applied %+v, want 1 new and changed, %+v in conflict", a, different)
	}
	if got, want := readTotals(t, s), (totals{Likes: 2, Shoppers: 2, Events: 4}); got != want {
		t.Errorf("totals %+v, want %+v", got, want)
	}
}

// TestStats_ApplyPairAppears: a pair the batch did not find, and so
// inserts as new, that is there by the time it writes (here a trigger adds
// it, once: under the batch's locks nothing should) fails the insert, and
// the batch applies again looking for every pair first.
func TestStats_ApplyPairAppears(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	if _, err := s.DB().Exec(`
CREATE SEQUENCE add_tyre_once;
CREATE FUNCTION add_tyre() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.product_id = 'pads' AND nextval('add_tyre_once') = 1 THEN
        INSERT INTO like_state (shopper_id, product_id, shard, liked, liked_at, last_ms, last_seq)
        VALUES (NEW.shopper_id, 'tyre', 0, false, now(), 0, 0) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER add_tyre BEFORE INSERT ON like_state FOR EACH ROW EXECUTE FUNCTION add_tyre()`); err != nil {
		t.Fatal(err)
	}
	a, err := s.Apply(ctx, []store.Event{
		event("1-0", "pads", "alice", store.ActionLike, 1),
		event("1-1", "tyre", "alice", store.ActionLike, 2),
	})
	if err != nil {
		t.Fatal(err)
	}
	if a.New != 2 || a.Changed != 2 {
		t.Errorf("applied %+v, want 2 new and changed", a)
	}
	var liked int
	if err := s.DB().Get(&liked, `SELECT count(*) FROM like_state WHERE shopper_id = 'alice' AND liked`); err != nil {
		t.Fatal(err)
	}
	if got, want := readTotals(t, s), (totals{Likes: 2, Shoppers: 1, Events: 2}); got != want || liked != 2 {
		t.Errorf("totals %+v and %d liked pairs, want %+v and 2", got, liked, want)
	}
}

func TestStats_SyncProducts(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	products := cat.Products()
	count := func() int {
		var n int
		if err := s.DB().Get(&n, `SELECT count(*) FROM products`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := s.SyncProducts(ctx, products); err != nil {
		t.Fatal(err)
	}
	if err := s.SyncProducts(ctx, products); err != nil {
		t.Fatal(err)
	}
	if count() != len(products) {
		t.Fatalf("got %d products, want %d", count(), len(products))
	}
	changed := append([]store.Product(nil), products[1:]...)
	changed[0].Name = "Renamed"
	if err := s.SyncProducts(ctx, changed); err != nil {
		t.Fatal(err)
	}
	var name string
	if err := s.DB().Get(&name, `SELECT name FROM products WHERE id = $1`, changed[0].ID); err != nil {
		t.Fatal(err)
	}
	if count() != len(changed) || name != "Renamed" {
		t.Errorf("got %d products and name %q, want %d and Renamed", count(), name, len(changed))
	}
	t.Run("names in other languages", func(t *testing.T) {
		changed[0].NameI18n = store.Names{"zh-CN": "改名"}
		if err := s.SyncProducts(ctx, changed); err != nil {
			t.Fatal(err)
		}
		rows, err := s.ProductStats(ctx, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]store.ProductStats{}
		for _, r := range rows {
			byID[r.ID] = r
		}
		if got := byID[changed[0].ID].NameI18n["zh-CN"]; got != "改名" {
			t.Errorf("renamed product's Chinese name %q, want 改名", got)
		}
		disc := byID["drilled-slotted-brake-disc-300mm"]
		if disc.NameI18n["zh-CN"] != "打孔划线刹车盘，300 毫米" || disc.CategoryI18n["zh-CN"] != "制动系统" {
			t.Errorf("names of drilled-slotted-brake-disc-300mm: %v, category %v", disc.NameI18n, disc.CategoryI18n)
		}
		cats, err := s.CategoryStats(ctx, time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cats {
			if want := cat.CategoryI18n()[c.Category]["zh-CN"]; c.CategoryI18n["zh-CN"] != want || want == "" {
				t.Errorf("category %q: Chinese name %q, want %q", c.Category, c.CategoryI18n["zh-CN"], want)
			}
		}
	})
}

func TestStats_RecordWorkerStatus(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, st := range []store.WorkerReport{
		{Consumer: "w1", LastBatchAt: at, Synced: 10, Backlog: 5, Lag: 1500 * time.Millisecond},
		{Consumer: "w1", Synced: 0, Backlog: 0}, // an idle heartbeat keeps the last batch time
	} {
		if err := s.RecordWorkerStatus(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	var got struct {
		Last    time.Time `db:"last_batch_at"`
		Synced  int64     `db:"events_synced"`
		Backlog int64     `db:"backlog"`
		Lag     int64     `db:"lag_ms"`
	}
	if err := s.DB().Get(&got, `SELECT last_batch_at, events_synced, backlog, lag_ms FROM worker_status WHERE consumer = 'w1'`); err != nil {
		t.Fatal(err)
	}
	if !got.Last.Equal(at) || got.Synced != 10 || got.Backlog != 0 || got.Lag != 0 {
		t.Errorf("got %+v", got)
	}
}
