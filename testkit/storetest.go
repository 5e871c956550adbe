// Package testkit gives tests private redis-server and PostgreSQL servers
// started from the locally installed binaries (see supervise).
//
// A test binary shares one Redis, one Redis Cluster and one PostgreSQL
// server, each started on first use and stopped by Run; each test gets its
// own key prefix or database.
// Fault tests that stop or crash a server get a private one instead.
//
// Use it from _test.go files only, with:
//
//	func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }
//
// When a server binary is not installed, the tests that need it are skipped
// with an install hint, or fail when the environment variable CI is "true".
package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/supervise"
)

const (
	// startTimeout bounds starting a server (initdb included).
	startTimeout = 2 * time.Minute
	// cleanupTimeout bounds per-test cleanup against the shared servers.
	cleanupTimeout = 30 * time.Second
)

// servers holds the servers shared by the tests of one test binary. It is
// the package's only state, and exists because Redis and Postgres get no
// handle from Run.
type servers struct {
	mu      sync.Mutex
	running bool // inside Run; the shared servers are only stopped there

	redis   lazyServer[*supervise.Redis]
	pg      lazyServer[*supervise.Postgres]
	cluster lazyServer[*supervise.Cluster] // see Cluster

	seq atomic.Int64 // makes key prefixes and database names unique

	phoenix phoenixBinary // built on first use by Phoenix
}

var shared servers

// Run runs the tests of m and then stops the shared servers started by
// them (even when tests failed) and removes their folders. It returns the
// exit code for os.Exit.
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.running = true
	shared.mu.Unlock()

	code := m.Run()

	if err := shared.stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testkit: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// stop stops the shared servers and removes their folders.
func (s *servers) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running = false
	errs := []error{s.redis.stop(), s.pg.stop(), s.cluster.stop()}
	if s.phoenix.dir != "" {
		errs = append(errs, os.RemoveAll(s.phoenix.dir))
	}
	return errors.Join(errs...)
}

// requireRun fails tb unless Run is active, because shared servers started
// outside Run would never be stopped nor their folders removed.
func (s *servers) requireRun(tb testing.TB) {
	tb.Helper()
	if !s.running {
		tb.Fatal("testkit: shared servers need TestMain: func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }")
	}
}

// startRedis starts a Redis server in a new temporary folder.
func startRedis(appendOnly bool) (*supervise.Redis, string, error) {
	return startInTemp("redis", "testkit-redis-*", func(ctx context.Context, dir string) (*supervise.Redis, error) {
		return supervise.StartRedis(ctx, supervise.RedisOptions{Dir: dir, AppendOnly: appendOnly})
	})
}

// startPostgres starts a PostgreSQL server in a new temporary folder under
// os.TempDir (which the postgres user can traverse; supervise hands the folder
// to it when we run as root).
func startPostgres(fast bool, settings []string) (*supervise.Postgres, string, error) {
	return startInTemp("postgres", "testkit-pg-*", func(ctx context.Context, dir string) (*supervise.Postgres, error) {
		return supervise.StartPostgres(ctx, supervise.PostgresOptions{Dir: dir, Fast: fast, Settings: settings})
	})
}

// failStart skips tb when a server binary is missing, unless on CI, where a
// missing server must not silently turn tests into skips.
func failStart(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, supervise.ErrMissingBinary) && os.Getenv("CI") != "true" {
		tb.Skipf("testkit: %v", err)
	}
	tb.Fatalf("testkit: %v", err)
}

// Redis returns a client connected to the shared Redis server and a fresh
// key prefix for this test ("t<N>:"). The test must put all its keys under
// the prefix: cleanup deletes them (SCAN + UNLINK) and closes the client.
func Redis(tb testing.TB) (*redis.Client, string) {
	tb.Helper()
	r := shared.redis.get(tb, func() (*supervise.Redis, string, error) { return startRedis(false) })
	prefix := fmt.Sprintf("t%d:", shared.seq.Add(1))
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	tb.Cleanup(func() {
		// tb's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := deletePrefix(ctx, c, prefix); err != nil {
			tb.Errorf("testkit: delete keys %s*: %v", prefix, err)
		}
		if err := c.Close(); err != nil {
			tb.Errorf("testkit: close redis client: %v", err)
		}
	})
	return c, prefix
}

// deletePrefix unlinks every key starting with prefix. The prefix holds no
// glob characters, so it can be used as a MATCH pattern as is. One UNLINK
// per key, pipelined, because a cluster node refuses a multi-key UNLINK
// over several slots.
func deletePrefix(ctx context.Context, c *redis.Client, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			pipe := c.Pipeline()
			for _, k := range keys {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// RedisServer starts a private Redis server (own folder and port, append-only
// file on) for fault tests that stop, kill or restart it. Cleanup stops it
// and removes its folder.
func RedisServer(tb testing.TB) *supervise.Redis {
	tb.Helper()
	return private(tb, func() (*supervise.Redis, string, error) { return startRedis(true) })
}

// Postgres creates a fresh, uniquely named database on the shared PostgreSQL
// server and returns its URL. Cleanup drops it, closing any connections the
// test left open.
func Postgres(tb testing.TB) string {
	tb.Helper()
	// fsync off: the shared server's databases are throwaway.
	p := shared.pg.get(tb, func() (*supervise.Postgres, string, error) { return startPostgres(true, nil) })
	name := databaseName(shared.seq.Add(1), tb.Name())
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := p.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := p.DropDatabase(ctx, name); err != nil {
			tb.Errorf("testkit: %v", err)
		}
	})
	return p.URL(name)
}

// databaseName builds a unique database name that still shows which test
// made it: "t<N>_<test name>", lower case, within PostgreSQL's 63-byte limit.
func databaseName(n int64, testName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "t%d_", n)
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 63 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// PostgresServer starts a private PostgreSQL server (own folder and port,
// fsync on, and the settings given: supervise.PostgresOptions.Settings)
// for fault tests that stop, kill or restart it, and for benchmarks.
// Cleanup stops it and removes its folder.
func PostgresServer(tb testing.TB, settings ...string) *supervise.Postgres {
	tb.Helper()
	return private(tb, func() (*supervise.Postgres, string, error) { return startPostgres(false, settings) })
}
