package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"time"

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
}

// defaultEventRetention is PHOENIX_EVENT_RETENTION's default: a month of
// history for charts and investigations; the like state and the
// aggregates are kept whatever it is.
const defaultEventRetention = 30 * 24 * time.Hour

// defaultMaxBacklog is PHOENIX_MAX_BACKLOG's default: about a minute and a
// half of Likes at the shop's measured peak, a few megabytes of Redis.
const defaultMaxBacklog = 100000

// backlogConfig is the bound on the undelivered backlog: the shop answers
// Likes 503 busy above it, the worker reports it.
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

// tuneWorkerGC applies worker.GCPercent unless the operator set GOGC.
// Only for the worker role alone: the shop's and the admin's memory is
// what a small replica has to spare.
func tuneWorkerGC(e *env) {
	if e.getenv("GOGC") == "" {
		debug.SetGCPercent(worker.GCPercent)
	}
}

func runWorker(ctx context.Context, e *env, args []string) error {
	tuneWorkerGC(e)
	return runRoles(ctx, e, "worker", args, workerRole())
}

// workerRole moves the Like events from Redis into PostgreSQL, once the
// migrations are applied, and serves its health.
func workerRole() role {
	return role{
		uses:     usesRedis | usesDatabase | usesCatalog | usesBacklog,
		register: func(c *allConfig, f *flags) []func() error { c.worker.register(f, f.e); return c.worker.checks() },
		open:     openWorker,
	}
}

func openWorker(ctx context.Context, m *Main) error {
	c := m.Config
	catalog, err := m.loadCatalog()
	if err != nil {
		return err
	}
	// Either server may come up later: the worker waits and retries.
	likes, err := m.openLikes(ctx, store.LikesOptions{})
	if err != nil {
		return err
	}
	stats, err := m.openStats(ctx)
	if err != nil {
		return err
	}
	applied := m.migrations(stats)
	app := handlers.NewHealthApp("worker", m.log, handlers.NewMetrics(m.reg, "worker"))
	health := m.health("worker", app, handlers.Check{Name: "redis", Ping: likes.Ping}, handlers.Check{Name: "postgres", Ping: stats.Ping})
	if err := m.serve("worker", c.worker.addr, app, health); err != nil {
		return err
	}
	wc := c.worker
	sync := &worker.Sync{
		Likes: likes, Stats: stats, Log: m.log.With("role", "worker"),
		Consumer: wc.consumer, Group: wc.group, BatchSize: wc.batch, Block: wc.block, ClaimIdle: wc.claimIdle,
		ConsumerIdle: wc.consumerIdle, MaxBacklog: int64(c.backlog.max), Retention: wc.retention,
		Products: catalog.Products(), Metrics: worker.NewMetrics(m.reg, int64(c.backlog.max)),
		Version: buildVersion(), Tracer: m.tracer,
	}
	// The sync finishes its batch once ctx is done.
	m.run(func(ctx context.Context) error {
		select {
		case <-applied:
			return sync.Run(ctx)
		case <-ctx.Done():
			return nil
		}
	})
	return nil
}
