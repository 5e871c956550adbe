package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// applyAttempts bounds how often ApplyBatch retries a transaction that
// PostgreSQL aborted because of a deadlock or a serialization failure.
const applyAttempts = 5

// The advisory locks of a batch, taken in this order and held to its
// commit. What an event changes depends on what came before it for its
// pair, so a batch reads and writes the like state under stateLock:
// exclusive for a batch that may hold any shopper, shared for one whose
// shoppers belong to its shard (ApplyShard), which takes its shard's lock
// as well. Every batch then writes the counters under countersLock, one at
// a time: they are the rows all batches share, and one order of commits
// keeps the change numbers that readers follow (product_counters.changed)
// in commit order.
const (
	stateLock      = 0x70686f656e6978 // "phoenix"
	countersLock   = stateLock + 1
	shardLockClass = 0x70687368 // "phsh", with the shard as the second key
)

// Conflict reasons, as event_conflicts.reason records them.
const (
	// ConflictDifferent: a different event arrived under a (shard, stream
	// id) already stored, e.g. Redis reused ids after it lost writes.
	ConflictDifferent = "conflict"
	// ConflictExpired: the event is older than the kept history
	// (PHOENIX_EVENT_RETENTION), so a replay could no longer be recognised.
	ConflictExpired = "expired"
)

// Conflict is an event parked instead of applied.
type Conflict struct {
	Reason string
	Event  Event  // as it arrived
	Stored *Event // the version stored under its id (ConflictDifferent only)
}

// Applied is what one batch changed in PostgreSQL.
type Applied struct {
	New       int        // events stored for the first time (the rest were replays or parked)
	Changed   int        // new events that changed the like state
	Conflicts []Conflict // events parked in event_conflicts
}

// ApplyBatch applies events as Apply does and returns how many were new.
func (s *Stats) ApplyBatch(ctx context.Context, events []Event) (int, error) {
	a, err := s.Apply(ctx, events)
	return a.New, err
}

// Apply writes a batch of events in one transaction. Every event not stored
// yet joins the history (like_events) and its counts: the per-product
// like_events and unlike_events, the minute buckets and totals.events. It
// changes the like state (like_state) only if it is newer than the pair's
// last applied event and its action differs from the state: a Like of a
// product PostgreSQL already has liked, or an Unlike of one it has not,
// changes nothing (Redis may have lost data and said "changed"). Only
// state changes move the net likes (product_counters.likes, totals.likes)
// and totals.shoppers, so a Like never counts twice and totals.shoppers is
// the number of shoppers with a liked pair in like_state (an unliked pair
// keeps its row and the position of its last event). The event counts
// move with every new event because which events change the state depends
// on the order in which concurrent workers commit their batches, and the
// counts must not.
// Events within the batch apply in stream order. A replayed event changes
// nothing; a different event under a stored id, or one older than the kept
// history, is parked in event_conflicts and returned.
//
// The rare deadlock or serialization failure is retried. Batches apply one
// at a time; see ApplyShard for batches that can apply side by side.
func (s *Stats) Apply(ctx context.Context, events []Event) (Applied, error) {
	return s.apply(ctx, events, 0)
}

// ApplyShard is Apply for a batch read from one shard's stream in a layout
// of shards shards. When every event's shopper belongs to that shard (as
// the shop routes them: ShardOf), no batch of another shard touches their
// like state, so batches of different shards read and write it side by
// side and take turns only for the counters (BenchmarkSync_Drain with two
// shards and two workers: twice as many events a second as when every
// batch waited for the one before). Otherwise, or when shards is not the
// count RecordShards last recorded (a worker of another layout may hold
// the same shoppers under other shards), the batch applies as Apply does.
// A batch whose ids are all past the highest one the shard applied
// (stream_marks), as a drain's are, cannot hold a replay: its history is
// copied in without looking for them (copyEvents).
func (s *Stats) ApplyShard(ctx context.Context, shards int, events []Event) (Applied, error) {
	return s.apply(ctx, events, shards)
}

// RecordShards records the shard count under which ApplyShard applies
// batches side by side: the worker's PHOENIX_REDIS_SHARDS, at its start. It
// waits for the batches in flight.
func (s *Stats) RecordShards(ctx context.Context, shards int) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, stateLock); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE shard_layout SET shards = $1 WHERE shards <> $1`, shards)
		return err
	})
	if err != nil {
		return fmt.Errorf("record shards: %w", err)
	}
	return nil
}

// errOtherLayout stops a batch of ApplyShard whose shard count is not the one
// recorded: it applies again as Apply does.
var errOtherLayout = errors.New("batch of another shard layout")

// errStored stops a batch that met a row stored already where its locks
// said none could be (copyEvents, upsertState): it applies again as a
// careful batch, which looks for every row first.
var errStored = errors.New("a row taken for new is stored")

// apply runs Apply (shards 0) or ApplyShard.
func (s *Stats) apply(ctx context.Context, events []Event, shards int) (Applied, error) {
	b, err := newApplyBatch(events)
	if err != nil {
		return Applied{}, err
	}
	if shards > 0 && b.routed(shards) {
		b.shards = shards
	}
	if len(b.events) == 0 {
		return Applied{}, nil
	}
	for attempt := 1; ; attempt++ {
		var a Applied
		err := s.inTx(ctx, func(tx *sqlx.Tx) error {
			var err error
			a, err = s.applyBatch(ctx, tx, b)
			return err
		})
		if err == nil {
			return a, nil
		}
		if errors.Is(err, errOtherLayout) {
			b.shards = 0
			continue
		}
		if errors.Is(err, errStored) && !b.careful {
			b.careful = true
			continue
		}
		if attempt >= applyAttempts || !retryable(err) || ctx.Err() != nil {
			return Applied{}, fmt.Errorf("apply batch of %d events: %w", len(events), err)
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

// streamPos is a stream entry id as the pair Redis compares: (ms, seq).
type streamPos struct{ ms, seq int64 }

func (p streamPos) compare(q streamPos) int {
	return cmp.Or(cmp.Compare(p.ms, q.ms), cmp.Compare(p.seq, q.seq))
}

// parseStreamID splits a stream entry id "ms-seq".
func parseStreamID(id string) (streamPos, error) {
	ms, seq, ok := strings.Cut(id, "-")
	p := streamPos{}
	var err1, err2 error
	p.ms, err1 = strconv.ParseInt(ms, 10, 64)
	p.seq, err2 = strconv.ParseInt(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil || p.ms < 0 || p.seq < 0 {
		return streamPos{}, fmt.Errorf("bad stream id %q", clip(id))
	}
	return p, nil
}

// applyBatch is a batch ready to apply: events unique by (shard, id) in
// stream order, with their positions.
type applyBatch struct {
	events []Event
	pos    []streamPos
	// extra holds the other versions of ids the batch holds twice; each is
	// a conflict unless it matches what PostgreSQL stores under the id.
	extra []Event
	// shards, when not 0, is the shard count under which the batch is one
	// shard's events, of shoppers only that shard holds (ApplyShard).
	shards int
	// careful is set when a row the batch took for new was stored: every
	// row is looked for first (errStored).
	careful bool
}

// routed reports whether every event of b is of one shard, the one its
// shopper belongs to among shards.
func (b applyBatch) routed(shards int) bool {
	return !slices.ContainsFunc(b.events, func(e Event) bool {
		return e.Shard != b.events[0].Shard || shardOf(e.ShopperID, shards) != e.Shard
	})
}

// newApplyBatch sorts the events by stream id (then shard) and drops
// repeated ones, keeping different versions of one id aside.
func newApplyBatch(events []Event) (applyBatch, error) {
	type keyed struct {
		e   Event
		pos streamPos
	}
	ks := make([]keyed, len(events))
	for i, e := range events {
		p, err := parseStreamID(e.ID)
		if err != nil {
			return applyBatch{}, err
		}
		ks[i] = keyed{e, p}
	}
	slices.SortStableFunc(ks, func(a, b keyed) int { return cmp.Or(a.pos.compare(b.pos), cmp.Compare(a.e.Shard, b.e.Shard)) })
	var b applyBatch
	for i, k := range ks {
		if i > 0 && ks[i-1].e.Shard == k.e.Shard && ks[i-1].e.ID == k.e.ID {
			if !sameEvent(b.events[len(b.events)-1], k.e) {
				b.extra = append(b.extra, k.e)
			}
			continue
		}
		b.events = append(b.events, k.e)
		b.pos = append(b.pos, k.pos)
	}
	return b, nil
}

// sameEvent reports whether two events under one id say the same thing.
func sameEvent(a, b Event) bool {
	return a.ProductID == b.ProductID && a.ShopperID == b.ShopperID && a.Action == b.Action && a.At.UnixMilli() == b.At.UnixMilli()
}

// insertEvents stores the events not stored yet, past the kept history,
// and returns where that starts and the keys of the new ones (matched to
// the batch in Go: a join in SQL sorts both sides by text) as arrays: one
// row costs far less to read than a thousand. The stored versions of ids
// that were already there are read by storedEvents, only when some were
// (a replay or a conflict).
const insertEvents = `
WITH kept AS (
    SELECT kept_from_ms FROM event_history
), ins AS (
    INSERT INTO like_events (shard, stream_id, stream_ms, product_id, shopper_id, action, at)
    SELECT shard, stream_id, ms, product_id, shopper_id, action, timestamptz 'epoch' + at_ms * interval '1 millisecond'
    FROM unnest($1::int[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[])
        AS b(shard, stream_id, ms, product_id, shopper_id, action, at_ms)
    WHERE ms >= (SELECT kept_from_ms FROM kept)
    ON CONFLICT DO NOTHING
    RETURNING shard, stream_id
)
SELECT (SELECT kept_from_ms FROM kept), COALESCE(array_agg(shard), '{}'), COALESCE(array_agg(stream_id), '{}') FROM ins`

// readPairs reads what the batch needs of the like state: the state of
// the pairs the batch names, and which of its shoppers like a product the
// batch does not name: with the named pairs' state that tells whether a
// shopper's like count is 0, or becomes 1, which is all that moves
// totals.shoppers. Each is an index lookup per pair or shopper (the second
// stops at the first such product) rather than a read of every pair of
// every shopper, which took PostgreSQL twice as long (a batch of 5,000 in
// EXPLAIN ANALYZE: 157 against 71 ms). The planner cannot estimate a
// CTE's rows and would hash-join a scan of the whole state, whose cost
// grows with every shopper, so the lookups are LATERAL subqueries that
// OFFSET 0 and LIMIT keep from being flattened into that join. Each result
// comes back as arrays: one row costs far less to read than a thousand.
const readPairs = `
WITH b AS (
    SELECT * FROM unnest($1::text[], $2::text[]) AS b(product_id, shopper_id)
), named AS (
    SELECT s.shopper_id, s.product_id, s.liked, (extract(epoch FROM s.liked_at) * 1000)::bigint AS liked_ms, s.last_ms, s.last_seq
    FROM (SELECT DISTINCT shopper_id, product_id FROM b) k,
        LATERAL (SELECT * FROM like_state s WHERE s.shopper_id = k.shopper_id AND s.product_id = k.product_id OFFSET 0) s
), others AS (
    SELECT p.shopper_id FROM (SELECT shopper_id, array_agg(product_id) AS products FROM b GROUP BY shopper_id) p,
        LATERAL (SELECT FROM like_state s WHERE s.shopper_id = p.shopper_id AND s.liked AND s.product_id <> ALL (p.products) LIMIT 1) s
)
SELECT o.shoppers, l.shoppers, l.products, l.liked, l.liked_ms, l.last_ms, l.last_seq
FROM (SELECT COALESCE(array_agg(shopper_id), '{}') AS shoppers FROM others) o,
    (SELECT COALESCE(array_agg(shopper_id), '{}') AS shoppers, COALESCE(array_agg(product_id), '{}') AS products,
        COALESCE(array_agg(liked), '{}') AS liked, COALESCE(array_agg(liked_ms), '{}') AS liked_ms,
        COALESCE(array_agg(last_ms), '{}') AS last_ms, COALESCE(array_agg(last_seq), '{}') AS last_seq FROM named) l`

// storedEvents reads the stored versions of the given (shard, id) keys
// with their ordinals, as arrays.
const storedEvents = `
SELECT COALESCE(array_agg(k.ord), '{}'), COALESCE(array_agg(e.product_id), '{}'), COALESCE(array_agg(e.shopper_id), '{}'),
    COALESCE(array_agg(e.action), '{}'), COALESCE(array_agg((extract(epoch FROM e.at) * 1000)::bigint), '{}')
FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[]) AS k(ord, shard, ms, stream_id)
JOIN like_events e ON e.shard = k.shard AND e.stream_ms = k.ms AND e.stream_id = k.stream_id`

// upsertState writes the batch's changes of the like state and parks its
// conflicts: the rows of its own shoppers and events. The pairs readPairs
// did not find are inserted without looking for them first (ON CONFLICT
// looks): under the batch's locks nothing else adds a pair of its
// shoppers (retention only deletes), so an insert that meets one after
// all fails, and the batch applies again as a careful one.
const upsertState = `
WITH d AS (
    SELECT shopper_id, product_id, shard, liked, timestamptz 'epoch' + liked_ms * interval '1 millisecond' AS liked_at,
        last_ms, last_seq, known
    FROM unnest($1::text[], $2::text[], $3::int[], $4::boolean[], $5::bigint[], $6::bigint[], $7::bigint[], $8::boolean[])
        AS d(shopper_id, product_id, shard, liked, liked_ms, last_ms, last_seq, known)
), added AS (
    INSERT INTO like_state (shopper_id, product_id, shard, liked, liked_at, last_ms, last_seq)
    SELECT shopper_id, product_id, shard, liked, liked_at, last_ms, last_seq FROM d WHERE NOT known
    RETURNING 1
), pairs AS (
    INSERT INTO like_state AS s (shopper_id, product_id, shard, liked, liked_at, last_ms, last_seq)
    SELECT shopper_id, product_id, shard, liked, liked_at, last_ms, last_seq FROM d WHERE known
    ON CONFLICT (shopper_id, product_id) DO UPDATE SET shard = EXCLUDED.shard, liked = EXCLUDED.liked,
        liked_at = EXCLUDED.liked_at, last_ms = EXCLUDED.last_ms, last_seq = EXCLUDED.last_seq
    RETURNING 1
), parked AS (
    INSERT INTO event_conflicts (shard, stream_id, reason, product_id, shopper_id, action, at,
        stored_product_id, stored_shopper_id, stored_action, stored_at)
    SELECT shard, stream_id, reason, product_id, shopper_id, action, timestamptz 'epoch' + at_ms * interval '1 millisecond',
        NULLIF(s_product, ''), NULLIF(s_shopper, ''), NULLIF(s_action, ''),
        CASE WHEN s_product <> '' THEN timestamptz 'epoch' + s_at_ms * interval '1 millisecond' END
    FROM unnest($9::int[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[],
        $16::text[], $17::text[], $18::text[], $19::bigint[])
        AS d(shard, stream_id, reason, product_id, shopper_id, action, at_ms, s_product, s_shopper, s_action, s_at_ms)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT 1`

// addCounters moves the counters every batch shares and the shard's
// synced mark, and tells the admins.
const addCounters = `
WITH buckets AS (
    INSERT INTO like_buckets AS b (product_id, minute, likes, unlikes)
    SELECT d.product_id, timestamptz 'epoch' + d.ms * interval '1 millisecond', d.likes, d.unlikes
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[]) AS d(product_id, ms, likes, unlikes)
    ON CONFLICT (product_id, minute) DO UPDATE SET
        likes = b.likes + EXCLUDED.likes, unlikes = b.unlikes + EXCLUDED.unlikes
    RETURNING 1
), products AS (
    INSERT INTO product_counters AS c (product_id, likes, like_events, unlike_events, updated_at, changed)
    SELECT d.product_id, d.likes, d.like_events, d.unlike_events, $9, nextval('product_changes')
    FROM unnest($5::text[], $6::bigint[], $7::bigint[], $8::bigint[]) AS d(product_id, likes, like_events, unlike_events)
    ON CONFLICT (product_id) DO UPDATE SET
        likes = c.likes + EXCLUDED.likes,
        like_events = c.like_events + EXCLUDED.like_events,
        unlike_events = c.unlike_events + EXCLUDED.unlike_events,
        updated_at = EXCLUDED.updated_at,
        -- The change number of the highlights (0011_highlights.sql).
        changed = EXCLUDED.changed
    RETURNING 1
), marks AS (
    INSERT INTO stream_marks AS m (shard, last_ms, last_seq, updated_at)
    SELECT shard, last_ms, last_seq, $9 FROM unnest($10::int[], $11::bigint[], $12::bigint[]) AS d(shard, last_ms, last_seq)
    ON CONFLICT (shard) DO UPDATE SET last_ms = EXCLUDED.last_ms, last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at
    WHERE (EXCLUDED.last_ms, EXCLUDED.last_seq) > (m.last_ms, m.last_seq)
    RETURNING 1
), totals AS (
    UPDATE totals SET likes = likes + $13, shoppers = shoppers + $14, events = events + $15
    WHERE ($13, $14, $15) <> (0::bigint, 0::bigint, 0::bigint)
    RETURNING 1
)
SELECT pg_notify('` + NotifyChannel + `', '')`

// pairKey names a (shopper, product) pair of the like state.
type pairKey struct{ shopper, product string }

// pairState is a pair's like state as the batch moves it.
type pairState struct {
	liked   bool
	likedAt int64 // unix ms of the like that made it liked
	last    streamPos
	shard   int
	touched bool // an event of this batch was applied to it
	known   bool // like_state has a row for it
}

// eventKey is an event's key in the history: ids are unique per shard.
type eventKey struct {
	shard int
	id    string
}

// lockBatch takes b's locks and, for a shard's batch, reads where the kept
// history starts and the shard's mark, the highest stream id it applied
// ({-1, -1}: none).
func lockBatch(ctx context.Context, tx *sqlx.Tx, b applyBatch) (keptFrom int64, mark streamPos, err error) {
	// JIT compiling costs more than these statements do (20 ms of a 33 ms
	// batch when an estimate crossed jit_above_cost), and a bitmap scan of
	// each shopper's few pairs more than an index scan (the planner expects
	// thousands a shopper: 92 against 61 ms for 4,880 shoppers in EXPLAIN
	// ANALYZE), so the batch turns both off, in the lock's round trip.
	const settings = `set_config('jit', 'off', true), set_config('enable_bitmapscan', 'off', true)`
	mark = streamPos{-1, -1}
	if b.shards == 0 {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1), `+settings, stateLock); err != nil {
			return 0, mark, fmt.Errorf("lock: %w", err)
		}
		return 0, mark, nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock($2, $3), `+settings,
		stateLock, shardLockClass, b.events[0].Shard); err != nil {
		return 0, mark, fmt.Errorf("lock: %w", err)
	}
	// Read after the lock, so that a RecordShards or a batch of the shard
	// that committed while this one waited is seen.
	var recorded int
	if err := tx.QueryRowContext(ctx, `
SELECT l.shards, h.kept_from_ms, COALESCE(m.last_ms, -1), COALESCE(m.last_seq, -1)
FROM shard_layout l CROSS JOIN event_history h LEFT JOIN stream_marks m ON m.shard = $1`, b.events[0].Shard,
	).Scan(&recorded, &keptFrom, &mark.ms, &mark.seq); err != nil {
		return 0, mark, fmt.Errorf("read shard layout: %w", err)
	}
	if recorded != b.shards {
		return 0, mark, errOtherLayout
	}
	return keptFrom, mark, nil
}

// writeHistory stores the events of b not stored yet and returns their
// ordinals in b (from 1) and where the kept history starts. A shard's
// batch whose ids all lie past the shard's mark (b.pos is sorted) holds
// none that is stored, the usual batch of a drain: it is copied in. Any
// other is inserted with a look for each id (insertEvents).
func writeHistory(ctx context.Context, tx *sqlx.Tx, b applyBatch, keptFrom int64, mark streamPos) ([]int64, int64, error) {
	n := len(b.events)
	if b.shards > 0 && !b.careful && len(b.extra) == 0 && b.pos[0].compare(mark) > 0 && b.pos[0].ms >= keptFrom {
		if err := copyEvents(ctx, tx, b); err != nil {
			return nil, 0, err
		}
		fresh := make([]int64, n)
		for i := range fresh {
			fresh[i] = int64(i + 1)
		}
		return fresh, keptFrom, nil
	}
	shards, ids, products, shoppers, actions := make([]int64, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ms, at := make([]int64, n), make([]int64, n)
	ord := make(map[eventKey]int64, n)
	for i, e := range b.events {
		shards[i], ids[i], ms[i], products[i], shoppers[i], actions[i], at[i] = int64(e.Shard), e.ID, b.pos[i].ms, e.ProductID, e.ShopperID, string(e.Action), e.At.UnixMilli()
		ord[eventKey{e.Shard, e.ID}] = int64(i + 1)
	}
	var insShards pq.Int64Array
	var insIDs pq.StringArray
	if err := tx.QueryRowContext(ctx, insertEvents,
		pq.Int64Array(shards), pq.StringArray(ids), pq.Int64Array(ms), pq.StringArray(products), pq.StringArray(shoppers),
		pq.StringArray(actions), pq.Int64Array(at),
	).Scan(&keptFrom, &insShards, &insIDs); err != nil {
		return nil, 0, fmt.Errorf("insert events: %w", err)
	}
	fresh := make([]int64, len(insIDs))
	for i, id := range insIDs {
		fresh[i] = ord[eventKey{int(insShards[i]), id}]
	}
	return fresh, keptFrom, nil
}

// applyBatch runs the statements of Apply in tx.
func (s *Stats) applyBatch(ctx context.Context, tx *sqlx.Tx, b applyBatch) (Applied, error) {
	keptFrom, mark, err := lockBatch(ctx, tx, b)
	if err != nil {
		return Applied{}, err
	}
	n := len(b.events)
	fresh, keptFrom, err := writeHistory(ctx, tx, b, keptFrom, mark)
	if err != nil {
		return Applied{}, err
	}
	var knownOrd pq.Int64Array
	var knownProducts, knownShoppers, knownActions pq.StringArray
	var knownAt pq.Int64Array
	if len(fresh) < n {
		// Some ids were stored already (or are past the kept history).
		isNew := make([]bool, n)
		for _, o := range fresh {
			isNew[o-1] = true
		}
		var ks, kShards, kMS []int64
		var kIDs []string
		for i, e := range b.events {
			if o := int64(i + 1); !isNew[i] && b.pos[i].ms >= keptFrom {
				ks, kShards, kMS, kIDs = append(ks, o), append(kShards, int64(e.Shard)), append(kMS, b.pos[i].ms), append(kIDs, e.ID)
			}
		}
		if len(ks) > 0 {
			if err := tx.QueryRowContext(ctx, storedEvents,
				pq.Int64Array(ks), pq.Int64Array(kShards), pq.Int64Array(kMS), pq.StringArray(kIDs),
			).Scan(&knownOrd, &knownProducts, &knownShoppers, &knownActions, &knownAt); err != nil {
				return Applied{}, fmt.Errorf("read stored events: %w", err)
			}
		}
	}
	a := Applied{New: len(fresh)}
	// What PostgreSQL holds under each id of the batch now: the stored
	// version, or the batch's own if it was new.
	holds := make(map[eventKey]Event, len(knownOrd)+len(b.extra))
	for i, o := range knownOrd {
		e := b.events[o-1]
		stored := Event{Shard: e.Shard, ID: e.ID, ProductID: knownProducts[i], ShopperID: knownShoppers[i],
			Action: Action(knownActions[i]), At: time.UnixMilli(knownAt[i]).UTC()}
		holds[eventKey{e.Shard, e.ID}] = stored
		if !sameEvent(e, stored) {
			a.Conflicts = append(a.Conflicts, Conflict{Reason: ConflictDifferent, Event: e, Stored: &stored})
		}
	}
	if len(b.extra) > 0 { // only they ask
		for _, o := range fresh {
			e := b.events[o-1]
			holds[eventKey{e.Shard, e.ID}] = e
		}
	}
	for i, p := range b.pos {
		if p.ms < keptFrom {
			a.Conflicts = append(a.Conflicts, Conflict{Reason: ConflictExpired, Event: b.events[i]})
		}
	}
	for _, e := range b.extra {
		if stored, ok := holds[eventKey{e.Shard, e.ID}]; ok && !sameEvent(e, stored) {
			a.Conflicts = append(a.Conflicts, Conflict{Reason: ConflictDifferent, Event: e, Stored: &stored})
		} else if !ok {
			a.Conflicts = append(a.Conflicts, Conflict{Reason: ConflictExpired, Event: e})
		}
	}
	if len(fresh) == 0 && len(a.Conflicts) == 0 {
		return a, nil // all replays
	}
	var (
		likeOthers                   pq.StringArray
		pairShoppers, pairProducts   pq.StringArray
		pairLiked                    pq.BoolArray
		pairLikedAt, pairMS, pairSeq pq.Int64Array
	)
	products, shoppers := make(pq.StringArray, n), make(pq.StringArray, n)
	for i, e := range b.events {
		products[i], shoppers[i] = e.ProductID, e.ShopperID
	}
	if err := tx.QueryRowContext(ctx, readPairs, products, shoppers).Scan(
		&likeOthers, &pairShoppers, &pairProducts, &pairLiked, &pairLikedAt, &pairMS, &pairSeq); err != nil {
		return Applied{}, fmt.Errorf("read like state: %w", err)
	}
	state := make(map[pairKey]*pairState, len(fresh))
	for _, o := range fresh {
		e := b.events[o-1]
		if k := (pairKey{e.ShopperID, e.ProductID}); state[k] == nil {
			state[k] = &pairState{last: streamPos{-1, -1}}
		}
	}
	// likes is each shopper's like count as far as it moves totals.shoppers:
	// exact over the pairs the batch names, and the others count as one
	// (readPairs).
	likes := make(map[string]int64, len(likeOthers)+len(pairShoppers))
	for _, sh := range likeOthers {
		likes[sh] = 1
	}
	for i, sh := range pairShoppers {
		if pairLiked[i] {
			likes[sh]++
		}
		if st := state[pairKey{sh, pairProducts[i]}]; st != nil { // nil: a pair only a replay touches
			st.liked, st.likedAt, st.last, st.known = pairLiked[i], pairLikedAt[i], streamPos{pairMS[i], pairSeq[i]}, true
		}
	}
	changed := make([]Event, 0, len(fresh))
	slices.Sort(fresh) // stream order: the ords follow the sorted batch
	for _, o := range fresh {
		e, p := b.events[o-1], b.pos[o-1]
		st := state[pairKey{e.ShopperID, e.ProductID}]
		if p.compare(st.last) <= 0 {
			continue // older than what the pair already applied
		}
		st.last, st.shard, st.touched = p, e.Shard, true
		if (e.Action == ActionLike) == st.liked {
			continue // the record already says so
		}
		st.liked = !st.liked
		if st.liked {
			st.likedAt = e.At.UnixMilli()
			likes[e.ShopperID]++
		} else {
			likes[e.ShopperID]--
		}
		// The shopper's like count after the event, as PostgreSQL's
		// record has it and as far as aggregate counts shoppers by it
		// (whether it is 0 or became 1).
		e.ShopperLikes = likes[e.ShopperID]
		changed = append(changed, e)
	}
	a.Changed = len(changed)
	all := make([]Event, len(fresh))
	for i, o := range fresh {
		all[i] = b.events[o-1]
	}
	d := withNet(aggregate(all), aggregate(changed))
	if err := writeState(ctx, tx, state, a.Conflicts, b.careful); err != nil {
		return Applied{}, err
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, countersLock); err != nil {
		return Applied{}, fmt.Errorf("lock counters: %w", err)
	}
	if err := s.writeCounters(ctx, tx, b, fresh, d); err != nil {
		return Applied{}, err
	}
	return a, nil
}

// copyEvents appends the batch's events to the history with COPY, for a
// batch none of whose ids can be stored: rows in bulk, with no look for
// each id first (two workers' drain: 27,535 and 29,288 events/s with the
// insert, 31,383 and 34,154 with COPY, interleaved). An id that is stored
// already returns errStored.
func copyEvents(ctx context.Context, tx *sqlx.Tx, b applyBatch) error {
	stmt, err := tx.PrepareContext(ctx, `COPY like_events (shard, stream_id, stream_ms, product_id, shopper_id, action, at) FROM STDIN`)
	if err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	defer stmt.Close() // for the error paths; Close below reports the COPY's end
	for i, e := range b.events {
		// At as the insert stores it: whole milliseconds.
		if _, err = stmt.ExecContext(ctx, int64(e.Shard), e.ID, b.pos[i].ms, e.ProductID, e.ShopperID, string(e.Action), time.UnixMilli(e.At.UnixMilli()).UTC()); err != nil {
			break
		}
	}
	if err == nil {
		_, err = stmt.ExecContext(ctx)
	}
	if err == nil {
		err = stmt.Close()
	}
	if err != nil {
		return fmt.Errorf("copy events: %w", notNew(err))
	}
	return nil
}

// notNew is err as errStored when PostgreSQL refused a row it holds.
func notNew(err error) error {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" { // unique_violation
		return fmt.Errorf("%w: %v", errStored, err)
	}
	return err
}

// writeState runs upsertState: the pairs the batch touched,
// sorted so that writers lock rows in one order, and the conflicts.
func writeState(ctx context.Context, tx *sqlx.Tx, state map[pairKey]*pairState, conflicts []Conflict, careful bool) error {
	var pairs struct {
		shoppers, products pq.StringArray
		shards, likedAt    pq.Int64Array
		liked, known       pq.BoolArray
		lastMS, lastSeq    pq.Int64Array
	}
	keys := make([]pairKey, 0, len(state))
	for k, st := range state {
		if st.touched {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b pairKey) int {
		if c := strings.Compare(a.shopper, b.shopper); c != 0 {
			return c // most pairs differ here: cmp.Or would compare the products too
		}
		return strings.Compare(a.product, b.product)
	})
	for _, k := range keys {
		st := state[k]
		pairs.shoppers, pairs.products = append(pairs.shoppers, k.shopper), append(pairs.products, k.product)
		pairs.shards, pairs.liked = append(pairs.shards, int64(st.shard)), append(pairs.liked, st.liked)
		pairs.likedAt = append(pairs.likedAt, st.likedAt)
		pairs.lastMS, pairs.lastSeq = append(pairs.lastMS, st.last.ms), append(pairs.lastSeq, st.last.seq)
		pairs.known = append(pairs.known, st.known || careful)
	}
	var cf struct {
		shards                                    pq.Int64Array
		ids, reasons, products, shoppers, actions pq.StringArray
		at                                        pq.Int64Array
		sProducts, sShoppers, sActions            pq.StringArray
		sAt                                       pq.Int64Array
	}
	for _, c := range conflicts {
		e := c.Event
		cf.shards, cf.ids, cf.reasons = append(cf.shards, int64(e.Shard)), append(cf.ids, e.ID), append(cf.reasons, c.Reason)
		cf.products, cf.shoppers = append(cf.products, e.ProductID), append(cf.shoppers, e.ShopperID)
		cf.actions, cf.at = append(cf.actions, string(e.Action)), append(cf.at, e.At.UnixMilli())
		var st Event
		if c.Stored != nil {
			st = *c.Stored
		}
		cf.sProducts, cf.sShoppers, cf.sActions = append(cf.sProducts, st.ProductID), append(cf.sShoppers, st.ShopperID), append(cf.sActions, string(st.Action))
		cf.sAt = append(cf.sAt, st.At.UnixMilli())
	}
	_, err := tx.ExecContext(ctx, upsertState,
		pairs.shoppers, pairs.products, pairs.shards, pairs.liked, pairs.likedAt, pairs.lastMS, pairs.lastSeq, pairs.known,
		cf.shards, cf.ids, cf.reasons, cf.products, cf.shoppers, cf.actions, cf.at, cf.sProducts, cf.sShoppers, cf.sActions, cf.sAt)
	if err != nil {
		return fmt.Errorf("write like state: %w", notNew(err))
	}
	return nil
}

// writeCounters runs addCounters.
func (s *Stats) writeCounters(ctx context.Context, tx *sqlx.Tx, b applyBatch, fresh []int64, d deltas) error {
	var bk struct {
		products              pq.StringArray
		minutes, likes, unlks pq.Int64Array
	}
	for _, r := range d.buckets {
		bk.products, bk.minutes = append(bk.products, r.product), append(bk.minutes, r.minute.UnixMilli())
		bk.likes, bk.unlks = append(bk.likes, r.likes), append(bk.unlks, r.unlikes)
	}
	var pc struct {
		ids                         pq.StringArray
		likes, likeEvents, unlikeEv pq.Int64Array
	}
	for _, r := range d.products {
		pc.ids, pc.likes = append(pc.ids, r.product), append(pc.likes, r.likes)
		pc.likeEvents, pc.unlikeEv = append(pc.likeEvents, r.likeEvents), append(pc.unlikeEv, r.unlikeEvents)
	}
	var mk struct{ shards, ms, seq pq.Int64Array }
	top := map[int]streamPos{}
	for _, o := range fresh {
		e, p := b.events[o-1], b.pos[o-1]
		if t, ok := top[e.Shard]; !ok || p.compare(t) > 0 {
			top[e.Shard] = p
		}
	}
	for _, sh := range slices.Sorted(maps.Keys(top)) {
		mk.shards, mk.ms, mk.seq = append(mk.shards, int64(sh)), append(mk.ms, top[sh].ms), append(mk.seq, top[sh].seq)
	}
	_, err := tx.ExecContext(ctx, addCounters,
		bk.products, bk.minutes, bk.likes, bk.unlks,
		pc.ids, pc.likes, pc.likeEvents, pc.unlikeEv, s.now(),
		mk.shards, mk.ms, mk.seq,
		d.likes, d.shoppers, d.events)
	if err != nil {
		return fmt.Errorf("write counters: %w", err)
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

// withNet combines the event counts of every new event (events) with the
// net likes and shoppers of the state changes (changes): the history's
// counts do not depend on the order in which concurrent workers commit,
// while the state, and so the net, does not count a Like twice.
func withNet(events, changes deltas) deltas {
	net := make(map[string]int64, len(changes.products))
	for _, p := range changes.products {
		net[p.product] = p.likes
	}
	for i := range events.products {
		events.products[i].likes = net[events.products[i].product]
	}
	events.likes, events.shoppers = changes.likes, changes.shoppers
	return events
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
