package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"phoenix/store"
	"phoenix/worker"
)

// auditPoll is how often phoenix audit -wait reads again.
const auditPoll = 250 * time.Millisecond

// auditConfig is the settings of phoenix audit.
type auditConfig struct {
	storesConfig
	wait time.Duration
	all  bool
}

// runAudit compares every product's Likes in Redis and PostgreSQL. It exits
// non-zero when they differ once the backlog is drained, or when the
// backlog does not drain (or the servers do not answer) within -wait.
func runAudit(ctx context.Context, e *env, args []string) error {
	f := newFlags("audit", e)
	var c auditConfig
	c.storesConfig.register(f)
	f.DurationVar(&c.wait, "wait", 0, "wait up to this long for the workers to drain the backlog (0: read once)")
	f.BoolVar(&c.all, "all", false, "list every product, not only those that differ")
	likes, stats, closeStores, err := c.open(ctx, f, args, func() error {
		if c.wait < 0 {
			return errors.New("-wait: must not be negative")
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer closeStores()

	a, err := waitAudit(ctx, likes, stats, c.group, c.wait)
	if err != nil {
		return err
	}
	printAudit(e.stdout, a, c.all)
	bad := len(a.Mismatches())
	switch {
	case !a.Final():
		return fmt.Errorf("audit not final: %d events still waiting (%d undelivered, %d pending); try -wait 60s",
			a.Backlog.Total(), a.Backlog.Undelivered, a.Backlog.Pending)
	case bad > 0:
		return fmt.Errorf("audit failed: %d of %d products differ", bad, len(a.Rows))
	case len(a.Failed()) > 0:
		return fmt.Errorf("audit failed: %d checks failed", len(a.Failed()))
	}
	return nil
}

// storesConfig is how the tools (audit, reconcile) reach both stores and
// the workers' consumer group.
type storesConfig struct {
	redis    redisConfig
	database databaseConfig
	group    string
}

func (c *storesConfig) register(f *flags) {
	c.redis.register(f)
	c.database.register(f)
	f.String(&c.group, "worker-group", "PHOENIX_WORKER_GROUP", worker.DefaultGroup, "consumer group shared by the workers")
}

// open parses the flags, checking the stores' settings before the tool's
// own checks, and opens both stores; the tools wait for servers that are
// down rather than fail at once.
func (c *storesConfig) open(ctx context.Context, f *flags, args []string, checks ...func() error) (*store.Likes, *store.Stats, func(), error) {
	if err := f.parse(args, append(append(c.redis.checks(), c.database.checks()...), checks...)...); err != nil {
		return nil, nil, nil, err
	}
	likes, err := c.redis.open(ctx, store.LikesOptions{})
	if err != nil && !errors.Is(err, store.ErrUnavailable) {
		return nil, nil, nil, fmt.Errorf("PHOENIX_REDIS_URL: %w", err)
	}
	stats, err := store.OpenStats(ctx, c.database.url)
	if err != nil && !errors.Is(err, store.ErrUnavailable) {
		_ = likes.Close()
		return nil, nil, nil, fmt.Errorf("PHOENIX_DATABASE_URL: %w", err)
	}
	return likes, stats, func() { _ = likes.Close(); _ = stats.Close() }, nil
}

// waitAudit audits until the result is final or wait has passed, and
// returns the last result. Servers that do not answer are waited for too.
func waitAudit(ctx context.Context, likes *store.Likes, stats *store.Stats, group string, wait time.Duration) (store.Audit, error) {
	deadline := time.Now().Add(wait)
	for {
		a, err := store.RunAudit(ctx, likes, stats, group)
		if err == nil && a.Final() {
			return a, nil
		}
		if time.Now().After(deadline) {
			return a, err
		}
		select {
		case <-ctx.Done():
			return a, errors.Join(err, ctx.Err())
		case <-time.After(auditPoll):
		}
	}
}

// printAudit writes the audit as a table: the products that differ (or
// all), the totals and a verdict line.
func printAudit(w io.Writer, a store.Audit, all bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "product\tredis live\twaiting\tpostgres counter\tpostgres record\t")
	row := func(r store.AuditRow) {
		fmt.Fprintf(tw, "%s\t%d\t%+d\t%d\t%d\t  %s\n", r.ProductID, r.Live, r.Waiting, r.Counter, r.Events, r.Problem())
	}
	bad := a.Mismatches()
	if all {
		for _, r := range a.Rows {
			row(r)
		}
	} else {
		for _, r := range bad {
			row(r)
		}
	}
	row(a.Totals())
	_ = tw.Flush() // a failed write to the terminal leaves nothing to do
	for _, c := range a.Failed() {
		fmt.Fprintf(w, "%s: %s\n", c.Name, c.Problem)
	}
	switch {
	case !a.Final():
		fmt.Fprintf(w, "not final: %d events waiting (%d undelivered, %d pending)", a.Backlog.Total(), a.Backlog.Undelivered, a.Backlog.Pending)
		if !a.Stable {
			fmt.Fprint(w, "; Likes arrived while reading")
		}
		if a.Partial {
			fmt.Fprint(w, "; backlog too long to split by product")
		}
		fmt.Fprintln(w)
	case len(bad) > 0:
		fmt.Fprintf(w, "MISMATCH: %d of %d products differ (backlog drained)\n", len(bad), len(a.Rows))
	case len(a.Failed()) > 0:
		fmt.Fprintf(w, "MISMATCH: %d checks failed (backlog drained)\n", len(a.Failed()))
	default:
		t := a.Totals()
		fmt.Fprintf(w, "exact: %d products, %d likes in Redis and PostgreSQL, backlog drained; totals, buckets and parked entries checked\n", len(a.Rows), t.Live)
	}
}
