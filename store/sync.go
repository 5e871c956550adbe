package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// applyAttempts bounds how often ApplyBatch retries a transaction that
// PostgreSQL aborted because of a deadlock or a serialization failure.
const applyAttempts = 5

// ApplyBatch writes a batch of events in one transaction: the events that
// are not stored yet, and the counters, minute buckets and
// totals changed by exactly those events. Replaying events (a redelivery, a
// claim by another worker, a retry after an unclear commit) changes nothing.
// It returns how many events were new.
//
// Rows are written in a fixed order (tables in one order, rows sorted by
// key within each), so that concurrent workers lock in the same order; the
// rare deadlock or serialization failure is retried.
func (s *Stats) ApplyBatch(ctx context.Context, events []Event) (int, error) {
	events = sortedEvents(events)
	if len(events) == 0 {
		return 0, nil
	}
	for attempt := 1; ; attempt++ {
		var applied int
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			var err error
			applied, err = s.applyBatch(ctx, tx, events)
			return err
		})
		if err == nil {
			return applied, nil
		}
		if attempt >= applyAttempts || !retryable(err) || ctx.Err() != nil {
			return 0, fmt.Errorf("apply batch of %d events: %w", len(events), err)
		}
	}
}

// retryable reports whether PostgreSQL aborted the transaction only because
// of a concurrent one, so running it again can succeed.
func retryable(err error) bool {
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) {
		return false
	}
	return pqErr.Code == "40001" || pqErr.Code == "40P01" // serialization_failure, deadlock_detected
}

// sortedEvents returns the events ordered by stream id without duplicates.
func sortedEvents(events []Event) []Event {
	out := slices.Clone(events)
	slices.SortFunc(out, func(a, b Event) int { return cmp.Compare(a.ID, b.ID) })
	return slices.CompactFunc(out, func(a, b Event) bool { return a.ID == b.ID })
}

// The statements return their RETURNING rows as one row of arrays, which
// costs far less to read than a thousand rows.

const insertEvents = `
WITH ins AS (
    INSERT INTO like_events (stream_id, product_id, shopper_id, action, at)
    SELECT e.stream_id, e.product_id, e.shopper_id, e.action, timestamptz 'epoch' + e.ms * interval '1 millisecond'
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) AS e(stream_id, product_id, shopper_id, action, ms)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING stream_id
)
SELECT COALESCE(array_agg(stream_id), '{}') FROM ins`

const upsertProductCounters = `
INSERT INTO product_counters AS c (product_id, likes, like_events, unlike_events, updated_at)
SELECT d.product_id, d.likes, d.like_events, d.unlike_events, $5
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(product_id, likes, like_events, unlike_events)
ON CONFLICT (product_id) DO UPDATE SET
    likes = c.likes + EXCLUDED.likes,
    like_events = c.like_events + EXCLUDED.like_events,
    unlike_events = c.unlike_events + EXCLUDED.unlike_events,
    updated_at = EXCLUDED.updated_at`

const upsertBuckets = `
INSERT INTO like_buckets AS b (product_id, minute, likes, unlikes)
SELECT d.product_id, timestamptz 'epoch' + d.ms * interval '1 millisecond', d.likes, d.unlikes
FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(product_id, ms, likes, unlikes)
ON CONFLICT (product_id, minute) DO UPDATE SET
    likes = b.likes + EXCLUDED.likes,
    unlikes = b.unlikes + EXCLUDED.unlikes`

const updateTotals = `UPDATE totals SET likes = likes + $1, shoppers = shoppers + $2, events = events + $3`

// applyBatch runs the statements of ApplyBatch in tx. events are sorted and
// unique.
func (s *Stats) applyBatch(ctx context.Context, tx *sqlx.Tx, events []Event) (int, error) {
	n := len(events)
	ids, products, shoppers, actions := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	at := make([]int64, n)
	for i, e := range events {
		ids[i], products[i], shoppers[i], actions[i], at[i] = e.ID, e.ProductID, e.ShopperID, string(e.Action), e.At.UnixMilli()
	}
	var inserted pq.StringArray
	if err := tx.QueryRowContext(ctx, insertEvents,
		pq.StringArray(ids), pq.StringArray(products), pq.StringArray(shoppers), pq.StringArray(actions), pq.Int64Array(at),
	).Scan(&inserted); err != nil {
		return 0, fmt.Errorf("insert events: %w", err)
	}
	if len(inserted) == 0 {
		return 0, nil
	}
	d := aggregate(newEvents(events, inserted))
	// Rows that every batch touches (the minute's buckets, popular
	// products, the totals) are written in key order, the totals last, so
	// concurrent workers hold their locks only briefly before the commit.
	if err := writeBuckets(ctx, tx, d.buckets); err != nil {
		return 0, err
	}
	if err := writeProducts(ctx, tx, d.products, s.now()); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, updateTotals, d.likes, d.shoppers, d.events); err != nil {
		return 0, fmt.Errorf("update totals: %w", err)
	}
	if _, err := tx.ExecContext(ctx, notifyChanged); err != nil {
		return 0, fmt.Errorf("notify: %w", err)
	}
	return len(inserted), nil
}

// newEvents keeps the events whose ids were inserted.
func newEvents(events []Event, inserted []string) []Event {
	if len(inserted) == len(events) {
		return events
	}
	isNew := make(map[string]bool, len(inserted))
	for _, id := range inserted {
		isNew[id] = true
	}
	out := make([]Event, 0, len(inserted))
	for _, e := range events {
		if isNew[e.ID] {
			out = append(out, e)
		}
	}
	return out
}

func writeProducts(ctx context.Context, tx *sqlx.Tx, rows []productDelta, now time.Time) error {
	ids := make([]string, len(rows))
	likes, likeEvents, unlikeEvents := make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		ids[i], likes[i], likeEvents[i], unlikeEvents[i] = r.product, r.likes, r.likeEvents, r.unlikeEvents
	}
	_, err := tx.ExecContext(ctx, upsertProductCounters,
		pq.StringArray(ids), pq.Int64Array(likes), pq.Int64Array(likeEvents), pq.Int64Array(unlikeEvents), now)
	if err != nil {
		return fmt.Errorf("update product counters: %w", err)
	}
	return nil
}

func writeBuckets(ctx context.Context, tx *sqlx.Tx, rows []bucketDelta) error {
	ids := make([]string, len(rows))
	minutes, likes, unlikes := make([]int64, len(rows)), make([]int64, len(rows)), make([]int64, len(rows))
	for i, r := range rows {
		ids[i], minutes[i], likes[i], unlikes[i] = r.product, r.minute.UnixMilli(), r.likes, r.unlikes
	}
	_, err := tx.ExecContext(ctx, upsertBuckets,
		pq.StringArray(ids), pq.Int64Array(minutes), pq.Int64Array(likes), pq.Int64Array(unlikes))
	if err != nil {
		return fmt.Errorf("update buckets: %w", err)
	}
	return nil
}

// productDelta is the change of one product's counters.
type productDelta struct {
	product                         string
	likes, likeEvents, unlikeEvents int64
}

// bucketDelta is the change of one product's minute bucket.
type bucketDelta struct {
	product        string
	minute         time.Time
	likes, unlikes int64
}

// deltas is what a set of new events changes, each slice sorted by key so
// that writers lock rows in one order.
type deltas struct {
	products []productDelta
	buckets  []bucketDelta
	shoppers int64 // change of the number of shoppers who like something
	likes    int64 // net likes
	events   int64
}

// minuteOf is the bucket of an event time: the same as PostgreSQL's
// date_trunc('minute', at) (every time zone offset in use is whole minutes).
func minuteOf(at time.Time) time.Time { return at.UTC().Truncate(time.Minute) }

// aggregate sums events into deltas. A like counts +1 and an unlike -1
// towards the net likes, which is how the shop's live count moves.
func aggregate(events []Event) deltas {
	type bucketKey struct {
		product string
		minute  int64
	}
	products := map[string]*productDelta{}
	buckets := map[bucketKey]*bucketDelta{}
	var d deltas
	for _, e := range events {
		sign := int64(1)
		if e.Action == ActionUnlike {
			sign = -1
		}
		p := products[e.ProductID]
		if p == nil {
			p = &productDelta{product: e.ProductID}
			products[e.ProductID] = p
		}
		minute := minuteOf(e.At)
		k := bucketKey{e.ProductID, minute.UnixMilli()}
		b := buckets[k]
		if b == nil {
			b = &bucketDelta{product: e.ProductID, minute: minute}
			buckets[k] = b
		}
		p.likes += sign
		if sign > 0 {
			p.likeEvents++
			b.likes++
		} else {
			p.unlikeEvents++
			b.unlikes++
		}
		switch {
		case sign > 0 && e.ShopperLikes == 1:
			d.shoppers++ // started liking something
		case sign < 0 && e.ShopperLikes == 0:
			d.shoppers-- // stopped liking anything
		}
		d.likes += sign
		d.events++
	}
	for _, p := range products {
		d.products = append(d.products, *p)
	}
	slices.SortFunc(d.products, func(a, b productDelta) int { return cmp.Compare(a.product, b.product) })
	for _, b := range buckets {
		d.buckets = append(d.buckets, *b)
	}
	slices.SortFunc(d.buckets, func(a, b bucketDelta) int {
		return cmp.Or(cmp.Compare(a.product, b.product), a.minute.Compare(b.minute))
	})
	return d
}

// SyncProducts makes the products table match the catalog: new and changed
// products are written, products no longer in it are removed (their
// counters stay, so nothing counted is lost).
func (s *Stats) SyncProducts(ctx context.Context, products []Product) error {
	n := len(products)
	ids, names, categories := make([]string, n), make([]string, n), make([]string, n)
	nameI18n, categoryI18n := make([]string, n), make([]string, n)
	prices := make([]int64, n)
	for i, p := range products {
		ids[i], names[i], categories[i], prices[i] = p.ID, p.Name, p.Category, p.PriceCents
		if err := jsonText(&nameI18n[i], p.NameI18n); err != nil {
			return err
		}
		if err := jsonText(&categoryI18n[i], p.CategoryI18n); err != nil {
			return err
		}
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		_, err := tx.ExecContext(ctx, `
INSERT INTO products AS p (id, name, category, price_cents, name_i18n, category_i18n, updated_at)
SELECT d.id, d.name, d.category, d.price_cents, d.name_i18n::jsonb, d.category_i18n::jsonb, $7
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[])
    AS d(id, name, category, price_cents, name_i18n, category_i18n)
ORDER BY d.id
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category,
    price_cents = EXCLUDED.price_cents, name_i18n = EXCLUDED.name_i18n,
    category_i18n = EXCLUDED.category_i18n, updated_at = EXCLUDED.updated_at
WHERE (p.name, p.category, p.price_cents, p.name_i18n, p.category_i18n) IS DISTINCT FROM
    (EXCLUDED.name, EXCLUDED.category, EXCLUDED.price_cents, EXCLUDED.name_i18n, EXCLUDED.category_i18n)`,
			pq.StringArray(ids), pq.StringArray(names), pq.StringArray(categories), pq.Int64Array(prices),
			pq.StringArray(nameI18n), pq.StringArray(categoryI18n), s.now())
		if err != nil {
			return fmt.Errorf("upsert products: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM products WHERE id <> ALL($1::text[])`, pq.StringArray(ids)); err != nil {
			return fmt.Errorf("delete old products: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sync products: %w", err)
	}
	return nil
}

// jsonText writes names as the JSON text of a jsonb value.
func jsonText(dst *string, names Names) error {
	v, err := names.Value()
	if err != nil {
		return fmt.Errorf("sync products: %w", err)
	}
	*dst = v.(string)
	return nil
}

// WorkerReport is what a worker records of its heartbeat and progress, one
// row per consumer (read back as WorkerStatus).
type WorkerReport struct {
	Consumer    string
	LastBatchAt time.Time     // zero: no batch since the last record
	Synced      int64         // events applied since the last record
	Backlog     int64         // entries of the stream the group has not acknowledged
	MaxBacklog  int64         // the backlog at which the shop refuses Likes (0: none)
	Lag         time.Duration // how far behind the stream PostgreSQL is
}

// RecordWorkerStatus upserts the consumer's status row, adding Synced to
// its running total.
func (s *Stats) RecordWorkerStatus(ctx context.Context, st WorkerReport) error {
	last := sql.NullTime{Time: st.LastBatchAt, Valid: !st.LastBatchAt.IsZero()}
	// One statement, so that the row and its NOTIFY commit together.
	_, err := s.db.ExecContext(ctx, `
WITH up AS (
INSERT INTO worker_status AS w (consumer, last_batch_at, events_synced, backlog, max_backlog, lag_ms, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (consumer) DO UPDATE SET
    last_batch_at = COALESCE(EXCLUDED.last_batch_at, w.last_batch_at),
    events_synced = w.events_synced + EXCLUDED.events_synced,
    backlog = EXCLUDED.backlog, max_backlog = EXCLUDED.max_backlog,
    lag_ms = EXCLUDED.lag_ms, updated_at = EXCLUDED.updated_at
RETURNING 1)
SELECT pg_notify('`+NotifyChannel+`', '') FROM up`,
		st.Consumer, last, st.Synced, st.Backlog, st.MaxBacklog, st.Lag.Milliseconds(), s.now())
	if err != nil {
		return fmt.Errorf("record worker status: %w", err)
	}
	return nil
}
