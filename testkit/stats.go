package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// Helpers that write the statistics tables the way the worker does, so that
// tests of the admin's read side need no worker. db must be migrated.

// AddProduct inserts (or renames) a product in the products table.
func AddProduct(tb testing.TB, db *sqlx.DB, id, name, category string) {
	tb.Helper()
	exec(tb, db, `INSERT INTO products (id, name, category, price_cents) VALUES ($1, $2, $3, 1000)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category, updated_at = now()`, id, name, category)
}

// AddLikes records likes Likes and unlikes Unlikes of product at time at:
// the product's counter, its minute bucket and the totals change together,
// as one worker batch would change them.
func AddLikes(tb testing.TB, db *sqlx.DB, product string, likes, unlikes int64, at time.Time) {
	tb.Helper()
	net := likes - unlikes
	exec(tb, db, `INSERT INTO product_counters (product_id, likes, like_events, unlike_events) VALUES ($1, $2, $3, $4)
		ON CONFLICT (product_id) DO UPDATE SET likes = product_counters.likes + EXCLUDED.likes,
			like_events = product_counters.like_events + EXCLUDED.like_events,
			unlike_events = product_counters.unlike_events + EXCLUDED.unlike_events`, product, net, likes, unlikes)
	exec(tb, db, `INSERT INTO like_buckets (product_id, minute, likes, unlikes) VALUES ($1, date_trunc('minute', $2::timestamptz), $3, $4)
		ON CONFLICT (product_id, minute) DO UPDATE SET likes = like_buckets.likes + EXCLUDED.likes,
			unlikes = like_buckets.unlikes + EXCLUDED.unlikes`, product, at, likes, unlikes)
	exec(tb, db, `UPDATE totals SET likes = likes + $1, events = events + $2`, net, likes+unlikes)
}

// SetShoppers sets the number of shoppers who like something.
func SetShoppers(tb testing.TB, db *sqlx.DB, n int64) {
	tb.Helper()
	exec(tb, db, `UPDATE totals SET shoppers = $1`, n)
}

// SetWorker writes a worker consumer's heartbeat row.
func SetWorker(tb testing.TB, db *sqlx.DB, consumer string, heartbeat time.Time, backlog, lagMS int64) {
	tb.Helper()
	exec(tb, db, `INSERT INTO worker_status (consumer, last_batch_at, events_synced, backlog, lag_ms, updated_at)
		VALUES ($1, $2, 0, $3, $4, $2)
		ON CONFLICT (consumer) DO UPDATE SET last_batch_at = $2, backlog = $3, lag_ms = $4, updated_at = $2`,
		consumer, heartbeat, backlog, lagMS)
}

func exec(tb testing.TB, db *sqlx.DB, q string, args ...any) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, q, args...); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
}
