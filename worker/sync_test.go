package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"phoenix/store"
	"phoenix/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

// env is one test's Redis key space and PostgreSQL database.
type env struct {
	rdb   *redis.Client
	likes *store.Likes
	stats *store.Stats
	db    *sqlx.DB // the same database, for the tests' checks
}

// withPostgres gives e a migrated Stats at url and a pool to read it.
func (e *env) withPostgres(tb testing.TB, url string) *env {
	tb.Helper()
	e.stats, e.db = openStats(tb, url), testkit.DB(tb, url)
	return e
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rdb, prefix := testkit.Redis(t)
	return (&env{rdb: rdb, likes: store.NewLikes(rdb, prefix)}).withPostgres(t, testkit.Postgres(t))
}

func openStats(t testing.TB, url string) *store.Stats {
	t.Helper()
	return testkit.StatsAt(t, url)
}

// testLog logs through t, so a failing test shows what the worker did.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// newSync returns a Sync with short intervals, for tests.
func (e *env) newSync(t testing.TB, consumer string) *Sync {
	return &Sync{
		Likes: e.likes, Stats: e.stats, Log: testLog(t).With("consumer", consumer),
		Consumer: consumer, BatchSize: 100, Block: 50 * time.Millisecond,
		ClaimIdle: 300 * time.Millisecond, TrimEvery: 100 * time.Millisecond, HeartbeatEvery: 100 * time.Millisecond,
	}
}

// start runs w until the test ends (or stop is called) and checks that Run
// returned nil.
func start(t *testing.T, w *Sync) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run: %v", w.Consumer, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("%s: Run did not return after cancel", w.Consumer)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// shoppers makes n shopper ids.
func shoppers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%032x", i+1)
	}
	return out
}

var products = []string{"brake-pads", "spark-plug", "oil-filter", "tyre", "battery", "headlamp", "muffler", "piston"}

// clicks makes random Likes and Unlikes through the shop's store until at
// least n of them changed something, with a few goroutines as concurrent
// shoppers would. It returns the number of changes, which is the number of
// events appended to the stream.
func clicks(t testing.TB, likes *store.Likes, shopperIDs []string, n int64) int64 {
	t.Helper()
	var events atomic.Int64
	g, ctx := errgroup.WithContext(context.Background())
	for range 8 {
		g.Go(func() error {
			for events.Load() < n {
				s := shopperIDs[rand.IntN(len(shopperIDs))]
				p := products[rand.IntN(len(products))]
				set := likes.Like
				if rand.IntN(3) == 0 {
					set = likes.Unlike
				}
				res, err := set(ctx, s, p)
				if err != nil {
					return err
				}
				if res.Changed {
					events.Add(1)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return events.Load()
}

// likeScript is the shop's own Like script, read from the store package so
// that bulk clicks run exactly what the shop runs.
func likeScript(t testing.TB) *redis.Script {
	t.Helper()
	var src []byte
	for _, f := range []string{"ratelimit.lua", "like.lua"} { // as the store joins them
		b, err := os.ReadFile("../store/scripts/" + f)
		if err != nil {
			t.Fatal(err)
		}
		src = append(append(src, b...), '\n')
	}
	return redis.NewScript(string(src))
}

// bulkClicks is clicks for tens of thousands of events: the shop's script,
// pipelined. Keys are built as store.Likes builds them (a mismatch would
// show as wrong shopper totals in assertExact).
func bulkClicks(t testing.TB, e *env, shopperIDs []string, n int64) int64 {
	t.Helper()
	ctx := context.Background()
	script := likeScript(t)
	if err := script.Load(ctx, e.rdb).Err(); err != nil {
		t.Fatal(err)
	}
	prefix := strings.TrimSuffix(e.likes.StreamKey(), "events")
	var events int64
	for events < n {
		pipe := e.rdb.Pipeline()
		cmds := make([]*redis.Cmd, 1000)
		for i := range cmds {
			s := shopperIDs[rand.IntN(len(shopperIDs))]
			action := "like"
			if rand.IntN(3) == 0 {
				action = "unlike"
			}
			// No backlog bound and no rate limits (intervals of 0).
			keys := []string{prefix + "shopper:" + s + ":likes", e.likes.CountsKey(), e.likes.StreamKey(), prefix + "rate:none", prefix + "rate:none", prefix + "repairing"}
			cmds[i] = script.EvalSha(ctx, pipe, keys, products[rand.IntN(len(products))], s, action, 0, 0, 0, 0, 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for _, c := range cmds {
			res, err := c.Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			events += res[0]
		}
	}
	return events
}

// streamLen is the number of events appended so far (before any trim).
func streamLen(t testing.TB, e *env) int64 {
	t.Helper()
	n, err := e.rdb.XLen(context.Background(), e.likes.StreamKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// eventsStored is the number of events in PostgreSQL.
func eventsStored(t testing.TB, db *sqlx.DB) int64 {
	t.Helper()
	var n int64
	if err := db.GetContext(context.Background(), &n, `SELECT events FROM totals`); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitDrained polls until PostgreSQL holds want events and the group has
// nothing left to acknowledge.
func waitDrained(t testing.TB, e *env, want int64, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		var got int64
		err := e.db.GetContext(ctx, &got, `SELECT events FROM totals`)
		backlog, berr := e.likes.GroupBacklog(ctx, DefaultGroup)
		if err == nil && berr == nil && got == want && backlog.Total() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after %s: events %d of %d (err %v), backlog %+v (err %v)", timeout, got, want, err, backlog, berr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertExact checks that PostgreSQL agrees exactly with Redis: each
// product's net likes with its live count, the buckets with the counters,
// the totals with the events, and the number of shoppers who like something.
func assertExact(t testing.TB, e *env, shopperIDs []string, wantEvents int64) {
	t.Helper()
	ctx := context.Background()
	live, err := e.likes.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		ID      string `db:"product_id"`
		Likes   int64  `db:"likes"`
		Events  int64  `db:"events"`
		Buckets int64  `db:"buckets"`
		Stored  int64  `db:"stored"`
	}{}
	err = e.db.SelectContext(ctx, &rows, `
SELECT c.product_id, c.likes, c.like_events + c.unlike_events AS events,
    COALESCE((SELECT sum(b.likes - b.unlikes) FROM like_buckets b WHERE b.product_id = c.product_id), 0) AS buckets,
    (SELECT count(*) FILTER (WHERE action = 'like') - count(*) FILTER (WHERE action = 'unlike')
     FROM like_events l WHERE l.product_id = c.product_id) AS stored
FROM product_counters c`)
	if err != nil {
		t.Fatal(err)
	}
	var sumLikes, sumEvents int64
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.ID] = true
		if r.Likes != live[r.ID] {
			t.Errorf("%s: postgres %d likes, redis %d", r.ID, r.Likes, live[r.ID])
		}
		if r.Buckets != r.Likes || r.Stored != r.Likes {
			t.Errorf("%s: counter %d, buckets %d, events %d", r.ID, r.Likes, r.Buckets, r.Stored)
		}
		sumLikes += r.Likes
		sumEvents += r.Events
	}
	for id, n := range live {
		if n != 0 && !seen[id] {
			t.Errorf("%s: redis %d likes, none in postgres", id, n)
		}
	}
	var totals struct {
		Likes    int64 `db:"likes"`
		Shoppers int64 `db:"shoppers"`
		Events   int64 `db:"events"`
		Rows     int64 `db:"rows"`
	}
	if err := e.db.GetContext(ctx, &totals,
		`SELECT likes, shoppers, events, (SELECT count(*) FROM like_events) AS rows FROM totals`); err != nil {
		t.Fatal(err)
	}
	var liking int64
	for _, s := range shopperIDs {
		_, liked, err := e.likes.View(ctx, s, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(liked) > 0 {
			liking++
		}
	}
	if totals.Events != wantEvents || totals.Rows != wantEvents || sumEvents != wantEvents {
		t.Errorf("events: totals %d, rows %d, counters %d, want %d", totals.Events, totals.Rows, sumEvents, wantEvents)
	}
	if totals.Likes != sumLikes {
		t.Errorf("total likes %d, sum of products %d", totals.Likes, sumLikes)
	}
	if totals.Shoppers != liking {
		t.Errorf("shoppers who like something: postgres %d, redis %d", totals.Shoppers, liking)
	}
}

func TestSync_Drain(t *testing.T) {
	e := newEnv(t)
	ids := shoppers(50)
	n := clicks(t, e.likes, ids, 3000)
	w := e.newSync(t, "w1")
	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	w.Products = cat.Products()
	start(t, w)
	waitDrained(t, e, n, 30*time.Second)
	assertExact(t, e, ids, n)

	t.Run("catalog", func(t *testing.T) {
		var n int
		if err := e.db.Get(&n, `SELECT count(*) FROM products`); err != nil {
			t.Fatal(err)
		}
		if n != len(cat.Products()) {
			t.Errorf("got %d products, want %d", n, len(cat.Products()))
		}
	})
	t.Run("status", func(t *testing.T) {
		var st struct {
			Synced  int64 `db:"events_synced"`
			Backlog int64 `db:"backlog"`
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := e.db.Get(&st, `SELECT events_synced, backlog FROM worker_status WHERE consumer = 'w1'`)
			if err == nil && st.Synced == n && st.Backlog == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %+v (err %v), want %d synced, no backlog", st, err, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("trimmed", func(t *testing.T) {
		// Trimming removes whole stream nodes (100 entries by default).
		deadline := time.Now().Add(10 * time.Second)
		for streamLen(t, e) > 100 {
			if time.Now().After(deadline) {
				t.Fatalf("stream still holds %d entries", streamLen(t, e))
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("live", func(t *testing.T) {
		// Events that arrive while the worker runs are synced too.
		n += clicks(t, e.likes, ids, 500)
		waitDrained(t, e, n, 30*time.Second)
		assertExact(t, e, ids, n)
	})
}

func TestSync_DuplicateDelivery(t *testing.T) {
	e := newEnv(t)
	ids := shoppers(30)
	n := clicks(t, e.likes, ids, 1000)
	w := e.newSync(t, "w1")
	w.TrimEvery = time.Hour // keep the history, to deliver it again
	stop := start(t, w)
	waitDrained(t, e, n, 30*time.Second)
	stop()

	// Rewind the group: every entry is delivered a second time.
	ctx := context.Background()
	if err := e.rdb.XGroupSetID(ctx, e.likes.StreamKey(), DefaultGroup, "0").Err(); err != nil {
		t.Fatal(err)
	}
	w2 := e.newSync(t, "w2")
	w2.TrimEvery = time.Hour
	var replayed atomic.Int64
	w2.afterCommit = func(b store.Batch) error { replayed.Add(int64(len(b.Events))); return nil }
	start(t, w2)
	waitDrained(t, e, n, 30*time.Second)
	if replayed.Load() != n {
		t.Fatalf("replayed %d events, want %d", replayed.Load(), n)
	}
	assertExact(t, e, ids, n)
}

func TestSync_TwoWorkers(t *testing.T) {
	e := newEnv(t)
	ids := shoppers(40)
	start(t, e.newSync(t, "w1"))
	start(t, e.newSync(t, "w2"))
	n := clicks(t, e.likes, ids, 5000) // while both run
	waitDrained(t, e, n, 60*time.Second)
	assertExact(t, e, ids, n)

	var busy int
	if err := e.db.Get(&busy, `SELECT count(*) FROM worker_status WHERE events_synced > 0`); err != nil {
		t.Fatal(err)
	}
	if busy != 2 {
		t.Errorf("%d workers did work, want 2", busy)
	}
}

func TestSync_CrashAfterCommit(t *testing.T) {
	e := newEnv(t)
	ids := shoppers(20)
	n := clicks(t, e.likes, ids, 800)

	crash := errors.New("crash after commit")
	var committed atomic.Int64
	w1 := e.newSync(t, "w1")
	w1.afterCommit = func(b store.Batch) error { committed.Add(int64(len(b.Events))); return crash }
	if err := w1.Run(context.Background()); !errors.Is(err, crash) {
		t.Fatalf("Run: got %v, want the injected crash", err)
	}
	if committed.Load() == 0 || eventsStored(t, e.db) != committed.Load() {
		t.Fatalf("committed %d events before the crash, stored %d", committed.Load(), eventsStored(t, e.db))
	}
	backlog, err := e.likes.GroupBacklog(context.Background(), DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	// Pending: the committed batch, and the one read ahead.
	if backlog.Pending < committed.Load() {
		t.Fatalf("pending %d, want at least the %d committed but unacknowledged", backlog.Pending, committed.Load())
	}

	// Another worker claims the dead one's entries and finds them stored.
	start(t, e.newSync(t, "w2"))
	waitDrained(t, e, n, 30*time.Second)
	assertExact(t, e, ids, n)
}

func TestSync_Malformed(t *testing.T) {
	e := newEnv(t)
	ids := shoppers(10)
	ctx := context.Background()
	n := clicks(t, e.likes, ids, 100)
	junk := []map[string]any{
		{"product": "brake-pads"}, // missing fields
		{"product": "brake-pads", "shopper": ids[0], "action": "love", "at": "1700000000000"},
		{"product": "../etc", "shopper": ids[0], "action": "like", "at": "1700000000000"},
		{"product": "brake-pads", "shopper": ids[0], "action": "like", "at": "99999999999999999"},
		{"product": "brake-pads", "shopper": "a\x00b", "action": "like", "at": "1700000000000"},
	}
	for _, v := range junk {
		if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.likes.StreamKey(), Values: v}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	n += clicks(t, e.likes, ids, 100)
	start(t, e.newSync(t, "w1"))
	waitDrained(t, e, n, 30*time.Second)
	assertExact(t, e, ids, n)

	dead, err := e.rdb.XRange(ctx, e.likes.DeadLetterKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != len(junk) {
		t.Fatalf("dead-letter stream holds %d entries, want %d", len(dead), len(junk))
	}
	for _, d := range dead {
		if d.Values["id"] == "" || d.Values["error"] == "" || d.Values["fields"] == "" {
			t.Errorf("dead letter without id, error or fields: %v", d.Values)
		}
	}
}

func TestSync_Shutdown(t *testing.T) {
	e := newEnv(t)
	w := e.newSync(t, "w1")
	w.Block = time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	n := clicks(t, e.likes, shoppers(5), 10)
	waitDrained(t, e, n, 30*time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestSync_BoundedRedis: a group left over after a rename does not pin the
// stream, consumers of dead workers leave the group, and the status row and
// metrics carry the backlog bound.
func TestSync_BoundedRedis(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	ids := shoppers(50)
	n := clicks(t, e.likes, ids, 1000)
	if err := e.likes.EnsureGroup(ctx, "renamed-away"); err != nil {
		t.Fatal(err)
	}
	if err := e.likes.EnsureGroup(ctx, DefaultGroup); err != nil {
		t.Fatal(err)
	}
	// A worker that died holding entries, and one that died with none.
	if _, err := e.likes.ReadNew(ctx, DefaultGroup, "dead-busy", 5, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.XGroupCreateConsumer(ctx, e.likes.StreamKey(), DefaultGroup, "dead-idle").Err(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w := e.newSync(t, "w1")
	w.ConsumerIdle = 400 * time.Millisecond // past ClaimIdle, so dead-busy's entries are claimed first
	w.MaxBacklog = 1234
	w.Metrics = NewMetrics(reg, w.MaxBacklog)
	start(t, w)
	waitDrained(t, e, n, 30*time.Second)

	deadline := time.Now().Add(15 * time.Second)
	for {
		cs, err := e.rdb.XInfoConsumers(ctx, e.likes.StreamKey(), DefaultGroup).Result()
		if err == nil && len(cs) == 1 && cs[0].Name == "w1" && streamLen(t, e) <= 100 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers %+v (%v), stream %d entries; want only w1 and the history trimmed despite the other group", cs, err, streamLen(t, e))
		}
		time.Sleep(20 * time.Millisecond)
	}
	want := map[string]float64{
		"phoenix_worker_other_groups":            1,
		"phoenix_worker_backlog_max_events":      1234,
		"phoenix_worker_consumers_deleted_total": 2,
	}
	for name, v := range want {
		if got := gauge(t, reg, name); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
	var max int64
	if err := e.db.Get(&max, `SELECT max_backlog FROM worker_status WHERE consumer = 'w1'`); err != nil || max != 1234 {
		t.Errorf("worker_status max_backlog %d (%v), want 1234", max, err)
	}
}

// gauge reads one gauge's or counter's value from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
