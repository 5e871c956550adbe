package testkit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the driver "postgres"

	"phoenix/store"
)

// Stats opens a migrated Stats on a fresh database of its own, closed when
// the test ends.
func Stats(tb testing.TB) *store.Stats {
	tb.Helper()
	return StatsAt(tb, Postgres(tb))
}

// StatsAt opens Stats at url and migrates it, closed when the test ends.
func StatsAt(tb testing.TB, url string) *store.Stats {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := store.OpenStats(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

// DB is a connection pool to the database at url, for a test to read (or
// arrange) what the production code wrote, closed when the test ends. The
// store has no accessor for its own pool: its tables are its business.
func DB(tb testing.TB, url string) *sqlx.DB {
	tb.Helper()
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// Likes is a Likes store on the shared Redis under a key prefix of its own.
func Likes(tb testing.TB, opts ...store.LikesOptions) *store.Likes {
	tb.Helper()
	rdb, prefix := Redis(tb)
	return store.NewLikes(rdb, prefix, opts...)
}

// The statistics fixtures below write through the production writers (the
// worker's ApplyBatch, SyncProducts and RecordWorkerStatus), so that the
// schema has one writer and tests of the admin's read side need no worker.

// Part is a catalog product for SetProducts.
func Part(id, name, category string) store.Product {
	return store.Product{ID: id, Name: name, Category: category, PriceCents: 1000}
}

// SetProducts makes the products table hold products, as the worker's
// catalog sync does.
func SetProducts(tb testing.TB, s *store.Stats, products ...store.Product) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := s.SyncProducts(ctx, products); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
}

// AddLikes records, in one worker batch at time at, likes Likes of product
// by new shoppers, then unlikes Unlikes by some of them: the product's
// counter, its minute bucket and the totals move. PostgreSQL counts the
// shoppers from its record (like_state), so each like left standing is
// one more shopper, whatever the event's ShopperLikes says.
func AddLikes(tb testing.TB, s *store.Stats, product string, likes, unlikes int64, at time.Time) {
	tb.Helper()
	apply(tb, s, product, likes, unlikes, 2, at)
}

// AddFirstLikes records n Likes of product at time at, each a new shopper's
// first, as the shop writes them (ShopperLikes 1).
func AddFirstLikes(tb testing.TB, s *store.Stats, product string, n int64, at time.Time) {
	tb.Helper()
	apply(tb, s, product, n, 0, 1, at)
}

// apply writes the events through ApplyBatch; each like's shopper then
// likes shopperLikes products, each unlike's one fewer.
func apply(tb testing.TB, s *store.Stats, product string, likes, unlikes, shopperLikes int64, at time.Time) {
	tb.Helper()
	if unlikes > likes {
		tb.Fatalf("testkit: %d unlikes of %d likes: only a shopper who likes can unlike", unlikes, likes)
	}
	// Stream ids sort in the order written, and a random base keeps them
	// apart from other calls' (ApplyBatch ignores a known id).
	base := rand.Int64N(1e15) * 1e3 // #nosec G404 -- uniqueness, not secrecy
	var events []store.Event
	add := func(shopper string, action store.Action, after int64) {
		events = append(events, store.Event{ID: fmt.Sprintf("%d-%018d", at.UnixMilli(), base+int64(len(events))),
			ProductID: product, ShopperID: shopper, Action: action, At: at, ShopperLikes: after})
	}
	shoppers := make([]string, likes)
	for i := range shoppers {
		shoppers[i] = fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64()) // #nosec G404 -- as above
		add(shoppers[i], store.ActionLike, shopperLikes)
	}
	for _, shopper := range shoppers[:unlikes] {
		add(shopper, store.ActionUnlike, shopperLikes-1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := s.ApplyBatch(ctx, events); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
}

// SeedHistory records likes Likes in the database at url, each a new
// shopper's first, on products p000, p001, … (n of them, in 12 categories)
// spread over the last week. It writes in
// batches of the worker's default size through ApplyBatch (a million Likes
// take about half a minute), then vacuums and analyzes as autovacuum would
// have by then: the batches' bucket updates leave dead rows behind.
func SeedHistory(tb testing.TB, url string, n, likes int) {
	tb.Helper()
	s := StatsAt(tb, url)
	parts := make([]store.Product, n)
	for i := range parts {
		parts[i] = Part(fmt.Sprintf("p%03d", i), fmt.Sprintf("Part %d", i), fmt.Sprintf("Category %d", i%12))
	}
	SetProducts(tb, s, parts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	now, minutes := time.Now(), min(likes, 7*24*60)
	events := make([]store.Event, 0, 5000)
	for i := 1; i <= likes; i++ {
		events = append(events, store.Event{ID: fmt.Sprintf("%d-0", i), ProductID: parts[i%n].ID,
			ShopperID: fmt.Sprintf("s%08d", i), Action: store.ActionLike,
			At: now.Add(-time.Duration(i%minutes) * time.Minute), ShopperLikes: 1})
		if len(events) == cap(events) || i == likes {
			if _, err := s.ApplyBatch(ctx, events); err != nil {
				tb.Fatalf("testkit: %v", err)
			}
			events = events[:0]
		}
	}
	if _, err := DB(tb, url).ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
}

// SetWorker records a worker consumer's heartbeat at heartbeat, as the
// worker does with each status it writes.
func SetWorker(tb testing.TB, s *store.Stats, consumer string, heartbeat time.Time, backlog, lagMS int64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := s.At(func() time.Time { return heartbeat }).RecordWorkerStatus(ctx, store.WorkerReport{
		Consumer: consumer, LastBatchAt: heartbeat, Backlog: backlog, Lag: time.Duration(lagMS) * time.Millisecond})
	if err != nil {
		tb.Fatalf("testkit: %v", err)
	}
}
