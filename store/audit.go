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
	// Events is the product's likers in PostgreSQL's record (like_state).
	// The history (like_events) is not summed: retention drops old
	// events, and a Like repeated after Redis lost data is history that
	// changed no state.
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
	// Checks are the audit's checks beyond the products: the totals and the
	// minute buckets against the record, and the parked entries.
	Checks []Check
}

// Check is one of the audit's checks beyond the per-product rows.
type Check struct {
	Name    string // "totals", "buckets", "dead letters", "conflicts"
	Problem string // "" when it passes
}

// Failed returns the checks that did not pass.
func (a Audit) Failed() []Check {
	var out []Check
	for _, c := range a.Checks {
		if c.Problem != "" {
			out = append(out, c)
		}
	}
	return out
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
	snap, err := stats.auditCounts(ctx)
	if err != nil {
		return Audit{}, err
	}
	after, err := likes.auditRead(ctx, group)
	if err != nil {
		return Audit{}, err
	}
	a := Audit{Backlog: before.backlog, Partial: before.partial, Stable: before.lastID == after.lastID}
	a.Checks = snap.checks(before.deadLetters)
	stored := snap.products
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
	// deadLetters is the entries parked in the dead-letter stream.
	deadLetters int64
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
		sum.deadLetters += r.deadLetters
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
	dead := pipe.XLen(ctx, s.DeadLetterKey())
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return redisAudit{}, fmt.Errorf("%w: audit redis: %v", ErrUnavailable, err)
	}
	st, err := parseGroupState(state)
	if err != nil {
		return redisAudit{}, err
	}
	r := redisAudit{live: map[string]int64{}, waiting: map[string]int64{}, backlog: st.backlog,
		partial: st.backlog.Estimated, lastID: st.lastGenerated, deadLetters: dead.Val()}
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

// storedAudit is PostgreSQL's side of an audit, read in one snapshot.
type storedAudit struct {
	products map[string]storedCounts
	// totals row, and the same figures from the record and the counters
	totalLikes, totalShoppers int64
	stateLikes, stateShoppers int64
	counterSum                int64
	bucketsOff                []string // products whose minute buckets do not sum to their event counters
	conflicts                 int64    // events parked in event_conflicts
}

// checks turns the snapshot and the dead-letter count into the audit's
// checks. Parked entries fail the audit: until someone has looked at them
// (and removed them), a Like may hide among them.
func (st storedAudit) checks(deadLetters int64) []Check {
	var totals []string
	if st.totalLikes != st.stateLikes || st.totalLikes != st.counterSum {
		totals = append(totals, fmt.Sprintf("likes %d vs record %d vs counters %d", st.totalLikes, st.stateLikes, st.counterSum))
	}
	if st.totalShoppers != st.stateShoppers {
		totals = append(totals, fmt.Sprintf("shoppers %d vs record %d", st.totalShoppers, st.stateShoppers))
	}
	cs := []Check{{Name: "totals", Problem: strings.Join(totals, "; ")}, {Name: "buckets"}, {Name: "dead letters"}, {Name: "conflicts"}}
	if n := len(st.bucketsOff); n > 0 {
		cs[1].Problem = fmt.Sprintf("%d products' minute buckets do not sum to their event counters: %s", n, strings.Join(st.bucketsOff[:min(n, 5)], " "))
	}
	if deadLetters > 0 {
		cs[2].Problem = fmt.Sprintf("%d malformed entries parked in the dead-letter streams", deadLetters)
	}
	if st.conflicts > 0 {
		cs[3].Problem = fmt.Sprintf("%d events parked in event_conflicts (a different event under a stored id)", st.conflicts)
	}
	return cs
}

// auditCounts reads, in one snapshot, every product's counter and likers in
// the record, the totals, the minute buckets' sums and the parked events.
// The record and the buckets cost a scan each: fine for an audit, which is
// why the dashboard never does it.
func (s *Stats) auditCounts(ctx context.Context) (storedAudit, error) {
	out := storedAudit{products: map[string]storedCounts{}}
	err := s.readOnly(ctx, func(tx *sqlx.Tx) error {
		var rows []struct {
			ID           string `db:"product_id"`
			Counter      int64  `db:"counter"`
			Likers       int64  `db:"likers"`
			LikeEvents   int64  `db:"like_events"`
			UnlikeEvents int64  `db:"unlike_events"`
			BucketLikes  int64  `db:"bucket_likes"`
			BucketUnlike int64  `db:"bucket_unlikes"`
		}
		// The buckets count every new event, as the counters' like_events
		// and unlike_events do (store/sync.go); only likes follows the state.
		if err := tx.SelectContext(ctx, &rows, `
SELECT COALESCE(c.product_id, l.product_id) AS product_id, COALESCE(c.likes, 0) AS counter,
    COALESCE(l.n, 0) AS likers, COALESCE(c.like_events, 0) AS like_events, COALESCE(c.unlike_events, 0) AS unlike_events,
    COALESCE(b.likes, 0) AS bucket_likes, COALESCE(b.unlikes, 0) AS bucket_unlikes
FROM product_counters c
FULL JOIN (SELECT product_id, count(*) AS n FROM like_state WHERE liked GROUP BY product_id) l USING (product_id)
LEFT JOIN (SELECT product_id, SUM(likes) AS likes, SUM(unlikes) AS unlikes FROM like_buckets GROUP BY product_id) b
    ON b.product_id = COALESCE(c.product_id, l.product_id)`); err != nil {
			return err
		}
		for _, r := range rows {
			out.products[r.ID] = storedCounts{counter: r.Counter, events: r.Likers}
			out.counterSum += r.Counter
			if r.BucketLikes != r.LikeEvents || r.BucketUnlike != r.UnlikeEvents {
				out.bucketsOff = append(out.bucketsOff, r.ID)
			}
		}
		slices.Sort(out.bucketsOff)
		return tx.QueryRowxContext(ctx, `
SELECT t.likes, t.shoppers, (SELECT count(*) FROM like_state WHERE liked), (SELECT count(DISTINCT shopper_id) FROM like_state WHERE liked),
    (SELECT count(*) FROM event_conflicts)
FROM totals t`).Scan(&out.totalLikes, &out.totalShoppers, &out.stateLikes, &out.stateShoppers, &out.conflicts)
	})
	if err != nil {
		return storedAudit{}, fmt.Errorf("%w: audit postgres: %v", ErrUnavailable, err)
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
		p = append(p, fmt.Sprintf("counter %+d vs events", r.Counter-r.Events))
	}
	if d := r.Counter + r.Waiting - r.Live; d != 0 {
		p = append(p, fmt.Sprintf("postgres+waiting %+d vs redis", d))
	}
	return strings.Join(p, "; ")
}
