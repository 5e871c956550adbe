package main

import (
	"context"
	"log/slog"
	"net"
)

// allConfig is the settings of every role, for phoenix all and phoenix dev.
type allConfig struct {
	log      logConfig
	ops      opsConfig
	edge     edgeConfig
	redis    redisConfig
	shop     shopConfig
	database databaseConfig
	worker   workerConfig
	admin    adminConfig
}

func (c *allConfig) register(f *flags, logFormat string) {
	c.log.register(f, logFormat)
	c.ops.register(f)
	c.edge.register(f)
	c.redis.register(f)
	c.shop.register(f)
	c.database.register(f)
	c.database.registerMigrate(f)
	c.worker.register(f, f.e)
	c.worker.backlog.register(f)
	c.admin.register(f)
}

func (c *allConfig) checks() []func() error {
	checks := append(c.ops.checks(), c.edge.checks()...)
	checks = append(checks, c.redis.checks()...)
	checks = append(checks, c.shop.checks()...)
	checks = append(checks, c.database.checks()...)
	checks = append(checks, c.worker.checks()...)
	checks = append(checks, c.worker.backlog.checks()...)
	return append(checks, c.admin.checks()...)
}

func runAll(ctx context.Context, e *env, args []string) error {
	f := newFlags("all", e)
	var cfg allConfig
	cfg.register(f, "json")
	if err := f.parse(args, cfg.checks()...); err != nil {
		return err
	}
	log, err := cfg.log.logger(e.stderr)
	if err != nil {
		return err
	}
	return startAll(ctx, e, log, cfg)
}

// startAll runs every role in this process until ctx is done, with one
// metrics registry and scrape endpoint for all. A role that fails stops the
// others.
func startAll(ctx context.Context, e *env, log *slog.Logger, cfg allConfig) error {
	cfg.shop.secret = cfg.admin.secret // one PHOENIX_SECRET for every role
	cfg.shop.backlog = cfg.worker.backlog
	tp, stopTracing, err := startTracing(ctx, e, log, "phoenix")
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := newRegistry()
	o := ops{reg: reg, drainDelay: cfg.ops.drainDelay, edge: cfg.edge, tracer: tp}
	shop, err := openShop(ctx, e, log, cfg.redis, cfg.shop, o)
	if err != nil {
		return err
	}
	defer shop.close()
	if cfg.admin.demoShopURL == "" {
		cfg.admin.demoShopURL = localURL(shop.ln.Addr().String()) // the port is known once listening
	}
	cfg.worker.catalog = cfg.shop.catalog
	worker, err := openWorker(ctx, e, log, cfg.redis, cfg.database, cfg.worker, o)
	if err != nil {
		return err
	}
	defer worker.close()
	admin, err := openAdmin(ctx, e, log, cfg.database, cfg.admin, o)
	if err != nil {
		return err
	}
	defer admin.close()
	return runRoles(ctx, e, log, cfg.ops, reg, shop.run, worker.run, admin.run)
}

// localURL is the URL of a listen address from this machine: an address
// without a host (":8080") listens on every interface, loopback included.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
