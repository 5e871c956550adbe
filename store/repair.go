package store

import (
	"cmp"
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// PostgreSQL is the record: like_state's liked pairs say which shopper
// likes which product now, and stream_marks the highest stream id applied per shard.
// When Redis forgets writes that PostgreSQL already has (a flush, a lost
// append-only tail, an asynchronous failover), the shard is repaired from
// that record.

//go:embed scripts/marksynced.lua
var markSyncedLua string

// markSyncedScript raises a shard's synced mark, never lowers it.
var markSyncedScript = redis.NewScript(markSyncedLua)

// RepairFlagTTL bounds how long a shard refuses Likes when the repairing
// worker dies mid-repair; a live repair refreshes the flag as it goes.
const RepairFlagTTL = 30 * time.Second

// repairPage is how many stream entries, shoppers or counts one round trip
// of a repair reads or writes.
const repairPage = 1000

// StreamID is a Redis stream entry id, ms-seq; the zero value is 0-0.
type StreamID struct{ MS, Seq uint64 }

// ParseStreamID parses "ms-seq" (or "ms").
func ParseStreamID(s string) (StreamID, error) {
	ms, seq, found := strings.Cut(s, "-")
	a, err := strconv.ParseUint(ms, 10, 64)
	if err != nil {
		return StreamID{}, fmt.Errorf("bad stream id %q", clip(s))
	}
	var b uint64
	if found {
		if b, err = strconv.ParseUint(seq, 10, 64); err != nil {
			return StreamID{}, fmt.Errorf("bad stream id %q", clip(s))
		}
	}
	return StreamID{a, b}, nil
}

// Compare orders stream ids as Redis does.
func (id StreamID) Compare(o StreamID) int {
	return cmp.Or(cmp.Compare(id.MS, o.MS), cmp.Compare(id.Seq, o.Seq))
}

func (id StreamID) String() string { return fmt.Sprintf("%d-%d", id.MS, id.Seq) }

// repairFlagKey is set while shard is repaired; the Like script answers
// busy while it exists, so no Like changes the shard under the repair.
func (s *Likes) repairFlagKey(shard int) string { return s.shardKey(shard, "repairing") }

// repairsKey counts shard's repairs: each repair adds one as it starts. A
// worker reads it with each batch and again when fewer of the batch's
// entries were pending than it read (see Batch.Repairs).
func (s *Likes) repairsKey(shard int) string { return s.shardKey(shard, "repairs") }

// Repairs returns the shard's repair count ("" when there is none: no
// repair since Redis began, or Redis lost the count with its data).
func (s *Likes) Repairs(ctx context.Context) (string, error) {
	v, err := s.rdb.Get(ctx, s.repairsKey(s.shard)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: read repair count: %v", ErrUnavailable, err)
	}
	return v, nil
}

// syncedKey holds the highest stream id of shard that a worker committed to
// PostgreSQL and then acknowledged. It lives in Redis, so a loss of Redis
// writes rolls it back with the rest; PostgreSQL's mark does not roll back.
func (s *Likes) syncedKey(shard int) string { return s.shardKey(shard, "synced") }

// MarkSynced raises shard's synced mark to id (never lowers it), after the
// entries up to id were committed and acknowledged.
func (s *Likes) MarkSynced(ctx context.Context, shard int, id string) error {
	if err := markSyncedScript.Run(ctx, s.rdb, []string{s.syncedKey(shard)}, id).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: mark synced: %v", ErrUnavailable, err)
	}
	return nil
}

// SyncedMark returns shard's synced mark (0-0 when there is none).
func (s *Likes) SyncedMark(ctx context.Context, shard int) (StreamID, error) {
	v, err := s.rdb.Get(ctx, s.syncedKey(shard)).Result()
	if errors.Is(err, redis.Nil) {
		return StreamID{}, nil
	}
	if err != nil {
		return StreamID{}, fmt.Errorf("%w: read synced mark: %v", ErrUnavailable, err)
	}
	return ParseStreamID(v)
}

// StreamMark returns the highest stream id of shard applied to PostgreSQL,
// and false when none was.
func (s *Stats) StreamMark(ctx context.Context, shard int) (StreamID, bool, error) {
	var m struct {
		MS  int64 `db:"last_ms"`
		Seq int64 `db:"last_seq"`
	}
	err := s.db.GetContext(ctx, &m, `SELECT last_ms, last_seq FROM stream_marks WHERE shard = $1`, shard)
	if errors.Is(err, sql.ErrNoRows) {
		return StreamID{}, false, nil
	}
	if err != nil {
		return StreamID{}, false, fmt.Errorf("%w: read stream mark: %v", ErrUnavailable, err)
	}
	return StreamID{uint64(max(m.MS, 0)), uint64(max(m.Seq, 0))}, true, nil //nolint:gosec // clamped to ≥ 0
}

// ShardCheck is what a loss check of one shard read.
type ShardCheck struct {
	Shard         int
	Mark          StreamID // PostgreSQL's highest applied id
	HasMark       bool     // PostgreSQL applied something on this shard
	Synced        StreamID // Redis's synced mark (0-0 when missing)
	LastGenerated StreamID // the stream's last id (0-0 when there is no stream)
	Group         bool     // the consumer group exists
	Repairing     bool     // another repair holds the shard's flag
	// Lost says why Redis lost writes that PostgreSQL has ("" when it did not).
	Lost string
}

// CheckShard tells whether Redis lost writes of shard that PostgreSQL
// applied. prev is PostgreSQL's mark from an earlier check (StreamID{} for
// none). Redis lost writes when
//   - PostgreSQL has a mark but the group is gone (a flush or a new server);
//   - the stream's last generated id is behind the mark (every applied id
//     came from this stream, and Redis never lowers its last id itself);
//   - Redis's synced mark is behind prev and the stream no longer holds the
//     entry prev: entries committed a whole check ago are forgotten. This
//     one still holds after new Likes have moved the stream's last id past
//     the mark again. A batch in flight (committed, not yet acknowledged,
//     for as long as PostgreSQL or Redis keeps its worker retrying) is not
//     a loss: its entries are still in the stream, and Redis replicates and
//     replays writes in order, so it also holds every write before them.
func CheckShard(ctx context.Context, likes *Likes, stats *Stats, group string, shard int, prev StreamID) (ShardCheck, error) {
	c := ShardCheck{Shard: shard}
	var err error
	if c.Mark, c.HasMark, err = stats.StreamMark(ctx, shard); err != nil {
		return c, err
	}
	pipe := likes.rdb.Pipeline()
	synced := pipe.Get(ctx, likes.syncedKey(shard))
	flag := pipe.Exists(ctx, likes.repairFlagKey(shard))
	view := likes.Shard(shard)
	state := view.groupState(ctx, pipe, group)
	var held *redis.XMessageSliceCmd
	if prev != (StreamID{}) {
		held = pipe.XRangeN(ctx, view.StreamKey(), prev.String(), prev.String(), 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return c, fmt.Errorf("%w: check shard %d: %v", ErrUnavailable, shard, err)
	}
	st, err := parseGroupState(state)
	if err != nil {
		return c, err
	}
	c.Group, c.Repairing = st.found, flag.Val() == 1
	c.LastGenerated, _ = ParseStreamID(st.lastGenerated)
	if v, err := synced.Result(); err == nil {
		c.Synced, _ = ParseStreamID(v)
	}
	switch {
	case !c.HasMark:
	case !c.Group:
		c.Lost = "consumer group missing"
	case c.LastGenerated.Compare(c.Mark) < 0:
		c.Lost = fmt.Sprintf("stream's last id %s behind postgres mark %s", c.LastGenerated, c.Mark)
	case c.Synced.Compare(prev) < 0 && (held == nil || len(held.Val()) == 0):
		c.Lost = fmt.Sprintf("synced mark %s behind postgres mark %s", c.Synced, prev)
	}
	return c, nil
}

// Repair is what a repair of one shard changed (or, dry, would change).
type Repair struct {
	Shard   int
	Reason  string
	Drained int // stream entries applied to PostgreSQL before the rewrite (new ones)
	// ShoppersFixed are the shoppers whose Redis set differed from the
	// record; ProductsRecounted the products whose live count did.
	ShoppersFixed     []string
	ProductsRecounted []string
	Started, Finished time.Time
}

// ErrRepairLocked means another process is repairing the shard.
var ErrRepairLocked = errors.New("shard is being repaired by another process")

// RepairShard rewrites shard's shoppers' sets and live counts in Redis from
// PostgreSQL's record, exactly, while shops keep taking Likes:
//  1. take the shard's repair lock in PostgreSQL (one repairer per shard);
//  2. set the shard's repairing flag: from that instant the Like script
//     refuses Likes on the shard (busy: 503, retry; a Like is idempotent).
//     Scripts run one at a time, so every Like either finished before the
//     flag, with its event in the stream, or changes nothing;
//  3. apply every event the stream still holds to PostgreSQL (replays are
//     ignored), so the record holds every Like Redis took;
//  4. compare each shopper's set and each count with the record and
//     rewrite those that differ;
//  5. move the stream's last id and the group past PostgreSQL's mark, so
//     new ids are never ids PostgreSQL already holds, and raise the synced
//     mark so the loss check passes;
//  6. record the repair (the admin's notice) and clear the flag.
//
// With dry set it only compares and changes nothing (no flag, so Likes
// taken meanwhile may show as differences). A repair that dies leaves the
// flag to expire (RepairFlagTTL) and the synced mark behind, so the next
// check repairs again.
func RepairShard(ctx context.Context, likes *Likes, stats *Stats, group string, shard int, reason, by string, dry bool) (Repair, error) {
	r := Repair{Shard: shard, Reason: reason, Started: stats.now()}
	if shard < 0 || shard >= likes.Shards() {
		return r, fmt.Errorf("repair: no shard %d of %d", shard, likes.Shards())
	}
	likes = likes.Shard(shard) // the stream and count methods act on this shard
	unlock, err := stats.lockRepair(ctx, shard)
	if err != nil {
		return r, err
	}
	defer unlock()
	if !dry {
		if err := likes.beginRepair(ctx, shard); err != nil {
			return r, err
		}
		defer func() {
			// Cleared even when ctx is done: a shard left refusing Likes is
			// worse than the short extra call.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = likes.rdb.Del(cctx, likes.repairFlagKey(shard)).Err()
		}()
		if r.Drained, err = drain(ctx, likes, stats, shard); err != nil {
			return r, err
		}
	}
	state, err := stats.likeState(ctx, shard)
	if err != nil {
		return r, err
	}
	if r.ShoppersFixed, err = likes.fixShoppers(ctx, shard, state, dry); err != nil {
		return r, err
	}
	if r.ProductsRecounted, err = likes.fixCounts(ctx, shard, state, dry); err != nil {
		return r, err
	}
	r.Finished = stats.now()
	if dry {
		return r, nil
	}
	mark, _, err := stats.StreamMark(ctx, shard)
	if err != nil {
		return r, err
	}
	if err := likes.fence(ctx, shard, group, mark); err != nil {
		return r, err
	}
	r.Finished = stats.now()
	if err := stats.recordRepair(ctx, r, by); err != nil {
		return r, err
	}
	return r, nil
}

// beginRepair counts the repair and sets the shard's repairing flag, in
// one transaction.
func (s *Likes) beginRepair(ctx context.Context, shard int) error {
	pipe := s.rdb.TxPipeline()
	pipe.Incr(ctx, s.repairsKey(shard))
	pipe.Set(ctx, s.repairFlagKey(shard), "1", RepairFlagTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: begin repair: %v", ErrUnavailable, err)
	}
	return nil
}

func (s *Likes) setRepairFlag(ctx context.Context, shard int) error {
	if err := s.rdb.Set(ctx, s.repairFlagKey(shard), "1", RepairFlagTTL).Err(); err != nil {
		return fmt.Errorf("%w: set repair flag: %v", ErrUnavailable, err)
	}
	return nil
}

// drain applies every event the shard's stream holds to PostgreSQL, page by
// page, refreshing the repair flag as it goes. Malformed entries are left to
// the workers, which park them.
func drain(ctx context.Context, likes *Likes, stats *Stats, shard int) (int, error) {
	applied, from := 0, "-"
	for {
		msgs, err := likes.rdb.XRangeN(ctx, likes.StreamKey(), from, "+", repairPage).Result()
		if err != nil {
			return applied, fmt.Errorf("%w: drain stream: %v", ErrUnavailable, err)
		}
		if len(msgs) == 0 {
			return applied, nil
		}
		b := likes.parseBatch(msgs)
		n, err := stats.ApplyBatch(ctx, b.Events)
		if err != nil {
			return applied, err
		}
		applied += n
		if err := likes.setRepairFlag(ctx, shard); err != nil {
			return applied, err
		}
		if len(msgs) < repairPage {
			return applied, nil
		}
		from = "(" + msgs[len(msgs)-1].ID
	}
}

// likeState is shard's record: shopper -> the products they like. It scans
// like_state: no index serves it, as one would cost every Like an entry for
// the sake of this rare read (0014_drop_shard_shopper.sql).
func (s *Stats) likeState(ctx context.Context, shard int) (map[string][]string, error) {
	rows, err := s.db.QueryxContext(ctx,
		`SELECT shopper_id, product_id FROM like_state WHERE shard = $1 AND liked ORDER BY shopper_id, product_id`, shard)
	if err != nil {
		return nil, fmt.Errorf("%w: read like state: %v", ErrUnavailable, err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var shopper, product string
		if err := rows.Scan(&shopper, &product); err != nil {
			return nil, fmt.Errorf("read like state: %w", err)
		}
		out[shopper] = append(out[shopper], product)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: read like state: %v", ErrUnavailable, err)
	}
	return out, nil
}

// shopperSets reads every shopper's set of shard in Redis.
func (s *Likes) shopperSets(ctx context.Context, shard int) (map[string][]string, error) {
	prefix, suffix := s.shardKey(shard, "shopper:"), ":likes"
	pattern := prefix + "*" + suffix
	out := map[string][]string{}
	// The shard's keys share one hash tag, so one node holds them all;
	// on Redis Cluster, scan the node that owns their slot.
	rdb, err := s.nodeOf(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, pattern, repairPage).Result()
		if err != nil {
			return nil, fmt.Errorf("%w: scan shoppers: %v", ErrUnavailable, err)
		}
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringSliceCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.SMembers(ctx, k)
		}
		if len(keys) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("%w: read shoppers: %v", ErrUnavailable, err)
			}
		}
		for i, k := range keys {
			shopper := strings.TrimSuffix(strings.TrimPrefix(k, prefix), suffix)
			if s.ShardOf(shopper) == shard && len(cmds[i].Val()) > 0 {
				out[shopper] = cmds[i].Val()
			}
		}
		if next == 0 {
			return out, nil
		}
		cursor = next
	}
}

// fixShoppers rewrites the sets of shard's shoppers that differ from the
// record (unless dry) and returns those shoppers, sorted.
func (s *Likes) fixShoppers(ctx context.Context, shard int, state map[string][]string, dry bool) ([]string, error) {
	have, err := s.shopperSets(ctx, shard)
	if err != nil {
		return nil, err
	}
	var fixed []string
	for shopper := range have {
		if _, ok := state[shopper]; !ok {
			fixed = append(fixed, shopper)
		}
	}
	for shopper, want := range state {
		got := slices.Clone(have[shopper])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			fixed = append(fixed, shopper)
		}
	}
	slices.Sort(fixed)
	if dry {
		return fixed, nil
	}
	for chunk := range slices.Chunk(fixed, repairPage) {
		pipe := s.rdb.TxPipeline()
		for _, shopper := range chunk {
			key := s.shopperKey(shopper)
			pipe.Del(ctx, key)
			if want := state[shopper]; len(want) > 0 {
				pipe.SAdd(ctx, key, toAny(want)...)
			}
		}
		pipe.Expire(ctx, s.repairFlagKey(shard), RepairFlagTTL)
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("%w: rewrite shoppers: %v", ErrUnavailable, err)
		}
	}
	return fixed, nil
}

// fixCounts sets the live counts of shard that differ from the record
// (unless dry) and returns those products, sorted.
func (s *Likes) fixCounts(ctx context.Context, shard int, state map[string][]string, dry bool) ([]string, error) {
	want := map[string]int64{}
	for _, products := range state {
		for _, p := range products {
			want[p]++
		}
	}
	have, err := s.rdb.HGetAll(ctx, s.CountsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: read counts: %v", ErrUnavailable, err)
	}
	var fixed []string
	for p, v := range have {
		if _, ok := want[p]; !ok && parseCount(v) != 0 {
			fixed = append(fixed, p)
		}
	}
	for p, n := range want {
		if parseCount(have[p]) != n {
			fixed = append(fixed, p)
		}
	}
	slices.Sort(fixed)
	if dry || len(fixed) == 0 {
		return fixed, nil
	}
	pipe := s.rdb.TxPipeline()
	for _, p := range fixed {
		if n := want[p]; n > 0 {
			pipe.HSet(ctx, s.CountsKey(), p, n)
		} else {
			pipe.HDel(ctx, s.CountsKey(), p)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("%w: rewrite counts: %v", ErrUnavailable, err)
	}
	return fixed, nil
}

// fence makes sure the stream and the group exist, moves the stream's last
// id to at least mark (so new entries get ids PostgreSQL has not seen), the
// group past every entry (all are in PostgreSQL now) and raises the synced
// mark to mark.
func (s *Likes) fence(ctx context.Context, shard int, group string, mark StreamID) error {
	if err := s.EnsureGroup(ctx, group); err != nil {
		return err
	}
	info, err := s.rdb.XInfoStream(ctx, s.StreamKey()).Result()
	if err != nil {
		return fmt.Errorf("%w: read stream: %v", ErrUnavailable, err)
	}
	last, _ := ParseStreamID(info.LastGeneratedID)
	if last.Compare(mark) < 0 {
		last = mark
	}
	pipe := s.rdb.TxPipeline()
	pipe.Do(ctx, "XSETID", s.StreamKey(), last.String())
	pipe.XGroupSetID(ctx, s.StreamKey(), group, last.String())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: fence stream: %v", ErrUnavailable, err)
	}
	return s.MarkSynced(ctx, shard, mark.String())
}

// lockRepair takes shard's repair lock, a PostgreSQL advisory lock held by a
// connection of its own (Redis is what is being repaired, so the lock does
// not live there). It returns ErrRepairLocked when another holds it.
func (s *Stats) lockRepair(ctx context.Context, shard int) (func(), error) {
	conn, err := s.db.Connx(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: repair lock: %v", ErrUnavailable, err)
	}
	var ok bool
	if err := conn.GetContext(ctx, &ok, `SELECT pg_try_advisory_lock($1, $2)`, repairLockClass, shard); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%w: repair lock: %v", ErrUnavailable, err)
	}
	if !ok {
		_ = conn.Close()
		return nil, ErrRepairLocked
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, $2)`, repairLockClass, shard)
		_ = conn.Close()
	}, nil
}

// repairLockClass is the first key of the repair locks ("phnx").
const repairLockClass = 0x70686e78

// recordRepair logs the repair in PostgreSQL, for the admin's notice.
func (s *Stats) recordRepair(ctx context.Context, r Repair, by string) error {
	_, err := s.db.ExecContext(ctx, `
WITH ins AS (
INSERT INTO redis_repairs (shard, reason, repaired_by, drained, shoppers_fixed, products_recounted, started_at, finished_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING 1)
SELECT pg_notify('`+NotifyChannel+`', '') FROM ins`,
		r.Shard, r.Reason, by, r.Drained, len(r.ShoppersFixed), len(r.ProductsRecounted), r.Started, r.Finished)
	if err != nil {
		return fmt.Errorf("%w: record repair: %v", ErrUnavailable, err)
	}
	return nil
}

// RepairNotice is a repair of Redis from PostgreSQL, as the admin shows it.
type RepairNotice struct {
	Shard             int       `db:"shard"`
	Reason            string    `db:"reason"`
	ShoppersFixed     int64     `db:"shoppers_fixed"`
	ProductsRecounted int64     `db:"products_recounted"`
	At                time.Time `db:"finished_at"`
}

// RecentRepairs returns the repairs finished since since, newest first, at
// most limit.
func (s *Stats) RecentRepairs(ctx context.Context, since time.Time, limit int) ([]RepairNotice, error) {
	var out []RepairNotice
	err := s.db.SelectContext(ctx, &out, `
SELECT shard, reason, shoppers_fixed, products_recounted, finished_at FROM redis_repairs
WHERE finished_at >= $1 ORDER BY finished_at DESC LIMIT $2`, since, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: read repairs: %v", ErrUnavailable, err)
	}
	return out, nil
}

// nodeOf returns the client of the node that holds key: on Redis Cluster
// the primary of its slot (SCAN reads one node), else the client itself.
func (s *Likes) nodeOf(ctx context.Context, key string) (redis.Cmdable, error) {
	c, ok := s.rdb.(*redis.ClusterClient)
	if !ok {
		return s.rdb, nil
	}
	node, err := c.MasterForKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("%w: find node of %s: %v", ErrUnavailable, key, err)
	}
	return node, nil
}
