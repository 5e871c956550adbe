package testkit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"phoenix/testkit"
)

// TestCluster_SharedPrefix checks that two tests share one cluster with
// their own prefixes, and that cleanup removes a test's keys on every
// primary.
func TestCluster_SharedPrefix(t *testing.T) {
	ctx := context.Background()
	var prefix string
	var addrs []string
	t.Run("writer", func(t *testing.T) {
		c, cl, p := testkit.Cluster(t)
		prefix, addrs = p, c.Addrs()
		// Enough keys to land on every primary.
		for i := range 30 {
			if err := cl.Set(ctx, fmt.Sprintf("%sk%d", p, i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	c, cl, p := testkit.Cluster(t)
	if p == prefix {
		t.Fatalf("prefix %q handed out twice", p)
	}
	if fmt.Sprint(c.Addrs()) != fmt.Sprint(addrs) {
		t.Fatalf("second test got another cluster: %v, want %v", c.Addrs(), addrs)
	}
	var mu sync.Mutex
	n := 0
	err := cl.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, prefix+"*").Result()
		mu.Lock()
		n += len(keys)
		mu.Unlock()
		return err
	})
	if err != nil || n != 0 {
		t.Fatalf("%d keys under %q after cleanup (%v), want 0", n, prefix, err)
	}
}
