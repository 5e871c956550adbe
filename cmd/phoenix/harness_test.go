package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/supervise"
	"phoenix/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

const (
	// startTimeout bounds how long a command may take to become ready.
	startTimeout = 60 * time.Second
	// stopTimeout bounds graceful shutdown after the context is cancelled.
	stopTimeout = 30 * time.Second
)

// rolesOf lists the roles of a command whose /readyz must pass before the
// command counts as started. Add a role here when a command gains one.
func rolesOf(tb testing.TB, cmd string) []string {
	tb.Helper()
	switch cmd {
	case "shop", "dev":
		return []string{"shop"}
	case "all":
		return []string{"shop", "worker", "admin"}
	case "admin":
		return []string{"admin"}
	case "worker":
		return []string{"worker"}
	}
	tb.Fatalf("rolesOf: unknown command %q", cmd)
	return nil
}

// phoenixProc is one run of the real phoenix command inside the test
// process, with every server on a free 127.0.0.1 port.
type phoenixProc struct {
	tb   testing.TB
	cmd  string
	vars map[string]string // its whole environment
	logs *syncBuffer

	mu    sync.Mutex
	addrs map[string]string // role -> host:port, as reported by listen

	cancel   context.CancelFunc
	exited   chan struct{} // closed when runEnv has returned
	err      error         // runEnv's result; read only after exited is closed
	reported bool          // err was reported; used by the test goroutine only
}

// startPhoenix runs `phoenix <cmd>` in-process, as main would, with vars as
// its whole environment (listen addresses default to 127.0.0.1:0, logs to
// text). It returns once every role of cmd answers /readyz with 200; cleanup
// cancels the run and waits for it to return, failing the test when it
// returns an error. The log is printed when the test fails. Each of opts
// may change the process's env before it runs (a tracer, for one).
func startPhoenix(tb testing.TB, cmd string, vars map[string]string, opts ...func(*env)) *phoenixProc {
	tb.Helper()
	all := map[string]string{
		"PHOENIX_SHOP_ADDR":  "127.0.0.1:0",
		"PHOENIX_ADMIN_ADDR": "127.0.0.1:0",
		// Every role's addresses: parallel tests must not share a port.
		"PHOENIX_WORKER_ADDR":  "127.0.0.1:0",
		"PHOENIX_METRICS_ADDR": "127.0.0.1:0",
		"PHOENIX_LOG_FORMAT":   "text",
		"PHOENIX_LOG_LEVEL":    "debug",
		"PHOENIX_INSTANCE":     "e2e",
		// CSRF tokens signed with the secret, as in production; tokens kept
		// in Redis would not survive the Redis outage tests.
		"PHOENIX_SECRET": "an-e2e-secret-that-is-at-least-32-bytes",
	}
	maps.Copy(all, vars)
	p := &phoenixProc{tb: tb, cmd: cmd, vars: all, logs: &syncBuffer{}, addrs: map[string]string{}, exited: make(chan struct{})}
	e := &env{
		getenv:  func(k string) string { return all[k] },
		stdout:  p.logs,
		stderr:  p.logs,
		started: p.started,
	}
	for _, o := range opts {
		o(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		p.err = runEnv(ctx, e, []string{cmd})
		close(p.exited)
	}()
	tb.Cleanup(func() {
		p.stop(tb)
		if tb.Failed() {
			tb.Logf("phoenix %s log:\n%s", cmd, p.logs.String())
		}
	})
	p.waitReady(tb, rolesOf(tb, cmd))
	return p
}

// stop cancels the run, as SIGINT does, and waits for it to return; it
// fails the test when the run returns an error or hangs. Stopping twice is
// harmless.
func (p *phoenixProc) stop(tb testing.TB) {
	tb.Helper()
	p.cancel()
	select {
	case <-p.exited:
		if p.err != nil && !p.reported {
			p.reported = true
			tb.Errorf("phoenix %s returned: %v", p.cmd, p.err)
		}
	case <-time.After(stopTimeout):
		tb.Fatalf("phoenix %s did not stop within %v", p.cmd, stopTimeout)
	}
}

func (p *phoenixProc) started(role, addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addrs[role] = addr
}

// waitReady polls each role's /readyz until it answers 200, the command
// exits or startTimeout passes.
func (p *phoenixProc) waitReady(tb testing.TB, roles []string) {
	tb.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for _, role := range roles {
		last := "not listening yet"
		for {
			if addr := p.lookup(role); addr != "" {
				last = readyz(client, addr)
				if last == "" {
					break
				}
			}
			if time.Now().After(deadline) {
				tb.Fatalf("phoenix %s: %s not ready within %v: %s", p.cmd, role, startTimeout, last)
			}
			select {
			case <-p.exited:
				p.reported = true
				if errors.Is(p.err, supervise.ErrMissingBinary) && os.Getenv("CI") != "true" {
					tb.Skipf("phoenix %s: %v", p.cmd, p.err)
				}
				tb.Fatalf("phoenix %s exited during start: %v", p.cmd, p.err)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// readyz returns "" when addr's /readyz answers 200, else what went wrong.
func readyz(client *http.Client, addr string) string {
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return ""
}

func (p *phoenixProc) lookup(role string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[role]
}

// addr returns the host:port a role listens on.
func (p *phoenixProc) addr(role string) string {
	p.tb.Helper()
	a := p.lookup(role)
	if a == "" {
		p.tb.Fatalf("phoenix %s has no %s role", p.cmd, role)
	}
	return a
}

// url returns the absolute URL of path on a role.
func (p *phoenixProc) url(role, path string) string {
	p.tb.Helper()
	return "http://" + p.addr(role) + path
}

// syncBuffer is the kit's log buffer, safe for the concurrent writes of a log.
type syncBuffer = testkit.LogBuffer

// sharedRedis returns the settings that point a shop at the shared test
// Redis under a key prefix of its own, and a Likes store on the same keys
// for checking what the shop wrote.
func sharedRedis(tb testing.TB) (map[string]string, *store.Likes) {
	tb.Helper()
	rdb, prefix := testkit.Redis(tb)
	vars := map[string]string{
		"PHOENIX_REDIS_URL":    "redis://" + rdb.Options().Addr + "/0",
		"PHOENIX_REDIS_PREFIX": prefix,
		// As in production: CSRF tokens signed, not stored in Redis.
		"PHOENIX_SECRET": "e2e-secret-0123456789abcdef0123456789abcdef",
	}
	return vars, store.NewLikes(rdb, prefix)
}
