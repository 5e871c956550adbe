package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The admin dashboard's read queries. Each one reads the worker's
// pre-aggregated tables (totals, product_counters, like_buckets,
// worker_status), never like_events, so a refresh costs O(products) however
// many Likes were ever recorded.

// Totals is the headline numbers of the dashboard.
type Totals struct {
	Likes         int64 `db:"likes"`          // net likes now
	LikedProducts int64 `db:"liked_products"` // products with at least one like
	Shoppers      int64 `db:"shoppers"`       // shoppers who like at least one product
	Events        int64 `db:"events"`         // like and unlike events recorded
}

// ProductStats is one product's line in the dashboard's ranked table.
type ProductStats struct {
	ID       string `db:"id"`
	Name     string `db:"name"`
	Category string `db:"category"`
	Likes    int64  `db:"likes"`     // net likes now
	LastHour int64  `db:"last_hour"` // net change over the last hour
	// NameI18n and CategoryI18n are the catalog's names in other languages.
	NameI18n     Names `db:"name_i18n"`
	CategoryI18n Names `db:"category_i18n"`
}

// CategoryStats is one category's line in the dashboard's summary.
type CategoryStats struct {
	Category     string `db:"category"`
	CategoryI18n Names  `db:"category_i18n"` // the category's names in other languages
	Products     int64  `db:"products"`
	Likes        int64  `db:"likes"`
	LastHour     int64  `db:"last_hour"`
}

// Minute is one point of the likes-per-minute series.
type Minute struct {
	At      time.Time `db:"minute"`
	Likes   int64     `db:"likes"`
	Unlikes int64     `db:"unlikes"`
}

// WorkerStatus is one worker consumer's heartbeat and progress.
type WorkerStatus struct {
	Consumer     string       `db:"consumer"`
	LastBatchAt  sql.NullTime `db:"last_batch_at"`
	EventsSynced int64        `db:"events_synced"`
	Backlog      int64        `db:"backlog"`
	MaxBacklog   int64        `db:"max_backlog"`
	LagMS        int64        `db:"lag_ms"`
	UpdatedAt    time.Time    `db:"updated_at"`
}

// maxWorkers bounds the worker rows read: consumers that stopped long ago
// keep their row, and the dashboard only needs the recent ones.
const maxWorkers = 20

// Now returns the store's clock, which the dashboard's time windows use.
func (s *Stats) Now() time.Time { return s.now() }

// Totals returns the headline numbers.
func (s *Stats) Totals(ctx context.Context) (Totals, error) {
	const q = `SELECT t.likes, t.shoppers, t.events,
		(SELECT count(*) FROM product_counters WHERE likes > 0) AS liked_products
		FROM totals t WHERE t.id`
	var t Totals
	err := s.db.GetContext(ctx, &t, q)
	if errors.Is(err, sql.ErrNoRows) {
		return Totals{}, nil
	}
	if err != nil {
		return Totals{}, fmt.Errorf("totals: %w", err)
	}
	return t, nil
}

// ProductStats returns every product (and every counted product missing from
// the catalog table) with its likes and its net change since since, most
// liked first.
func (s *Stats) ProductStats(ctx context.Context, since time.Time) ([]ProductStats, error) {
	const q = `WITH hour AS (
			SELECT product_id, sum(likes) - sum(unlikes) AS change
			FROM like_buckets WHERE minute >= $1 GROUP BY product_id
		)
		SELECT COALESCE(p.id, c.product_id) AS id,
			COALESCE(p.name, c.product_id) AS name,
			COALESCE(p.category, '') AS category,
			COALESCE(p.name_i18n, '{}') AS name_i18n,
			COALESCE(p.category_i18n, '{}') AS category_i18n,
			COALESCE(c.likes, 0) AS likes,
			COALESCE(h.change, 0) AS last_hour
		FROM products p
		FULL JOIN product_counters c ON c.product_id = p.id
		LEFT JOIN hour h ON h.product_id = COALESCE(p.id, c.product_id)
		ORDER BY likes DESC, name, id`
	var rows []ProductStats
	if err := s.db.SelectContext(ctx, &rows, q, since); err != nil {
		return nil, fmt.Errorf("product stats: %w", err)
	}
	return rows, nil
}

// CategoryStats returns each category's products, likes and net change since
// since, most liked first.
func (s *Stats) CategoryStats(ctx context.Context, since time.Time) ([]CategoryStats, error) {
	const q = `WITH hour AS (
			SELECT product_id, sum(likes) - sum(unlikes) AS change
			FROM like_buckets WHERE minute >= $1 GROUP BY product_id
		), lines AS (
			SELECT COALESCE(p.id, c.product_id) AS id, COALESCE(p.category, '') AS category,
				COALESCE(p.category_i18n, '{}') AS category_i18n, COALESCE(c.likes, 0) AS likes
			FROM products p FULL JOIN product_counters c ON c.product_id = p.id
		)
		SELECT l.category, (array_agg(l.category_i18n))[1] AS category_i18n, count(*) AS products, COALESCE(sum(l.likes), 0) AS likes,
			COALESCE(sum(h.change), 0) AS last_hour
		FROM lines l LEFT JOIN hour h ON h.product_id = l.id
		GROUP BY l.category
		ORDER BY likes DESC, category`
	var rows []CategoryStats
	if err := s.db.SelectContext(ctx, &rows, q, since); err != nil {
		return nil, fmt.Errorf("category stats: %w", err)
	}
	return rows, nil
}

// LikesPerMinute returns n consecutive minutes ending with the minute of
// until, for one product or for all when productID is empty. Minutes without
// a bucket are zero, so the series always has n points.
func (s *Stats) LikesPerMinute(ctx context.Context, productID string, until time.Time, n int) ([]Minute, error) {
	end := until.UTC().Truncate(time.Minute)
	start := end.Add(-time.Duration(n-1) * time.Minute)
	q := `SELECT minute, sum(likes) AS likes, sum(unlikes) AS unlikes
		FROM like_buckets WHERE minute BETWEEN $1 AND $2 GROUP BY minute ORDER BY minute`
	args := []any{start, end}
	if productID != "" {
		q = `SELECT minute, likes, unlikes
			FROM like_buckets WHERE product_id = $3 AND minute BETWEEN $1 AND $2 ORDER BY minute`
		args = append(args, productID)
	}
	var rows []Minute
	if err := s.db.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("likes per minute: %w", err)
	}
	return fillMinutes(rows, start, n), nil
}

// fillMinutes spreads rows over n minutes from start, zero where missing.
func fillMinutes(rows []Minute, start time.Time, n int) []Minute {
	out := make([]Minute, n)
	for i := range out {
		out[i].At = start.Add(time.Duration(i) * time.Minute)
	}
	for _, r := range rows {
		i := int(r.At.Sub(start) / time.Minute)
		if i >= 0 && i < n {
			out[i].Likes += r.Likes
			out[i].Unlikes += r.Unlikes
		}
	}
	return out
}

// WorkerStatus returns the most recently active worker consumers, latest first.
func (s *Stats) WorkerStatus(ctx context.Context) ([]WorkerStatus, error) {
	const q = `SELECT consumer, last_batch_at, events_synced, backlog, max_backlog, lag_ms, updated_at
		FROM worker_status ORDER BY updated_at DESC, consumer LIMIT $1`
	var rows []WorkerStatus
	if err := s.db.SelectContext(ctx, &rows, q, maxWorkers); err != nil {
		return nil, fmt.Errorf("worker status: %w", err)
	}
	return rows, nil
}

// Version is what the dashboard's read queries depend on, read in one small
// query: the worker changes Totals with every batch it syncs and Heartbeat
// with every status it writes, and a catalog update changes Products. Equal
// versions (at the same minute, as the queries' time windows move by the
// minute) give equal answers, so the admin can answer "not modified" without
// running them.
type Version struct {
	Totals    Totals    // Likes, Shoppers, Events (LikedProducts is not read)
	Heartbeat time.Time // the latest worker status update; zero if none
	Products  string    // number of catalog rows and their latest update
}

// Version returns the data version.
func (s *Stats) Version(ctx context.Context) (Version, error) {
	const q = `SELECT COALESCE(t.likes, 0), COALESCE(t.shoppers, 0), COALESCE(t.events, 0),
		COALESCE((SELECT max(updated_at) FROM worker_status), 'epoch'),
		(SELECT count(*) || '@' || COALESCE(max(updated_at)::text, '') FROM products)
		FROM (SELECT true AS id) one LEFT JOIN totals t ON t.id`
	var v Version
	err := s.db.QueryRowContext(ctx, q).Scan(&v.Totals.Likes, &v.Totals.Shoppers, &v.Totals.Events, &v.Heartbeat, &v.Products)
	if err != nil {
		return Version{}, fmt.Errorf("data version: %w", err)
	}
	if v.Heartbeat.Equal(time.Unix(0, 0)) {
		v.Heartbeat = time.Time{}
	}
	return v, nil
}
