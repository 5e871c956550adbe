package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
)

// auditScanLimit bounds how many waiting stream entries an audit reads to
// split the backlog by product; a larger backlog is summed only in part.
const auditScanLimit = 100000

// AuditRow is one product's numbers in every place a Like lives.
type AuditRow struct {
	ProductID string
	Live      int64 // the live count in Redis
	Waiting   int64 // net likes in stream entries the workers have not acknowledged
	Counter   int64 // product_counters.likes in PostgreSQL
	// Events is the product's likes in PostgreSQL's record (like_state),
	// which outlives the event history's retention.
	Events int64
}

// OK reports whether the numbers agree: PostgreSQL's counter equals its own
// events, and with the waiting events it makes the live count.
func (r AuditRow) OK() bool { return r.Counter == r.Events && r.Counter+r.Waiting == r.Live }

// Audit compares the shop's Likes in Redis with the admin's in PostgreSQL.
type Audit struct {
	Rows    []AuditRow // every product seen anywhere, sorted by id
	Backlog Backlog    // the consumer group's unacknowledged entries, summed over the shards
	// Partial is set when the backlog was too long to read in full, so
	// Waiting holds only part of it.
	Partial bool
	// Stable is set when no Like happened while the audit read (the stream's
	// last id did not move), so Redis and PostgreSQL were read at one moment.
	Stable bool
}

// Final reports whether the audit is conclusive: read at one moment, with
// nothing left waiting, so every difference is a real one.
func (a Audit) Final() bool { return a.Stable && a.Backlog.Total() == 0 }

// Mismatches returns the rows whose numbers disagree.
func (a Audit) Mismatches() []AuditRow {
	var out []AuditRow
	for _, r := range a.Rows {
		if !r.OK() {
			out = append(out, r)
		}
	}
	return out
}

// Totals sums the rows.
func (a Audit) Totals() AuditRow {
	t := AuditRow{ProductID: "total"}
	for _, r := range a.Rows {
		t.Live += r.Live
		t.Waiting += r.Waiting
		t.Counter += r.Counter
		t.Events += r.Events
	}
	return t
}

// RunAudit reads Redis, then PostgreSQL, then Redis again. When the stream
// did not move in between and the group had acknowledged everything, every
// event the shop wrote before the first read was committed before the
// PostgreSQL read, so the comparison is exact. Under live load, call it
// again until Final.
func RunAudit(ctx context.Context, likes *Likes, stats *Stats, group string) (Audit, error) {
	before, err := likes.auditRead(ctx, group)
	if err != nil {
		return Audit{}, err
	}
	stored, err := stats.auditCounts(ctx)
	if err != nil {
		return Audit{}, err
	}
	after, err := likes.auditRead(ctx, group)
	if err != nil {
		return Audit{}, err
	}
	a := Audit{Backlog: before.backlog, Partial: before.partial, Stable: before.lastID == after.lastID}
	ids := map[string]bool{}
	for id := range before.live {
		ids[id] = true
	}
	for id := range before.waiting {
		ids[id] = true
	}
	for id := range stored {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		r := AuditRow{ProductID: id, Live: before.live[id], Waiting: before.waiting[id],
			Counter: stored[id].counter, Events: stored[id].events}
		if r == (AuditRow{ProductID: id}) {
			continue // a product liked and unliked again everywhere
		}
		a.Rows = append(a.Rows, r)
	}
	return a, nil
}

// redisAudit is one reading of the shop's side.
type redisAudit struct {
	live    map[string]int64
	waiting map[string]int64 // net likes per product in unacknowledged entries
	backlog Backlog
	partial bool
	lastID  string // the stream's last generated id; "0-0" when there is no stream
}

// auditRead reads every shard (see auditShard) and sums them. lastID joins
// the shards' last ids, so it moves when any shard's stream moves.
func (s *Likes) auditRead(ctx context.Context, group string) (redisAudit, error) {
	sum := redisAudit{live: map[string]int64{}, waiting: map[string]int64{}}
	var last []string
	var backlogs []Backlog
	for i := range s.Shards() {
		r, err := s.Shard(i).auditShard(ctx, group)
		if err != nil {
			return redisAudit{}, err
		}
		for id, n := range r.live {
			sum.live[id] += n
		}
		for id, n := range r.waiting {
			sum.waiting[id] += n
		}
		backlogs = append(backlogs, r.backlog)
		sum.partial = sum.partial || r.partial
		last = append(last, r.lastID)
	}
	sum.backlog = SumBacklogs(backlogs)
	sum.lastID = strings.Join(last, ",")
	return sum, nil
}

// auditShard reads this view's shard: the live counts, the group's backlog
// and the stream's last id in one MULTI (one slot: they share the shard's
// hash tag), then splits the backlog by product. The split is read
// after the MULTI; it matters only while a backlog exists, when the audit
// is not final anyway.
func (s *Likes) auditShard(ctx context.Context, group string) (redisAudit, error) {
	pipe := s.rdb.TxPipeline()
	counts := pipe.HGetAll(ctx, s.CountsKey())
	state := s.groupState(ctx, pipe, group)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return redisAudit{}, fmt.Errorf("%w: audit redis: %v", ErrUnavailable, err)
	}
	st, err := parseGroupState(state)
	if err != nil {
		return redisAudit{}, err
	}
	r := redisAudit{live: map[string]int64{}, waiting: map[string]int64{}, backlog: st.backlog,
		partial: st.backlog.Estimated, lastID: st.lastGenerated}
	for id, v := range counts.Val() {
		r.live[id] = parseCount(v)
	}
	if r.backlog.Total() == 0 {
		return r, nil
	}
	if !st.found {
		// No worker has read the stream yet: all of it is waiting.
		return r, s.addWaiting(ctx, &r, "-", nil)
	}
	pending, err := s.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: s.StreamKey(), Group: group, Start: "-", End: "+", Count: auditScanLimit,
	}).Result()
	if err != nil {
		return redisAudit{}, fmt.Errorf("%w: audit pending: %v", ErrUnavailable, err)
	}
	ids := make([]string, len(pending))
	for i, p := range pending {
		ids[i] = p.ID
	}
	r.partial = r.partial || int64(len(pending)) < r.backlog.Pending
	return r, s.addWaiting(ctx, &r, "("+st.lastDelivered, ids)
}

// addWaiting adds to r.waiting the entries after from (undelivered) and the
// pending entries with the given ids.
func (s *Likes) addWaiting(ctx context.Context, r *redisAudit, from string, pending []string) error {
	add := func(msgs []redis.XMessage) {
		for _, m := range msgs {
			e, err := ParseEvent(m.ID, m.Values)
			if err != nil {
				continue // parked by the worker, counted nowhere
			}
			if e.Action == ActionLike {
				r.waiting[e.ProductID]++
			} else {
				r.waiting[e.ProductID]--
			}
		}
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.XMessageSliceCmd, len(pending))
	for i, id := range pending {
		cmds[i] = pipe.XRange(ctx, s.StreamKey(), id, id)
	}
	undelivered := pipe.XRangeN(ctx, s.StreamKey(), from, "+", auditScanLimit)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: audit backlog: %v", ErrUnavailable, err)
	}
	for _, c := range cmds {
		add(c.Val())
	}
	add(undelivered.Val())
	if int64(len(undelivered.Val())) == auditScanLimit {
		r.partial = true
	}
	return nil
}

// storedCounts is one product's numbers in PostgreSQL.
type storedCounts struct {
	counter, events int64
}

// auditCounts reads, in one snapshot, every product's counter and its
// likes in like_state. Counting them costs a scan of like_state: fine for
// an audit, which is why the dashboard never does it.
func (s *Stats) auditCounts(ctx context.Context) (map[string]storedCounts, error) {
	out := map[string]storedCounts{}
	err := s.readOnly(ctx, func(tx *sqlx.Tx) error {
		var counters []struct {
			ID    string `db:"product_id"`
			Likes int64  `db:"likes"`
		}
		if err := tx.SelectContext(ctx, &counters, `SELECT product_id, likes FROM product_counters`); err != nil {
			return err
		}
		var events []struct {
			ID  string `db:"product_id"`
			Net int64  `db:"net"`
		}
		if err := tx.SelectContext(ctx, &events, `
SELECT product_id, count(*) AS net FROM like_state GROUP BY product_id`); err != nil {
			return err
		}
		for _, c := range counters {
			out[c.ID] = storedCounts{counter: c.Likes}
		}
		for _, e := range events {
			sc := out[e.ID]
			sc.events = e.Net
			out[e.ID] = sc
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: audit postgres: %v", ErrUnavailable, err)
	}
	return out, nil
}

// readOnly runs fn in a read-only REPEATABLE READ transaction: one
// snapshot for all its statements.
func (s *Stats) readOnly(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	return fn(tx)
}

// Problem says in words how the row's numbers disagree ("" when they agree).
func (r AuditRow) Problem() string {
	var p []string
	if r.Counter != r.Events {
		p = append(p, fmt.Sprintf("counter %+d vs state", r.Counter-r.Events))
	}
	if d := r.Counter + r.Waiting - r.Live; d != 0 {
		p = append(p, fmt.Sprintf("postgres+waiting %+d vs redis", d))
	}
	return strings.Join(p, "; ")
}
