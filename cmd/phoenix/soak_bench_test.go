package main

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"phoenix/loadgen"
	"phoenix/store"
	"phoenix/testkit"
	"phoenix/worker"
)

// soakSample is the process's resource use at one moment.
type soakSample struct {
	at         time.Duration
	heapMB     float64 // live heap after a GC
	rssMB      float64
	goroutines int
	fds        int // open file descriptors
	sockets    int // of which sockets (HTTP, Redis and PostgreSQL connections)
}

func takeSample(start time.Time) soakSample {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := soakSample{at: time.Since(start).Round(time.Second), heapMB: float64(m.HeapAlloc) / (1 << 20), goroutines: runtime.NumGoroutine()}
	if entries, err := os.ReadDir("/proc/self/fd"); err == nil {
		s.fds = len(entries)
		for _, e := range entries {
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
				s.sockets++
			}
		}
	}
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
				s.rssMB = float64(kb) / 1024
			}
		}
		f.Close()
	}
	return s
}

// BenchmarkSoak runs phoenix all (shop, worker, admin in this process) on
// private servers under a fixed Like rate for PHOENIX_SOAK_DURATION
// (default 10m) and samples memory, goroutines and open connections every
// PHOENIX_SOAK_EVERY (default 30s); at the end phoenix audit must be exact.
// It runs once whatever b.N is: use -benchtime 1x. The load generator runs
// in the same process with a fixed number of shoppers, so its share of the
// figures is constant too.
func BenchmarkSoak(b *testing.B) {
	duration := envDuration(b, "PHOENIX_SOAK_DURATION", 10*time.Minute)
	every := envDuration(b, "PHOENIX_SOAK_EVERY", 30*time.Second)
	rate := 500
	if v := os.Getenv("PHOENIX_SOAK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("PHOENIX_SOAK_RATE: %q is not a positive number", v)
		}
		rate = n
	}
	ctx := context.Background()
	rs, pg := testkit.RedisServer(b), testkit.PostgresServer(b)
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		b.Fatal(err)
	}
	vars := map[string]string{
		"PHOENIX_REDIS_URL":             rs.URL(),
		"PHOENIX_DATABASE_URL":          pg.URL("phoenix"),
		"PHOENIX_WORKER_ADDR":           "127.0.0.1:0",
		"PHOENIX_LIKE_RATE_PER_SHOPPER": "0",
		"PHOENIX_ADMIN_PASSWORD":        faultPassword,
		"PHOENIX_SECRET":                strings.Repeat("s", 40),
		"PHOENIX_LOG_LEVEL":             "warn",
	}
	p := startPhoenix(b, "all", vars)
	cat, err := store.DefaultCatalog()
	if err != nil {
		b.Fatal(err)
	}
	cfg := loadgen.Config{URL: "http://" + p.addr("shop"), Products: cat.IDs(), Shoppers: 50, Rate: rate, Duration: duration, Browse: 0.1, Timeout: 10 * time.Second}

	start := time.Now()
	var samples []soakSample
	done := make(chan loadgen.Summary, 1)
	b.ResetTimer()
	go func() { done <- loadgen.Run(ctx, cfg) }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	var sum loadgen.Summary
wait:
	for {
		select {
		case sum = <-done:
			break wait
		case <-tick.C:
			s := takeSample(start)
			samples = append(samples, s)
			b.Logf("%6s  heap %6.1f MB  rss %6.1f MB  goroutines %4d  fds %4d  sockets %4d", s.at, s.heapMB, s.rssMB, s.goroutines, s.fds, s.sockets)
		}
	}
	b.StopTimer()
	b.Logf("load: %d requests in %.0fs (%.0f/s), p50 %.2f ms, p99 %.2f ms, max %.2f ms, errors %v, %d likes and %d unlikes saved",
		sum.Requests, sum.Seconds, sum.RequestsPerSec, sum.P50, sum.P99, sum.Max, sum.Errors, sum.ConfirmedLikes, sum.ConfirmedUnlikes)

	rdbVars := map[string]string{"PHOENIX_REDIS_URL": rs.URL(), "PHOENIX_DATABASE_URL": pg.URL("phoenix")}
	var out syncBuffer
	e := &env{getenv: func(k string) string { return rdbVars[k] }, stdout: &out, stderr: &out}
	if err := runEnv(ctx, e, []string{"audit", "-wait", "2m", "-worker-group", worker.DefaultGroup}); err != nil {
		b.Errorf("phoenix audit: %v\n%s", err, out.String())
	}
	b.Logf("phoenix audit:\n%s", out.String())
	if len(samples) >= 2 {
		first, last := samples[0], samples[len(samples)-1]
		b.ReportMetric(first.heapMB, "heapMB-first")
		b.ReportMetric(last.heapMB, "heapMB-last")
		b.ReportMetric(float64(first.goroutines), "goroutines-first")
		b.ReportMetric(float64(last.goroutines), "goroutines-last")
		b.ReportMetric(float64(first.sockets), "sockets-first")
		b.ReportMetric(float64(last.sockets), "sockets-last")
	}
	b.ReportMetric(sum.RequestsPerSec, "req/s")
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s: %q is not a positive duration", name, v)
	}
	return d
}
