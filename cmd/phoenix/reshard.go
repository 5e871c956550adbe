package main

import (
	"context"
	"fmt"
	"time"

	"phoenix/store"
	"phoenix/worker"
)

// runReshard moves the one-shard layout (PHOENIX_REDIS_SHARDS=1) of the
// Redis at PHOENIX_REDIS_URL to -shards N, in place, and prints what it
// moved. It refuses while the old stream holds events the workers have not
// acknowledged. A rerun after a failure finishes the job.
func runReshard(ctx context.Context, e *env, args []string) error {
	f := newFlags("reshard", e)
	var rc redisConfig
	var group string
	var shards int
	// Not redisConfig.register: -shards is the target, the source is one shard.
	f.String(&rc.url, "redis-url", "PHOENIX_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	f.String(&rc.prefix, "redis-prefix", "PHOENIX_REDIS_PREFIX", "phoenix:", "prefix of every Redis key")
	f.String(&group, "worker-group", "PHOENIX_WORKER_GROUP", worker.DefaultGroup, "consumer group shared by the workers")
	f.IntVar(&shards, "shards", 0, "the number of shards to move to (at least 2; then start every role with PHOENIX_REDIS_SHARDS set to it)")
	rc.shards = 1
	checks := append(rc.checks(), func() error {
		if shards < 2 || shards > store.MaxShards {
			return fmt.Errorf("-shards: %d, want 2 to %d", shards, store.MaxShards)
		}
		return nil
	})
	if err := f.parse(args, checks...); err != nil {
		return err
	}
	rdb, err := store.OpenRedis(rc.url, 5*time.Second)
	if err != nil {
		return fmt.Errorf("PHOENIX_REDIS_URL: %w", err)
	}
	defer rdb.Close()
	from := store.NewLikes(rdb, rc.prefix)
	to := store.NewLikes(rdb, rc.prefix, store.LikesOptions{Shards: shards})
	if err := store.CheckLayout(rdb, rc.prefix, shards); err != nil {
		return fmt.Errorf("PHOENIX_REDIS_PREFIX: %w", err)
	}
	r, err := store.Reshard(ctx, from, to, group)
	if err != nil {
		return fmt.Errorf("reshard: %w", err)
	}
	fmt.Fprintf(e.stdout, "moved %d shopper sets (%d likes) to %d shards\n", r.Shoppers, r.Likes, r.Shards)
	for i, n := range r.Counts {
		fmt.Fprintf(e.stdout, "shard %d: %s, %d likes, stream and group %s ready\n", i, to.Shard(i).StreamKey(), n, group)
	}
	if r.OldStreamGone {
		fmt.Fprintln(e.stdout, "removed the old counts and the drained old stream")
	}
	fmt.Fprintf(e.stdout, "now start every role with PHOENIX_REDIS_SHARDS=%d\n", shards)
	return nil
}
