package testkit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/supervise"
)

// startCluster starts a Redis Cluster in a new temporary folder.
func startCluster(o supervise.ClusterOptions) (*supervise.Cluster, string, error) {
	return startInTemp("redis cluster", "testkit-cluster-*", func(ctx context.Context, dir string) (*supervise.Cluster, error) {
		o.Dir = dir
		return supervise.StartCluster(ctx, o)
	})
}

// Cluster returns the Redis Cluster shared by this test binary (3 primaries
// with one replica each, started on first use; tests must not stop its
// nodes), a client of it and a fresh key prefix for this test ("t<N>:").
// Cleanup deletes the prefix's keys on every primary and closes the client.
// Tests that kill or pause nodes take a ClusterServer of their own.
func Cluster(tb testing.TB) (*supervise.Cluster, *redis.ClusterClient, string) {
	tb.Helper()
	c := shared.cluster.get(tb, func() (*supervise.Cluster, string, error) { return startCluster(supervise.ClusterOptions{}) })
	prefix := fmt.Sprintf("t%d:", shared.seq.Add(1))
	cl := ClusterClient(tb, c)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			return deletePrefix(ctx, m, prefix)
		})
		if err != nil {
			tb.Errorf("testkit: delete keys %s*: %v", prefix, err)
		}
	})
	return c, cl, prefix
}

// ClusterClient returns a client of c that reloads the slot map often, so
// it finds a promoted replica soon after a failover. Cleanup closes it.
func ClusterClient(tb testing.TB, c *supervise.Cluster) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: 200 * time.Millisecond})
	tb.Cleanup(func() {
		if err := cl.Close(); err != nil {
			tb.Errorf("testkit: close cluster client: %v", err)
		}
	})
	return cl
}

// ClusterServer starts a private Redis Cluster as o describes (Dir is
// chosen here) for fault tests that kill, stop or pause its nodes. Cleanup
// stops it and removes its folder.
func ClusterServer(tb testing.TB, o supervise.ClusterOptions) *supervise.Cluster {
	tb.Helper()
	return private(tb, func() (*supervise.Cluster, string, error) { return startCluster(o) })
}
