package worker

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// waitStored polls until PostgreSQL holds at least min events and returns
// how many it holds.
func waitStored(t *testing.T, db *sqlx.DB, min int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int64
		err := db.Get(&n, `SELECT events FROM totals`)
		if err == nil && n >= min {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL holds %d events (err %v), want at least %d", n, err, min)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSync_PostgresRestart(t *testing.T) {
	ctx := context.Background()
	pg := testkit.PostgresServer(t)
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := testkit.Redis(t)
	e := (&env{rdb: rdb, likes: store.NewLikes(rdb, prefix)}).withPostgres(t, pg.URL("phoenix"))
	ids := shoppers(500)
	n := bulkClicks(t, e, ids, 20000)

	w := e.newSync(t, "w1")
	w.BatchSize = 50 // a longer drain, so the restart lands in it
	start(t, w)
	before := waitStored(t, e.db, 1, 30*time.Second)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if before >= n {
		t.Fatalf("drain finished (%d of %d) before PostgreSQL stopped; the test proves nothing", before, n)
	}
	t.Logf("postgres stopped with %d of %d events stored", before, n)
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, e, n, 60*time.Second)
	assertExact(t, e, ids, n)
}

// TestSync_RedisRestart restarts Redis (append-only file on) three times
// while the worker drains: PostgreSQL ends exact, and the backlog the worker
// records (for the admin and /metrics) comes back to exactly 0, whatever
// Redis 7.0's lag counter says after replaying its file.
func TestSync_RedisRestart(t *testing.T) {
	ctx := context.Background()
	r := testkit.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	e := (&env{rdb: rdb, likes: store.NewLikes(rdb, "t:")}).withPostgres(t, testkit.Postgres(t))
	ids := shoppers(500)
	n := bulkClicks(t, e, ids, 20000)

	w := e.newSync(t, "w1")
	w.BatchSize = 50
	start(t, w)
	stored := int64(0)
	for i := range 3 {
		stored = waitStored(t, e.db, stored+1, 30*time.Second)
		if err := r.Stop(); err != nil { // a clean shutdown saves the data
			t.Fatal(err)
		}
		if stored >= n {
			t.Fatalf("drain finished (%d of %d) before Redis stopped; the test proves nothing", stored, n)
		}
		t.Logf("restart %d: redis stopped with %d of %d events stored", i+1, stored, n)
		if err := r.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitDrained(t, e, n, 60*time.Second)
	assertExact(t, e, ids, n)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var recorded int64
		err := e.db.Get(&recorded, `SELECT backlog FROM worker_status WHERE consumer = 'w1'`)
		b, berr := e.likes.GroupBacklog(ctx, DefaultGroup)
		if err == nil && berr == nil && recorded == 0 && b == (store.Backlog{}) {
			g, _ := rdb.XInfoGroups(ctx, e.likes.StreamKey()).Result()
			t.Logf("backlog 0; XINFO GROUPS says %+v", g)
			break
		}
		if time.Now().After(deadline) {
			g, _ := rdb.XInfoGroups(ctx, e.likes.StreamKey()).Result()
			t.Fatalf("backlog recorded %d (%v), counted %+v (%v), want 0; XINFO GROUPS says %+v", recorded, err, b, berr, g)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSync_KillNine(t *testing.T) {
	bin := testkit.Phoenix(t)
	rdb, prefix := testkit.Redis(t)
	dbURL := testkit.Postgres(t)
	e := (&env{rdb: rdb, likes: store.NewLikes(rdb, prefix)}).withPostgres(t, dbURL)
	ids := shoppers(2000)
	n := bulkClicks(t, e, ids, 40000)

	env := func(consumer string) []string {
		return []string{
			"PHOENIX_REDIS_URL=redis://" + rdb.Options().Addr + "/0",
			"PHOENIX_REDIS_PREFIX=" + strings.TrimSuffix(e.likes.StreamKey(), "events"),
			"PHOENIX_DATABASE_URL=" + dbURL,
			"PHOENIX_WORKER_ADDR=127.0.0.1:0",
			"PHOENIX_METRICS_ADDR=127.0.0.1:0", // parallel test binaries must not share a port
			"PHOENIX_WORKER_CONSUMER=" + consumer,
			"PHOENIX_WORKER_BATCH=200",
			"PHOENIX_WORKER_CLAIM_IDLE=1s",
			"PHOENIX_LOG_FORMAT=text",
		}
	}
	first := testkit.Start(t, bin, env("first"), "worker")
	waitStored(t, e.db, 1, 30*time.Second)
	first.Kill9(t)
	stored := eventsStored(t, e.db)
	if stored >= n {
		t.Fatalf("drain finished (%d of %d) before the kill; the test proves nothing", stored, n)
	}
	t.Logf("killed with %d of %d events stored", stored, n)

	// A new worker (another name) claims what the dead one left pending.
	second := testkit.Start(t, bin, env("second"), "worker")
	waitDrained(t, e, n, 60*time.Second)
	assertExact(t, e, ids, n)

	// SIGTERM: the worker finishes its batch and exits 0.
	if err := second.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(t, 20*time.Second); err != nil {
		t.Fatalf("second worker after SIGTERM: %v, want exit 0", err)
	}
}
