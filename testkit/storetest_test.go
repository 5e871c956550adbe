package testkit_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/lib/pq"

	"phoenix/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

// seen collects what the parallel subtests got, to check uniqueness.
type seen struct {
	mu        sync.Mutex
	prefixes  map[string]bool
	databases map[string]bool
}

func TestStoretest_Unique(t *testing.T) {
	s := &seen{prefixes: map[string]bool{}, databases: map[string]bool{}}
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"a", "b"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()

				c, prefix := testkit.Redis(t)
				if err := c.Set(ctx, prefix+"k", name, 0).Err(); err != nil {
					t.Fatalf("set: %v", err)
				}
				if got, err := c.Get(ctx, prefix+"k").Result(); err != nil || got != name {
					t.Fatalf("get = %q, %v; want %q", got, err, name)
				}

				u := testkit.Postgres(t)
				db, err := sql.Open("postgres", u)
				if err != nil {
					t.Fatal(err)
				}
				// Left open on purpose: cleanup drops the database WITH (FORCE).
				var dbName string
				if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&dbName); err != nil {
					t.Fatalf("query: %v", err)
				}
				if !strings.HasSuffix(u, "/"+dbName+"?sslmode=disable") {
					t.Fatalf("URL %q does not point at %q", u, dbName)
				}

				s.mu.Lock()
				defer s.mu.Unlock()
				if s.prefixes[prefix] || s.databases[dbName] {
					t.Errorf("prefix %q or database %q handed out twice", prefix, dbName)
				}
				s.prefixes[prefix], s.databases[dbName] = true, true
			})
		}
	})
	if len(s.prefixes) != 2 || len(s.databases) != 2 {
		t.Fatalf("got prefixes %v, databases %v; want 2 of each", s.prefixes, s.databases)
	}

	// The subtests' cleanups ran when the group finished: keys and
	// databases must be gone.
	c, _ := testkit.Redis(t)
	for p := range s.prefixes {
		keys, err := c.Keys(context.Background(), p+"*").Result()
		if err != nil || len(keys) != 0 {
			t.Errorf("keys under %q after cleanup: %v, %v", p, keys, err)
		}
	}
	admin, err := sql.Open("postgres", testkit.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for name := range s.databases {
		var n int
		if err := admin.QueryRow("SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
			t.Errorf("database %q after cleanup: count=%d err=%v", name, n, err)
		}
	}
}

func TestStoretest_PrivateServers(t *testing.T) {
	ctx := context.Background()
	r := testkit.RedisServer(t)
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("restart private redis: %v", err)
	}

	p := testkit.PostgresServer(t, "work_mem=7MB")
	if err := p.CreateDatabase(ctx, "fault"); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("restart private postgres: %v", err)
	}
	db, err := sql.Open("postgres", p.URL("fault"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("ping after crash: %v", err)
	}
	var workMem string
	if err := db.QueryRowContext(ctx, `SHOW work_mem`).Scan(&workMem); err != nil || workMem != "7MB" {
		t.Errorf("work_mem %q (%v), want the 7MB asked for", workMem, err)
	}
}
