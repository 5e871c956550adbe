package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrNotDrained refuses a reshard while the old stream holds events the
// workers have not acknowledged: moving the sets under them would lose the
// events' order against the new streams.
var ErrNotDrained = errors.New("old stream not drained")

// Resharded is what Reshard did.
type Resharded struct {
	Shards        int
	Shoppers      int64   // shopper sets moved to their shard
	Likes         int64   // likes in the moved sets
	Counts        []int64 // rebuilt live likes per shard
	OldStreamGone bool    // the old (drained) stream was removed
}

// Reshard moves the single-shard layout under the prefix of from (its keys
// without hash tags) to the layout of to (from's server and prefix, n
// shards), in place: each shopper's set moves to its shard, each shard's
// live counts are rebuilt from the sets there, each shard's stream and the
// group are created, starting after the old stream's last id (so
// PostgreSQL's record of applied ids stays behind every new id). It refuses
// with ErrNotDrained while the old stream has entries group has not
// acknowledged (stop the shops, let the workers drain). Every step is
// idempotent, so a rerun after a failure finishes the job.
func Reshard(ctx context.Context, from, to *Likes, group string) (Resharded, error) {
	if from.Shards() != 1 || to.Shards() < 2 || from.prefix != to.prefix {
		return Resharded{}, errors.New("reshard: from must be the one-shard layout and to the same prefix with several shards")
	}
	r := Resharded{Shards: to.Shards()}
	st, err := parseGroupState(backlogScript.Run(ctx, from.rdb, []string{from.StreamKey()}, group, backlogScanCap))
	if err != nil {
		return r, err
	}
	if n := st.backlog.Total(); n > 0 {
		return r, fmt.Errorf("%w: %d events in %s not yet acknowledged by group %s: stop the shops, let the workers drain, then run again", ErrNotDrained, n, from.StreamKey(), group)
	}
	// Create every shard's stream and group first, ids after the old ones.
	for i := range to.Shards() {
		sh := to.Shard(i)
		if err := sh.EnsureGroup(ctx, group); err != nil {
			return r, err
		}
		if st.lastGenerated != "0-0" {
			if err := sh.raiseLastID(ctx, group, st.lastGenerated); err != nil {
				return r, err
			}
		}
	}
	// Move the sets.
	err = scanKeys(ctx, from.rdb, globEscape(from.prefix)+"shopper:*:likes", func(key string) error {
		shopper := strings.TrimSuffix(strings.TrimPrefix(key, from.prefix+"shopper:"), ":likes")
		members, err := from.rdb.SMembers(ctx, key).Result()
		if err != nil {
			return err
		}
		if len(members) > 0 {
			if err := from.rdb.SAdd(ctx, to.ShopperKey(shopper), toAny(members)...).Err(); err != nil {
				return err
			}
		}
		// Deleted only after the copy, so a rerun copies again.
		if err := from.rdb.Del(ctx, key).Err(); err != nil {
			return err
		}
		r.Shoppers++
		r.Likes += int64(len(members))
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("%w: move shopper sets: %v", ErrUnavailable, err)
	}
	// Rebuild each shard's counts from its sets (also those moved by an
	// earlier, interrupted run).
	for i := range to.Shards() {
		n, err := to.Shard(i).rebuildCounts(ctx)
		if err != nil {
			return r, fmt.Errorf("%w: rebuild counts of shard %d: %v", ErrUnavailable, i, err)
		}
		r.Counts = append(r.Counts, n)
	}
	// The old counts and the drained old stream are no longer read.
	n, err := from.rdb.Del(ctx, from.CountsKey(), from.StreamKey()).Result()
	if err != nil {
		// On Redis Cluster the two may sit in different slots.
		n = from.rdb.Del(ctx, from.CountsKey()).Val() + from.rdb.Del(ctx, from.StreamKey()).Val()
	}
	r.OldStreamGone = n > 0
	return r, nil
}

// raiseLastID sets the stream's last id to id unless it is past it already.
func (s *Likes) raiseLastID(ctx context.Context, group, id string) error {
	st, err := parseGroupState(backlogScript.Run(ctx, s.rdb, []string{s.StreamKey()}, group, backlogScanCap))
	if err != nil {
		return err
	}
	if compareIDs(st.lastGenerated, id) >= 0 {
		return nil
	}
	if err := s.rdb.Do(ctx, "XSETID", s.StreamKey(), id).Err(); err != nil {
		return fmt.Errorf("%w: set last id of %s: %v", ErrUnavailable, s.StreamKey(), err)
	}
	// The group was made at "0": move it along, nothing lies before id.
	if err := s.rdb.XGroupSetID(ctx, s.StreamKey(), group, id).Err(); err != nil {
		return fmt.Errorf("%w: set group id of %s: %v", ErrUnavailable, s.StreamKey(), err)
	}
	return nil
}

// compareIDs orders two stream ids ("ms-seq").
func compareIDs(a, b string) int {
	var am, as, bm, bs uint64
	_, _ = fmt.Sscanf(a, "%d-%d", &am, &as)
	_, _ = fmt.Sscanf(b, "%d-%d", &bm, &bs)
	switch {
	case am != bm:
		return cmpU(am, bm)
	default:
		return cmpU(as, bs)
	}
}

func cmpU(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// rebuildCounts replaces this shard's live counts with the sums of the
// shopper sets on the shard, atomically. It returns the likes counted.
func (s *Likes) rebuildCounts(ctx context.Context) (int64, error) {
	counts := map[string]int64{}
	err := scanKeys(ctx, s.rdb, globEscape(s.shardKey(s.shard, "shopper:"))+"*:likes", func(key string) error {
		members, err := s.rdb.SMembers(ctx, key).Result()
		for _, m := range members {
			counts[m]++
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	var total int64
	pipe := s.rdb.TxPipeline()
	pipe.Del(ctx, s.CountsKey())
	for id, n := range counts {
		pipe.HSet(ctx, s.CountsKey(), id, n)
		total += n
	}
	_, err = pipe.Exec(ctx)
	return total, err
}

// scanKeys calls fn for each key matching pattern, on every primary of a
// cluster or on the one server; one call at a time.
func scanKeys(ctx context.Context, rdb redis.UniversalClient, pattern string, fn func(string) error) error {
	var mu sync.Mutex // the cluster's primaries are scanned in parallel
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			err := fn(it.Val())
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return it.Err()
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, scan)
	}
	if c, ok := rdb.(*redis.Client); ok {
		return scan(ctx, c)
	}
	return fmt.Errorf("scan: unsupported client %T", rdb)
}

// globEscape quotes the glob characters of a key prefix for MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
