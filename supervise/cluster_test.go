package supervise

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCluster_Failover starts 3 primaries with a replica each, writes
// through a cluster client, kills the primary of one key's slot and checks
// that its replica takes over with the data, then restarts the old
// primary, which rejoins.
func TestCluster_Failover(t *testing.T) {
	ctx := testContext(t)
	c, err := StartCluster(ctx, ClusterOptions{Dir: tempDir(t, "supervise-cluster-*")})
	skipIfMissing(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })

	if c.Len() != 6 {
		t.Fatalf("Len %d, want 6", c.Len())
	}
	prim, err := c.Primaries(ctx)
	if err != nil || len(prim) != 3 {
		t.Fatalf("primaries %v, %v; want 3", prim, err)
	}
	if !strings.HasPrefix(c.URL(), "redis+cluster://127.0.0.1:") || strings.Count(c.URL(), "addr=") != 5 {
		t.Fatalf("URL %q", c.URL())
	}

	// go-redis reloads the slot map only on MOVED or after this interval,
	// not when a primary stops answering.
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ClusterStateReloadInterval: 200 * time.Millisecond})
	defer cl.Close()
	const key = "k"
	if err := cl.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n0 := redis.NewClient(&redis.Options{Addr: c.Addrs()[0]})
	defer n0.Close()
	s, err := n0.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	slot := int(s)
	p, err := c.PrimaryForSlot(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	reps, err := c.ReplicasOf(ctx, p)
	if err != nil || len(reps) != 1 {
		t.Fatalf("replicas of %d: %v, %v", p, reps, err)
	}
	// WAIT makes sure the replica holds the value before its primary dies.
	pc := redis.NewClient(&redis.Options{Addr: c.Node(p).Addr()})
	defer pc.Close()
	if n, err := pc.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d, %v", n, err)
	}

	if err := c.Kill(p); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		np, err := c.PrimaryForSlot(ctx, slot)
		if err == nil && np == reps[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d not promoted: primary %d, %v", reps[0], np, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := cl.Get(ctx, key).Result()
	for err != nil && time.Now().Before(deadline) {
		// The client learns the new primary on its next slot reload.
		time.Sleep(100 * time.Millisecond)
		got, err = cl.Get(ctx, key).Result()
	}
	if err != nil || got != "v" {
		t.Fatalf("after failover: %q, %v; want v", got, err)
	}

	if err := c.Node(p).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if reps, err := c.ReplicasOf(ctx, reps[0]); err != nil || len(reps) != 1 || reps[0] != p {
		t.Fatalf("old primary %d did not rejoin as replica: %v, %v", p, reps, err)
	}
}

func TestCluster_Options(t *testing.T) {
	_, err := StartCluster(context.Background(), ClusterOptions{Dir: t.TempDir(), Primaries: 2})
	if err == nil || !strings.Contains(err.Error(), "at least 3") {
		t.Fatalf("2 primaries: got %v, want refusal", err)
	}
	_, err = StartCluster(context.Background(), ClusterOptions{Dir: t.TempDir(), AppendFsync: "sometimes"})
	skipIfMissing(t, err)
	if err == nil || !strings.Contains(err.Error(), "AppendFsync") {
		t.Fatalf("bad fsync: got %v, want refusal", err)
	}
}
