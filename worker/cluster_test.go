package worker

import (
	"context"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// TestSync_Cluster: two workers drain 6 shards on a 3-primary Redis Cluster
// exactly into PostgreSQL, and the audit, summed over the shards, is exact.
func TestSync_Cluster(t *testing.T) {
	ctx := context.Background()
	c, _, prefix := testkit.Cluster(t)
	likes, err := store.OpenLikes(ctx, c.URL(), prefix, store.LikesOptions{Shards: 6})
	if err != nil {
		t.Fatal(err)
	}
	defer likes.Close()
	e := (&env{likes: likes}).withPostgres(t, testkit.Postgres(t))
	ids := shoppers(200)
	// Every stream entry is stored once, keyed by its shard and id.
	want := clicks(t, likes, ids, 600)
	for _, name := range []string{"w1", "w2"} {
		start(t, e.newSync(t, name))
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		bs, err := likes.GroupBacklogs(ctx, DefaultGroup)
		var rows int64
		if err := e.db.GetContext(ctx, &rows, `SELECT count(*) FROM like_events`); err != nil {
			t.Fatal(err)
		}
		if err == nil && rows == want && store.SumBacklogs(bs).Total() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained: %d of %d events stored, backlogs %v (%v)", rows, want, bs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var shards []int
	if err := e.db.SelectContext(ctx, &shards, `SELECT DISTINCT shard FROM like_events ORDER BY shard`); err != nil {
		t.Fatal(err)
	}
	if len(shards) != 6 {
		t.Fatalf("events stored from shards %v, want 0 to 5", shards)
	}
	a, err := store.RunAudit(ctx, likes, e.stats, DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Final() || len(a.Mismatches()) > 0 || a.Totals().Live == 0 {
		t.Fatalf("audit not exact: final %v, mismatches %+v, totals %+v", a.Final(), a.Mismatches(), a.Totals())
	}
}
