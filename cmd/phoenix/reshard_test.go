package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
	"phoenix/worker"
)

// TestReshard moves a one-shard dataset to 4 shards on a real Redis: it
// refuses while events wait, then moves every set, rebuilds the counts,
// makes the streams and groups after the old ids, and a rerun is harmless.
func TestReshard(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	old := store.NewLikes(rdb, prefix)
	shoppers := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	for i, sh := range shoppers {
		for _, p := range []string{"pads", "plug", "tyre"}[:i%3+1] {
			if _, err := old.Like(ctx, sh, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantCounts, err := old.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reshard := func() (string, error) {
		var out syncBuffer
		vars := map[string]string{"PHOENIX_REDIS_URL": "redis://" + rdb.Options().Addr + "/0", "PHOENIX_REDIS_PREFIX": prefix}
		e := &env{getenv: func(k string) string { return vars[k] }, stdout: &out, stderr: &out}
		err := runEnv(ctx, e, []string{"reshard", "-shards", "4"})
		return out.String(), err
	}
	if _, err := reshard(); err == nil || !strings.Contains(err.Error(), "not yet acknowledged") || !strings.Contains(err.Error(), "stop the shops") {
		t.Fatalf("with a backlog: got %v, want a refusal", err)
	}
	// Drain as a worker would.
	if err := old.EnsureGroup(ctx, worker.DefaultGroup); err != nil {
		t.Fatal(err)
	}
	b, err := old.ReadNew(ctx, worker.DefaultGroup, "w", 100, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.ID
	}
	if _, err := old.Ack(ctx, worker.DefaultGroup, ids); err != nil {
		t.Fatal(err)
	}
	lastOld := ids[len(ids)-1]

	out, err := reshard()
	if err != nil {
		t.Fatalf("reshard: %v\n%s", err, out)
	}
	if !strings.Contains(out, "moved 6 shopper sets (12 likes) to 4 shards") || !strings.Contains(out, "PHOENIX_REDIS_SHARDS=4") {
		t.Fatalf("output:\n%s", out)
	}
	s := store.NewLikes(rdb, prefix, store.LikesOptions{Shards: 4})
	got, err := s.Counts(ctx)
	if err != nil || len(got) != len(wantCounts) {
		t.Fatalf("counts %v, %v; want %v", got, err, wantCounts)
	}
	for id, n := range wantCounts {
		if got[id] != n {
			t.Fatalf("counts %v, want %v", got, wantCounts)
		}
	}
	for i, sh := range shoppers {
		_, liked, err := s.View(ctx, sh, nil)
		if err != nil || len(liked) != i%3+1 {
			t.Fatalf("%s likes %v, %v; want %d", sh, liked, err, i%3+1)
		}
		if n, _ := rdb.Exists(ctx, prefix+"shopper:"+sh+":likes").Result(); n != 0 {
			t.Fatalf("%s's old set still there", sh)
		}
	}
	// New events come after the old ids on every shard, to a ready group.
	res, err := s.Like(ctx, "zoe", "pads")
	if err != nil || !res.Changed {
		t.Fatal(res, err)
	}
	sh := s.Shard(s.ShardOf("zoe"))
	nb, err := sh.ReadNew(ctx, worker.DefaultGroup, "w", 10, time.Millisecond)
	if err != nil || len(nb.Events) != 1 || nb.Events[0].ShopperID != "zoe" || !idAfter(nb.Events[0].ID, lastOld) {
		t.Fatalf("after reshard: %+v, %v; want zoe's Like after %s", nb, err, lastOld)
	}
	// A rerun moves nothing and keeps the counts.
	out, err = reshard()
	if err != nil || !strings.Contains(out, "moved 0 shopper sets") {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	if got, _ := s.Counts(ctx); got["pads"] != wantCounts["pads"]+1 {
		t.Fatalf("after rerun: counts %v", got)
	}
}

// idAfter reports whether stream id a is after b (both "ms-seq").
func idAfter(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) > len(bm)
	}
	if am != bm {
		return am > bm
	}
	return len(as) > len(bs) || (len(as) == len(bs) && as > bs)
}
