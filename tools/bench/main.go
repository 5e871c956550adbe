// Command bench measures Phoenix on this machine and rewrites BENCHMARKS.md
// (make bench). It starts private Redis and PostgreSQL servers, builds the
// phoenix and ceiling binaries once, loads them with wrk (Debian's) and
// with loadgen's fixed-rate shoppers, runs the Go benchmarks of the worker
// drain and the stats refresh, and writes every figure with the command
// that produced it. Each throughput figure is the median of several runs;
// ratios compare figures of this same run.
//
// The experiments are a table (experiments.go, goBenchmarks in gobench.go);
// report.go words their results.
//
//	go run ./tools/bench [-runs 3] [-duration 5s] [-out BENCHMARKS.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"phoenix/supervise"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// benchPassword is the admin password of the measured phoenix.
const benchPassword = "bench-password-123"

type bench struct {
	dir      string
	here     string // the module's root, where the bench runs
	runs     int
	duration time.Duration
	phoenix  string // built binaries
	ceiling  string
	redis    *supervise.Redis
	postgres *supervise.Postgres
}

func run(ctx context.Context) error {
	var (
		b   bench
		out string
	)
	flag.IntVar(&b.runs, "runs", 3, "runs of each throughput measurement (the median is reported)")
	flag.DurationVar(&b.duration, "duration", 5*time.Second, "length of one wrk run")
	flag.StringVar(&out, "out", "BENCHMARKS.md", "report to rewrite")
	goBench := flag.Bool("go", true, "also run the Go benchmarks (worker drain, stats)")
	flag.Parse()
	var err error
	if b.here, err = os.Getwd(); err != nil {
		return err
	}
	if b.dir, err = os.MkdirTemp("", "phoenix-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	if err := b.build(); err != nil {
		return err
	}
	if b.redis, err = supervise.StartRedis(ctx, supervise.RedisOptions{Dir: filepath.Join(b.dir, "redis")}); err != nil {
		return err
	}
	defer b.redis.Stop()
	if b.postgres, err = supervise.StartPostgres(ctx, supervise.PostgresOptions{Dir: filepath.Join(b.dir, "pg")}); err != nil {
		return err
	}
	defer b.postgres.Stop()
	if err := b.postgres.CreateDatabase(ctx, "phoenix"); err != nil {
		return err
	}

	var report strings.Builder
	b.header(&report)
	var r results
	if err := b.http(ctx, &r); err != nil {
		return err
	}
	b.writeHTTP(&report, &r)
	if *goBench {
		for _, g := range goBenchmarks {
			args, out, err := b.runGo(g)
			if err != nil {
				return err
			}
			writeGo(&report, g.title, args, out)
		}
	}
	fmt.Fprintf(&report, "\nLoad average at the end: %s\n\n", loadavg())
	// The analysis (profiles, before/after, what is unmet) and the soak run
	// (BenchmarkSoak, too long for this run) are kept by hand beside the
	// program and copied in, so a rerun keeps them.
	for _, name := range []string{"NOTES.md", "SOAK.md"} {
		if notes, err := os.ReadFile(filepath.Join("tools", "bench", name)); err == nil {
			report.Write(notes)
			report.WriteString("\n")
		}
	}
	return os.WriteFile(out, []byte(report.String()), 0o644) //nolint:gosec // a report for people to read
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (b *bench) build() error {
	b.phoenix, b.ceiling = filepath.Join(b.dir, "phoenix"), filepath.Join(b.dir, "ceiling")
	for bin, pkg := range map[string]string{b.phoenix: "./cmd/phoenix", b.ceiling: "./tools/ceiling"} {
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", pkg, err)
		}
	}
	return nil
}
