package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxShards bounds PHOENIX_REDIS_SHARDS: one shard per slot range of at
// least 16 slots, far more primaries than any cluster runs.
const MaxShards = 1024

// clusterSlots is the number of hash slots of Redis Cluster.
const clusterSlots = 16384

// shardTags returns the hash tag ("{...}:") of each of n shards, or one
// empty tag for n = 1 (the single-Redis layout, key names unchanged). Shard
// i's tag hashes into the i-th of n equal slot ranges, so a cluster whose
// primaries hold equal slot ranges (as redis-cli --cluster create makes
// them) serves n/primaries shards on each primary. The tags depend on n
// only, so every shop and worker computes the same ones.
func shardTags(n int) []string {
	if n <= 1 {
		return []string{""}
	}
	tags := make([]string, n)
	for i := range n {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n
		for j := 0; ; j++ {
			t := fmt.Sprintf("s%d.%d", i, j)
			if slot := KeySlot(t); lo <= slot && slot < hi {
				tags[i] = "{" + t + "}:"
				break
			}
		}
	}
	return tags
}

// KeySlot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first "{" and the next "}",
// when not empty), modulo 16384, per the cluster specification.
func KeySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % clusterSlots
}

// Shards returns the number of shards.
func (s *Likes) Shards() int { return len(s.tags) }

// ShardOf returns shopper's shard: a stable hash (FNV-1a) of the id, so a
// shopper always lands on the same shard for a given number of shards.
func (s *Likes) ShardOf(shopper string) int { return shardOf(shopper, len(s.tags)) }

// shardOf is ShardOf for a layout of n shards (1 to MaxShards).
func shardOf(shopper string, n int) int {
	if n == 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(shopper))
	return int(uint64(h.Sum32()) % uint64(n)) // #nosec G115 -- n is 1 to MaxShards
}

// Shard returns a view of s whose stream methods (StreamKey, CountsKey,
// DeadLetterKey, EnsureGroup, ReadNew, ReadPending, Claim, Ack, DeadLetter,
// TrimAcked, DeleteIdleConsumers, GroupBacklog) act on shard i (0 ≤ i <
// Shards), and whose events carry Shard i. It shares s's client.
func (s *Likes) Shard(i int) *Likes {
	v := *s
	v.shard = i
	return &v
}

// ShardIndex returns the shard this view's stream methods act on.
func (s *Likes) ShardIndex() int { return s.shard }

// CheckLayout refuses a prefix and shard count that the server behind rdb
// cannot hold: with several shards the prefix must not hold a hash tag
// (it would put every shard in one slot); on Redis Cluster one shard needs
// a hash tag in the prefix, or the Like's keys span slots.
func CheckLayout(rdb redis.UniversalClient, prefix string, shards int) error {
	if shards > 1 && strings.ContainsAny(prefix, "{}") {
		return fmt.Errorf("redis prefix %q: with %d shards the prefix must not hold '{' or '}' (each shard brings its own hash tag)", prefix, shards)
	}
	if _, ok := rdb.(*redis.ClusterClient); ok && shards <= 1 && !strings.Contains(prefix, "{") {
		return fmt.Errorf("redis prefix %q: on Redis Cluster set more than one shard, or put a hash tag in the prefix (\"{phoenix}:\")", prefix)
	}
	return nil
}

// OpenRedis returns a client for url with Phoenix's fail-fast timeouts
// (readTimeout for reads). The URL's scheme selects the deployment:
//
//	redis://[user:password@]host:port[/db]     one server (rediss:// with TLS; unix:///path)
//	redis+cluster://host:port?addr=host2:port2&addr=...   Redis Cluster; any nodes, one is enough (rediss+cluster:// with TLS)
//	redis+sentinel://host:port[/db]?master_name=NAME&addr=host2:port2   Sentinel (the sentinels' addresses; rediss+sentinel:// with TLS)
//
// Query parameters are go-redis's (dial_timeout, pool_size, ...); the
// timeouts set here win, so a shopper never waits long.
func OpenRedis(url string, readTimeout time.Duration) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return nil, errors.New("parse redis url: want scheme://host:port")
	}
	const (
		dial    = time.Second
		write   = time.Second
		pool    = 2 * time.Second
		retries = 1
	)
	switch scheme {
	case "redis+cluster", "rediss+cluster":
		o, err := redis.ParseClusterURL(strings.TrimSuffix(scheme, "+cluster") + "://" + rest)
		if err != nil {
			return nil, fmt.Errorf("parse redis cluster url: %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries = dial, readTimeout, write, pool, retries
		// go-redis reloads the slot map on MOVED or after this interval,
		// not when a primary stops answering: a short interval finds the
		// promoted replica within a second of a failover.
		o.ClusterStateReloadInterval = time.Second
		return redis.NewClusterClient(o), nil
	case "redis+sentinel", "rediss+sentinel":
		o, err := redis.ParseFailoverURL(strings.TrimSuffix(scheme, "+sentinel") + "://" + rest)
		if err != nil {
			return nil, fmt.Errorf("parse redis sentinel url: %w", err)
		}
		if o.MasterName == "" {
			return nil, errors.New("parse redis sentinel url: master_name is required")
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries = dial, readTimeout, write, pool, retries
		return redis.NewFailoverClient(o), nil
	default:
		o, err := redis.ParseURL(url)
		if err != nil {
			return nil, fmt.Errorf("parse redis url: %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout, o.MaxRetries = dial, readTimeout, write, pool, retries
		return redis.NewClient(o), nil
	}
}

// runDurable runs the Like script and WAIT 1 in one round trip on the
// primary that owns the shard's slot, so WAIT counts the replicas that
// hold this very write (WAIT covers the writes made on its connection).
// Fewer than one replica within the timeout gives ErrUnconfirmed; the write
// stands on the primary, and a retry is harmless (a Like is idempotent).
func (s *Likes) runDurable(ctx context.Context, keys []string, args []any) ([]int64, error) {
	timeout := s.opt.waitTimeout().Milliseconds()
	run := func(c redis.Cmdable, sha bool) (*redis.Cmd, *redis.IntCmd, error) {
		pipe := c.Pipeline()
		var script *redis.Cmd
		if sha {
			script = s.like.EvalSha(ctx, pipe, keys, args...)
		} else {
			script = s.like.Eval(ctx, pipe, keys, args...)
		}
		wait := redis.NewIntCmd(ctx, "wait", 1, timeout)
		_ = pipe.Process(ctx, wait)
		_, err := pipe.Exec(ctx)
		return script, wait, err
	}
	for attempt := 0; ; attempt++ {
		var node redis.Cmdable = s.rdb
		cc, cluster := s.rdb.(*redis.ClusterClient)
		if cluster {
			// A cluster pipeline sends a keyless WAIT to any node: send
			// both to the slot's primary ourselves.
			m, err := cc.MasterForKey(ctx, keys[0])
			if err != nil {
				return nil, err
			}
			node = m
		}
		script, wait, err := run(node, true)
		if err != nil && redis.HasErrorPrefix(script.Err(), "NOSCRIPT") {
			// The script runs nowhere on NOSCRIPT, so the retry with the
			// full body cannot apply it twice.
			script, wait, err = run(node, false)
		}
		if err != nil && cluster && attempt < 2 && isMoved(script.Err()) {
			// The slot moved (a failover, a reshard): learn the new
			// owner and try there.
			cc.ReloadState(ctx)
			continue
		}
		if err := script.Err(); err != nil {
			var rerr redis.Error
			if cluster && !errors.As(err, &rerr) {
				// The primary is unreachable (dead, or failing over):
				// look for its successor before the next Like.
				cc.ReloadState(ctx)
			}
			return nil, err
		}
		res, err := script.Int64Slice()
		if err != nil {
			return nil, err
		}
		if len(res) == 2 && res[0] < 0 {
			return res, nil // refused: nothing written, nothing to wait for
		}
		n, err := wait.Result()
		if err != nil {
			return nil, err
		}
		if n < 1 {
			return nil, fmt.Errorf("%w: no replica confirmed within %dms", ErrUnconfirmed, timeout)
		}
		return res, nil
	}
}

// isMoved reports a cluster redirection.
func isMoved(err error) bool {
	return err != nil && (redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK"))
}
