package supervise

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/redis/go-redis/v9"
)

// skipIfMissing skips (or, on CI, fails) when the server binary is absent.
func skipIfMissing(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrMissingBinary) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
}

// tempDir returns a folder under os.TempDir that the postgres user can own;
// t.TempDir nests inside a root-only folder, which postgres could not enter.
func tempDir(t *testing.T, pattern string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRedis_StartStop(t *testing.T) {
	ctx := testContext(t)
	r, err := StartRedis(ctx, RedisOptions{Dir: tempDir(t, "supervise-redis-*"), AppendOnly: true})
	skipIfMissing(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })

	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") || r.URL() != "redis://"+r.Addr()+"/0" {
		t.Fatalf("Addr %q URL %q", r.Addr(), r.URL())
	}
	opt, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}

	port := r.Port()
	if err := r.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if r.Running() {
		t.Fatal("running after Stop")
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if r.Port() != port {
		t.Fatalf("port changed from %d to %d", port, r.Port())
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart: get k = %q, %v; want v (appendonly)", got, err)
	}
	if err := r.Start(ctx); err == nil {
		t.Fatal("Start while running: want error")
	}
}

func TestRedis_KillStart(t *testing.T) {
	ctx := testContext(t)
	r, err := StartRedis(ctx, RedisOptions{Dir: tempDir(t, "supervise-redis-*")})
	skipIfMissing(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	if err := r.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if err := r.Kill(); err != nil {
		t.Fatalf("second kill: %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatalf("start after kill: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping: %v", err)
	}
}

// A cluster picks all its ports before any node binds one; a repeat would
// make one node's port another's bus port.
func TestFreePorts_Distinct(t *testing.T) {
	ports, err := FreePorts(64)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d chosen twice in %v", p, ports)
		}
		seen[p] = true
	}
	if len(seen) != 64 {
		t.Fatalf("got %d ports, want 64", len(seen))
	}
}

func TestRedis_BusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartRedis(testContext(t), RedisOptions{Dir: tempDir(t, "supervise-redis-*"), Port: port})
	skipIfMissing(t, err)
	if err == nil {
		t.Fatal("want error for busy port")
	}
	if !strings.Contains(err.Error(), "port "+strconv.Itoa(port)+" is busy") {
		t.Fatalf("error %q does not name the busy port %d", err, port)
	}
}

func TestPostgres_BusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = StartPostgres(testContext(t), PostgresOptions{Dir: tempDir(t, "supervise-pg-*"), Port: port, Fast: true})
	skipIfMissing(t, err)
	if err == nil {
		t.Fatal("want error for busy port")
	}
	if !strings.Contains(err.Error(), "port "+strconv.Itoa(port)+" is busy") {
		t.Fatalf("error %q does not name the busy port %d", err, port)
	}
}

func TestMissingBinaryError(t *testing.T) {
	err := error(&MissingBinaryError{Binary: "redis-server", Package: "redis-server"})
	if !errors.Is(err, ErrMissingBinary) {
		t.Fatal("MissingBinaryError does not match ErrMissingBinary")
	}
	want := `redis-server not found: install the Debian package "redis-server" (apt-get install redis-server)`
	if err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

func TestPostgres_StartKillStart(t *testing.T) {
	ctx := testContext(t)
	dir := tempDir(t, "supervise-pg-*")
	p, err := StartPostgres(ctx, PostgresOptions{Dir: dir})
	skipIfMissing(t, err)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })

	if err := p.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := p.CreateDatabase(ctx, "app"); err != nil {
		t.Fatalf("second create: %v", err)
	}
	u := p.URL("app")
	if !strings.HasPrefix(u, "postgres://postgres:") || !strings.HasSuffix(u, "/app?sslmode=disable") {
		t.Fatalf("URL %q", u)
	}
	db, err := sql.Open("postgres", u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatalf("write: %v", err)
	}

	if err := p.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("start after kill: %v", err)
	}
	// The pool's connections died with the server; retry once they are
	// noticed as broken.
	var v int
	if err := db.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v); err != nil {
		if err := db.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v); err != nil {
			t.Fatalf("read after crash: %v", err)
		}
	}
	if v != 42 {
		t.Fatalf("v = %d, want 42 (committed before the crash)", v)
	}

	if err := p.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("second stop: %v", err)
	}

	// A second StartPostgres on the same folder reuses cluster and password.
	pw := p.Password()
	p2, err := StartPostgres(ctx, PostgresOptions{Dir: dir, Port: p.Port()})
	if err != nil {
		t.Fatalf("start existing cluster: %v", err)
	}
	defer p2.Stop()
	if p2.Password() != pw {
		t.Fatal("password not reused")
	}
	db2, err := sql.Open("postgres", p2.URL("app"))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.QueryRowContext(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != 42 {
		t.Fatalf("read from reused cluster: v=%d err=%v", v, err)
	}
	if err := p2.DropDatabase(ctx, "app"); err != nil {
		t.Fatalf("drop: %v", err)
	}
}

// TestHTTPReady: ready only when every address answers 200.
func TestHTTPReady(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(int(status.Load()))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	both := HTTPReady(srv.URL+"/", srv.URL+"/readyz")
	if err := both(ctx); err == nil {
		t.Error("ready while /readyz answers 503")
	}
	status.Store(http.StatusOK)
	if err := both(ctx); err != nil {
		t.Errorf("not ready while both answer 200: %v", err)
	}
	srv.Close()
	if err := both(ctx); err == nil {
		t.Error("ready with the server gone")
	}
}
