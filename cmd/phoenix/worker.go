package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"phoenix/handlers"
	"phoenix/store"
	"phoenix/worker"
)

// workerConfig is the worker role's own settings.
type workerConfig struct {
	addr      string
	consumer  string
	group     string
	batch     int
	block     time.Duration
	claimIdle time.Duration
	// consumerIdle: other consumers idle this long with nothing pending
	// are deleted from the group.
	consumerIdle time.Duration
	retention    time.Duration // how long like_events keeps history (0: forever)
	catalog      string        // shared with the shop under phoenix all
	backlog      backlogConfig
}

// defaultEventRetention is PHOENIX_EVENT_RETENTION's default: a month of
// history for charts and investigations; the like state and the
// aggregates are kept whatever it is.
const defaultEventRetention = 30 * 24 * time.Hour

// defaultMaxBacklog is PHOENIX_MAX_BACKLOG's default: about a minute and a
// half of Likes at the shop's measured peak, a few megabytes of Redis.
const defaultMaxBacklog = 100000

// backlogConfig is the bound on the undelivered backlog: the shop answers
// Likes 503 busy above it, the worker reports it. Registered once per
// process, by whichever role comes first, because phoenix all runs both.
type backlogConfig struct {
	max int
}

func (c *backlogConfig) register(f *flags) {
	f.Int(&c.max, "max-backlog", "PHOENIX_MAX_BACKLOG", defaultMaxBacklog,
		"undelivered Like events above which the shop answers Likes 503 busy (0: no bound)")
}

func (c *backlogConfig) checks() []func() error {
	return []func() error{checkNonNegative("PHOENIX_MAX_BACKLOG", &c.max)}
}

func (c *workerConfig) register(f *flags, e *env) {
	f.String(&c.addr, "worker-addr", "PHOENIX_WORKER_ADDR", ":8082", "worker health listen address")
	f.String(&c.consumer, "worker-consumer", "PHOENIX_WORKER_CONSUMER", defaultConsumer(e), "this worker's consumer name; unique per running worker")
	f.String(&c.group, "worker-group", "PHOENIX_WORKER_GROUP", worker.DefaultGroup, "consumer group shared by the workers")
	f.Int(&c.batch, "worker-batch", "PHOENIX_WORKER_BATCH", worker.DefaultBatchSize, "events per read and per transaction")
	f.Duration(&c.block, "worker-block", "PHOENIX_WORKER_BLOCK", worker.DefaultBlock, "how long a read waits for new events")
	f.Duration(&c.claimIdle, "worker-claim-idle", "PHOENIX_WORKER_CLAIM_IDLE", worker.DefaultClaimIdle,
		"how long an event may stay unacknowledged with another worker before this one takes it over")
	f.Duration(&c.consumerIdle, "worker-consumer-idle", "PHOENIX_WORKER_CONSUMER_IDLE", worker.DefaultConsumerIdle,
		"delete another worker's consumer name from the group once it has read nothing for this long and has nothing pending")
	f.Duration(&c.retention, "event-retention", "PHOENIX_EVENT_RETENTION", defaultEventRetention,
		"how long PostgreSQL keeps the Like event history, in whole days (at least 24h; 0: forever); the like state and the counters are kept")
}

func (c *workerConfig) checks() []func() error {
	return []func() error{
		checkAddr("PHOENIX_WORKER_ADDR", &c.addr),
		checkPositive("PHOENIX_WORKER_BATCH", &c.batch),
		func() error {
			switch {
			case c.consumer == "":
				return errors.New("PHOENIX_WORKER_CONSUMER: missing")
			case c.group == "":
				return errors.New("PHOENIX_WORKER_GROUP: missing")
			case c.block < time.Millisecond:
				return fmt.Errorf("PHOENIX_WORKER_BLOCK: %s is shorter than 1ms", c.block)
			case c.claimIdle < time.Millisecond:
				return fmt.Errorf("PHOENIX_WORKER_CLAIM_IDLE: %s is shorter than 1ms", c.claimIdle)
			case c.retention != 0 && c.retention < 24*time.Hour:
				// The history is dropped a day's partition at a time.
				return fmt.Errorf("PHOENIX_EVENT_RETENTION: %s is shorter than 24h (0 keeps the history forever)", c.retention)
			case c.consumerIdle < c.block+c.claimIdle:
				// A live worker reads every block; deleting it costs
				// nothing, but churn in the group is noise.
				return fmt.Errorf("PHOENIX_WORKER_CONSUMER_IDLE: %s is shorter than PHOENIX_WORKER_BLOCK plus PHOENIX_WORKER_CLAIM_IDLE", c.consumerIdle)
			}
			return nil
		},
	}
}

// defaultConsumer names the worker after its host and process, so that
// workers on one host (or restarts) never share a name.
func defaultConsumer(e *env) string { return replicaName(e) }

// replicaName names this process in the heartbeats: its host and pid.
func replicaName(e *env) string {
	return instanceName(e) + "-" + strconv.Itoa(os.Getpid())
}

func runWorker(ctx context.Context, e *env, args []string) error {
	f := newFlags("worker", e)
	var (
		lc logConfig
		oc opsConfig
		rc redisConfig
		dc databaseConfig
		wc workerConfig
	)
	lc.register(f, "json")
	oc.register(f)
	rc.register(f)
	dc.register(f)
	dc.registerMigrate(f)
	wc.register(f, e)
	wc.backlog.register(f)
	f.String(&wc.catalog, "catalog", "PHOENIX_CATALOG", "", "catalog JSON file (default: the embedded catalog)")
	checks := append(append(append(oc.checks(), rc.checks()...), dc.checks()...), append(wc.checks(), wc.backlog.checks()...)...)
	if err := f.parse(args, checks...); err != nil {
		return err
	}
	log, err := lc.logger(e.stderr)
	if err != nil {
		return err
	}
	reg := newRegistry()
	w, err := openWorker(ctx, e, log, rc, dc, wc, ops{reg: reg, drainDelay: oc.drainDelay})
	if err != nil {
		return err
	}
	defer w.close()
	return runRoles(ctx, e, log, oc, reg, w.run)
}

// workerRole is a running worker: its stores, its sync loop and its health
// server.
type workerRole struct {
	*server
	likes *store.Likes
	stats *store.Stats
	sync  *worker.Sync
}

func openWorker(ctx context.Context, e *env, log *slog.Logger, rc redisConfig, dc databaseConfig, wc workerConfig, o ops) (*workerRole, error) {
	catalog, err := store.LoadCatalog(wc.catalog)
	if err != nil {
		return nil, fmt.Errorf("PHOENIX_CATALOG: %w", err)
	}
	// Either server may come up later: the worker waits and retries.
	likes, err := rc.open(ctx, store.LikesOptions{})
	if errors.Is(err, store.ErrUnavailable) {
		log.Warn("redis unreachable at start", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("PHOENIX_REDIS_URL: %w", err)
	}
	stats, err := store.OpenStats(ctx, dc.url)
	if errors.Is(err, store.ErrUnavailable) {
		log.Warn("postgres unreachable at start", "err", err)
	} else if err != nil {
		_ = likes.Close() // the error that stopped start-up is the one to report
		return nil, fmt.Errorf("PHOENIX_DATABASE_URL: %w", err)
	}
	// A server holding just the log until the real one is made, so that
	// close can log on the failure paths below.
	r := &workerRole{likes: likes, stats: stats, server: &server{log: log}}
	app := handlers.NewHealthApp("worker", log, handlers.NewMetrics(o.reg, "worker"))
	health := &handlers.Health{Checks: []handlers.Check{{Name: "redis", Ping: likes.Ping}, {Name: "postgres", Ping: stats.Ping}}}
	health.Routes(app)
	health.Export(o.reg, "worker")
	ln, err := listen("worker", wc.addr, e)
	if err != nil {
		r.close()
		return nil, err
	}
	r.server = &server{role: "worker", app: app, ln: ln, health: health, log: log, drainDelay: o.drainDelay}
	r.sync = &worker.Sync{
		Likes: likes, Stats: stats, Log: log.With("role", "worker"),
		Consumer: wc.consumer, Group: wc.group, BatchSize: wc.batch, Block: wc.block, ClaimIdle: wc.claimIdle,
		ConsumerIdle: wc.consumerIdle, MaxBacklog: int64(wc.backlog.max), Retention: wc.retention,
		Migrate: dc.migrate, Products: catalog.Products(), Metrics: worker.NewMetrics(o.reg, int64(wc.backlog.max)),
		Version: buildVersion(),
	}
	return r, nil
}

// run syncs and serves health until ctx is done; the sync finishes its
// batch first.
func (r *workerRole) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.server.run(gctx) })
	g.Go(func() error { return r.sync.Run(gctx) })
	return g.Wait()
}

func (r *workerRole) close() {
	if err := r.stats.Close(); err != nil {
		r.log.Warn("close postgres", "err", err)
	}
	if err := r.likes.Close(); err != nil {
		r.log.Warn("close redis", "err", err)
	}
}
