package worker

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/store/storetest"
)

// waitStored polls until PostgreSQL holds at least min events and returns
// how many it holds.
func waitStored(t *testing.T, stats *store.Stats, min int64, timeout time.Duration) int64 {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int64
		err := stats.DB().Get(&n, `SELECT events FROM totals`)
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
	pg := storetest.PostgresServer(t)
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	rdb, prefix := storetest.Redis(t)
	e := &env{rdb: rdb, likes: store.NewLikes(rdb, prefix), stats: openStats(t, pg.URL("phoenix"))}
	ids := shoppers(500)
	n := bulkClicks(t, e, ids, 20000)

	w := e.newSync(t, "w1")
	w.BatchSize = 50 // a longer drain, so the restart lands in it
	start(t, w)
	before := waitStored(t, e.stats, 1, 30*time.Second)
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

func TestSync_RedisRestart(t *testing.T) {
	ctx := context.Background()
	r := storetest.RedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	e := &env{rdb: rdb, likes: store.NewLikes(rdb, "t:"), stats: openStats(t, storetest.Postgres(t))}
	ids := shoppers(500)
	n := bulkClicks(t, e, ids, 20000)

	w := e.newSync(t, "w1")
	w.BatchSize = 50
	start(t, w)
	before := waitStored(t, e.stats, 1, 30*time.Second)
	if err := r.Stop(); err != nil { // a clean shutdown saves the data
		t.Fatal(err)
	}
	if before >= n {
		t.Fatalf("drain finished (%d of %d) before Redis stopped; the test proves nothing", before, n)
	}
	t.Logf("redis stopped with %d of %d events stored", before, n)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, e, n, 60*time.Second)
	assertExact(t, e, ids, n)
}

// buildPhoenix builds the phoenix binary into a temporary folder.
func buildPhoenix(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found to build phoenix: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "phoenix")
	out, err := exec.Command(goBin, "build", "-o", bin, "../cmd/phoenix").CombinedOutput()
	if err != nil {
		t.Fatalf("build phoenix: %v\n%s", err, out)
	}
	return bin
}

// workerProcess is phoenix worker running as a child process.
type workerProcess struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan error
}

func startWorkerProcess(t *testing.T, bin string, env []string) *workerProcess {
	t.Helper()
	p := &workerProcess{cmd: exec.Command(bin, "worker"), logs: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("worker %d output:\n%s", p.cmd.Process.Pid, p.logs)
		}
	})
	return p
}

// wait waits for the process to exit and returns its error.
func (p *workerProcess) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		t.Fatalf("worker %d still running after %s", p.cmd.Process.Pid, timeout)
		return nil
	}
}

func TestSync_KillNine(t *testing.T) {
	bin := buildPhoenix(t)
	rdb, prefix := storetest.Redis(t)
	dbURL := storetest.Postgres(t)
	e := &env{rdb: rdb, likes: store.NewLikes(rdb, prefix), stats: openStats(t, dbURL)}
	ids := shoppers(2000)
	n := bulkClicks(t, e, ids, 40000)

	env := func(consumer string) []string {
		return []string{
			"PHOENIX_REDIS_URL=redis://" + rdb.Options().Addr + "/0",
			"PHOENIX_REDIS_PREFIX=" + strings.TrimSuffix(e.likes.StreamKey(), "events"),
			"PHOENIX_DATABASE_URL=" + dbURL,
			"PHOENIX_WORKER_ADDR=127.0.0.1:0",
			"PHOENIX_WORKER_CONSUMER=" + consumer,
			"PHOENIX_WORKER_BATCH=200",
			"PHOENIX_WORKER_CLAIM_IDLE=1s",
			"PHOENIX_LOG_FORMAT=text",
		}
	}
	first := startWorkerProcess(t, bin, env("first"))
	waitStored(t, e.stats, 1, 30*time.Second)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := first.wait(t, 10*time.Second); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first worker: got %v, want killed by SIGKILL", err)
	}
	stored := eventsStored(t, e.stats)
	if stored >= n {
		t.Fatalf("drain finished (%d of %d) before the kill; the test proves nothing", stored, n)
	}
	t.Logf("killed with %d of %d events stored", stored, n)

	// A new worker (another name) claims what the dead one left pending.
	second := startWorkerProcess(t, bin, env("second"))
	waitDrained(t, e, n, 60*time.Second)
	assertExact(t, e, ids, n)

	// SIGTERM: the worker finishes its batch and exits 0.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.wait(t, 20*time.Second); err != nil {
		t.Fatalf("second worker after SIGTERM: %v, want exit 0", err)
	}
}
