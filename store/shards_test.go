package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/supervise"
	"phoenix/testkit"
)

// TestShardTags checks that shard i's keys hash into the i-th of N equal
// slot ranges, and that one shard keeps today's key names.
func TestShardTags(t *testing.T) {
	for _, n := range []int{1, 2, 3, 6, 16, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := store.NewLikes(nil, "p:", store.LikesOptions{Shards: n})
			if s.Shards() != n {
				t.Fatalf("Shards %d, want %d", s.Shards(), n)
			}
			if n == 1 {
				if got := s.StreamKey(); got != "p:events" {
					t.Fatalf("one shard: stream %q, want p:events", got)
				}
				if got := s.CountsKey(); got != "p:counts" {
					t.Fatalf("one shard: counts %q, want p:counts", got)
				}
				if got := s.ShopperKey("a"); got != "p:shopper:a:likes" {
					t.Fatalf("one shard: shopper key %q", got)
				}
				return
			}
			for i := range n {
				sh := s.Shard(i)
				slot := store.KeySlot(sh.StreamKey())
				if lo, hi := i*16384/n, (i+1)*16384/n; slot < lo || slot >= hi {
					t.Errorf("shard %d: slot %d outside [%d, %d)", i, slot, lo, hi)
				}
				if store.KeySlot(sh.CountsKey()) != slot || store.KeySlot(sh.DeadLetterKey()) != slot {
					t.Errorf("shard %d: counts or dead-letter key in another slot", i)
				}
			}
		})
	}
}

// TestKeySlot compares KeySlot with the values of the cluster spec.
func TestKeySlot(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{
		{"123456789", 0x31C3 % 16384}, // the CRC16 check value of the spec
		{"foo", 12182},
		{"{user1000}.following", store.KeySlot("user1000")},
		{"foo{}{bar}", store.KeySlot("foo{}{bar}")},
		{"{}", store.KeySlot("{}")},
	} {
		if got := store.KeySlot(tt.in); got != tt.want {
			t.Errorf("KeySlot(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestOpenRedis_URLs checks the URL forms and the refusals.
func TestOpenRedis_URLs(t *testing.T) {
	for _, tt := range []struct {
		url  string
		want string // client type, or "error"
	}{
		{"redis://127.0.0.1:6379/0", "*redis.Client"},
		{"rediss://127.0.0.1:6379/0", "*redis.Client"},
		{"redis+cluster://127.0.0.1:7000?addr=127.0.0.1:7001", "*redis.ClusterClient"},
		{"rediss+cluster://127.0.0.1:7000", "*redis.ClusterClient"},
		{"redis+sentinel://127.0.0.1:26379/0?master_name=mymaster", "*redis.Client"},
		{"redis+sentinel://127.0.0.1:26379/0", "error"},
		{"redis+cluster://127.0.0.1:7000?addr=nope", "error"},
		{"http://127.0.0.1", "error"},
		{"127.0.0.1:6379", "error"},
	} {
		c, err := store.OpenRedis(tt.url, time.Second)
		got := "error"
		if err == nil {
			got = fmt.Sprintf("%T", c)
			_ = c.Close()
		}
		if got != tt.want {
			t.Errorf("%s: got %s (%v), want %s", tt.url, got, err, tt.want)
		}
	}
}

func TestOpenLikes_Layout(t *testing.T) {
	ctx := context.Background()
	c, _, prefix := testkit.Cluster(t)
	if _, err := store.OpenLikes(ctx, c.URL(), "{x}"+prefix, store.LikesOptions{Shards: 3}); err == nil {
		t.Error("shards with a hash tag in the prefix: want refusal")
	}
	if _, err := store.OpenLikes(ctx, c.URL(), prefix); err == nil {
		t.Error("one shard on a cluster without a hash tag: want refusal")
	}
	s, err := store.OpenLikes(ctx, c.URL(), "{"+prefix+"}")
	if err != nil {
		t.Fatalf("one shard on a cluster with a hash tag: %v", err)
	}
	defer s.Close()
	if _, err := s.Like(ctx, "a", "p"); err != nil {
		t.Fatal(err)
	}
}

// TestLikes_Cluster likes from many shoppers on a 3-primary cluster with 6
// shards: every shard and every primary gets events, counts and views sum
// over the shards, and the audit of the Redis side adds up.
func TestLikes_Cluster(t *testing.T) {
	ctx := context.Background()
	c, cl, prefix := testkit.Cluster(t)
	s, err := store.OpenLikes(ctx, c.URL(), prefix, store.LikesOptions{Shards: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const shoppers, products = 120, 5
	var wg sync.WaitGroup
	errs := make(chan error, shoppers)
	for i := range shoppers {
		wg.Go(func() {
			sh := fmt.Sprintf("shopper%03d", i)
			for p := range products {
				if p <= i%products {
					if _, err := s.Like(ctx, sh, fmt.Sprintf("p%d", p)); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := map[string]int64{}
	for i := range shoppers {
		for p := 0; p <= i%products; p++ {
			want[fmt.Sprintf("p%d", p)]++
		}
	}
	got, err := s.Counts(ctx)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Counts %v, %v; want %v", got, err, want)
	}
	view, liked, err := s.View(ctx, "shopper004", []string{"p0", "p4"})
	if err != nil || view["p0"] != want["p0"] || view["p4"] != want["p4"] || !liked["p4"] {
		t.Fatalf("View %v %v, %v", view, liked, err)
	}

	primaries := map[int]int64{}
	var total int64
	for i := range s.Shards() {
		sh := s.Shard(i)
		n, err := cl.XLen(ctx, sh.StreamKey()).Result()
		if err != nil || n == 0 {
			t.Fatalf("shard %d: %d events, %v; want some", i, n, err)
		}
		total += n
		p, err := c.PrimaryForSlot(ctx, store.KeySlot(sh.StreamKey()))
		if err != nil {
			t.Fatal(err)
		}
		primaries[p] += n
	}
	if len(primaries) != 3 {
		t.Fatalf("events on primaries %v, want all 3", primaries)
	}
	var likes int64
	for _, n := range want {
		likes += n
	}
	if total != likes {
		t.Fatalf("%d events over the shards, want %d", total, likes)
	}
	backlogs, err := s.GroupBacklogs(ctx, "g")
	if err != nil || len(backlogs) != 6 || store.SumBacklogs(backlogs).Total() != likes {
		t.Fatalf("backlogs %v, %v; want 6 summing to %d", backlogs, err, likes)
	}
	// A shopper stays on one shard: their set lives under that shard's tag.
	for i := range 10 {
		sh := fmt.Sprintf("shopper%03d", i)
		k := s.ShopperKey(sh)
		if store.KeySlot(k) != store.KeySlot(s.Shard(s.ShardOf(sh)).StreamKey()) {
			t.Fatalf("shopper %s: set %q not on their shard's slot", sh, k)
		}
		if n, err := cl.SCard(ctx, k).Result(); err != nil || n != int64(i%products+1) {
			t.Fatalf("shopper %s: %d likes, %v", sh, n, err)
		}
	}
}

// replicaOfShard returns the cluster node indexes of the primary and its
// replica serving shard i of s.
func replicaOfShard(t *testing.T, c *supervise.Cluster, s *store.Likes, i int) (int, int) {
	t.Helper()
	ctx := context.Background()
	p, err := c.PrimaryForSlot(ctx, store.KeySlot(s.Shard(i).StreamKey()))
	if err != nil {
		t.Fatal(err)
	}
	reps, err := c.ReplicasOf(ctx, p)
	if err != nil || len(reps) != 1 {
		t.Fatalf("replicas of %d: %v, %v", p, reps, err)
	}
	return p, reps[0]
}

// shopperOn returns a shopper id that lands on shard i.
func shopperOn(s *store.Likes, i int, tag string) string {
	for j := 0; ; j++ {
		id := fmt.Sprintf("%s%d", tag, j)
		if s.ShardOf(id) == i {
			return id
		}
	}
}

// TestLikes_DurabilityReplica: with replica durability a Like answers once
// a replica holds it, and ErrUnconfirmed while the replica is stopped.
func TestLikes_DurabilityReplica(t *testing.T) {
	ctx := context.Background()
	c := testkit.ClusterServer(t, supervise.ClusterOptions{})
	s, err := store.OpenLikes(ctx, c.URL(), "d:", store.LikesOptions{Shards: 3, Durability: store.DurabilityReplica, WaitTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alice := shopperOn(s, 0, "alice")
	if _, err := s.Like(ctx, alice, "p1"); err != nil {
		t.Fatalf("with replicas: %v", err)
	}
	_, rep := replicaOfShard(t, c, s, 0)
	if err := c.Node(rep).Stop(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Like(ctx, alice, "p2")
	if !errors.Is(err, store.ErrUnconfirmed) {
		t.Fatalf("replica stopped: got %v, want ErrUnconfirmed", err)
	}
	// The other shards' replicas still confirm.
	if _, err := s.Like(ctx, shopperOn(s, 1, "bob"), "p1"); err != nil {
		t.Fatalf("other shard: %v", err)
	}
	// The unconfirmed Like stands on the primary; a retry changes nothing
	// and is confirmed once the replica is back.
	if err := c.Node(rep).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Like(ctx, alice, "p2")
	if err != nil || res.Changed || !res.Liked {
		t.Fatalf("retry: %+v, %v; want liked, unchanged", res, err)
	}
}

// TestLikes_DurabilityFailover kills a primary while shoppers like, then
// restarts it (it rejoins as a replica): with replica durability every Like
// answered saved, before or after the failover, is in the cluster.
func TestLikes_DurabilityFailover(t *testing.T) {
	ctx := context.Background()
	c := testkit.ClusterServer(t, supervise.ClusterOptions{})
	s, err := store.OpenLikes(ctx, c.URL(), "f:", store.LikesOptions{Shards: 3, Durability: store.DurabilityReplica})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	primary, replica := replicaOfShard(t, c, s, 0)

	type like struct{ shopper, product string }
	var mu sync.Mutex
	var saved []like
	onShard0 := 0
	countShard0 := func() int {
		mu.Lock()
		defer mu.Unlock()
		return onShard0
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				l := like{fmt.Sprintf("g%d-%d", g, n%50), fmt.Sprintf("p%d", n)}
				if _, err := s.Like(ctx, l.shopper, l.product); err == nil {
					mu.Lock()
					saved = append(saved, l)
					if s.ShardOf(l.shopper) == 0 {
						onShard0++
					}
					mu.Unlock()
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("likes on shard 0 before the kill", func() bool { return countShard0() >= 20 })
	if err := c.Kill(primary); err != nil {
		t.Fatal(err)
	}
	before := countShard0()
	waitFor("the replica's promotion", func() bool {
		p, err := c.PrimaryForSlot(ctx, store.KeySlot(s.Shard(0).StreamKey()))
		return err == nil && p == replica
	})
	// The promoted replica has no replica of its own, so no Like on its
	// shard can be confirmed until the old primary rejoins as one.
	if err := c.Node(primary).Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("likes on shard 0 after the failover", func() bool { return countShard0() >= before+20 })
	close(stop)
	wg.Wait()

	cl := testkit.ClusterClient(t, c)
	pipe := cl.Pipeline()
	cmds := make([]*redis.BoolCmd, len(saved))
	for i, l := range saved {
		cmds[i] = pipe.SIsMember(ctx, s.ShopperKey(l.shopper), l.product)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for i, l := range saved {
		if !cmds[i].Val() {
			t.Errorf("%s's Like of %s answered saved, missing after the failover", l.shopper, l.product)
		}
	}
	t.Logf("%d Likes saved, %d on the failed-over shard", len(saved), onShard0)
}
