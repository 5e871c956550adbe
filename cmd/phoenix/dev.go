package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"phoenix/supervise"
)

// devConfig is phoenix dev's own settings: where the private servers live.
type devConfig struct {
	dir                     string
	redisPort, postgresPort int
	topology                string // "" (every role in this process) or "cluster"
}

func runDev(ctx context.Context, e *env, args []string) error {
	f := newFlags("dev", e)
	var (
		cfg allConfig
		dc  devConfig
	)
	checks := cfg.register(f, "text")
	f.String(&dc.dir, "data-dir", "PHOENIX_DATA_DIR", ".phoenix", "folder of the private Redis and PostgreSQL data (kept between runs)")
	f.Int(&dc.redisPort, "redis-port", "PHOENIX_DEV_REDIS_PORT", 0, "port of the private Redis (0: a free port)")
	f.Int(&dc.postgresPort, "postgres-port", "PHOENIX_DEV_POSTGRES_PORT", 0, "port of the private PostgreSQL (0: a free port)")
	f.String(&dc.topology, "topology", "PHOENIX_DEV_TOPOLOGY", "",
		"cluster: two shops and two admins behind nginx with TLS (on the shop and admin ports), two workers, a Redis Cluster of 3 primaries with replicas and PostgreSQL, each its own process; fresh data each run")
	if err := f.parse(args, func() error {
		if dc.topology != "" && dc.topology != "cluster" {
			return fmt.Errorf("PHOENIX_DEV_TOPOLOGY: %q is not cluster", dc.topology)
		}
		return nil
	}); err != nil {
		return err
	}
	loopbackDefaults(f, map[string]*string{
		"shop-addr": &cfg.shop.addr, "admin-addr": &cfg.admin.addr,
		"worker-addr": &cfg.worker.addr, "metrics-addr": &cfg.ops.metricsAddr,
	})
	generated := cfg.admin.generateSecrets()
	generateSecret(&cfg.secret)
	// The demo controls are for a presenter at their own machine: on under
	// dev unless set.
	if e.getenv("PHOENIX_DEMO_CONTROLS") == "" && !flagSet(f, "demo-controls") {
		cfg.admin.demoControls = true
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	log, err := cfg.log.logger(e.stderr)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(dc.dir)
	if err != nil {
		return fmt.Errorf("PHOENIX_DATA_DIR: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("PHOENIX_DATA_DIR: %w", err)
	}
	if dc.topology == "cluster" {
		return runTopology(ctx, e, cfg, dir, generated)
	}
	log.Info("starting private servers", "dir", dc.dir)
	rdb, err := supervise.StartRedis(ctx, supervise.RedisOptions{Dir: filepath.Join(dir, "redis"), Port: dc.redisPort, AppendOnly: true})
	if err != nil {
		return err
	}
	defer rdb.Stop()
	pg, err := supervise.StartPostgres(ctx, supervise.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Port: dc.postgresPort})
	if err != nil {
		return err
	}
	defer pg.Stop()
	log.Info("private servers ready", "redis", rdb.Addr(), "postgres_port", pg.Port())
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		return err
	}
	cfg.redis.url = rdb.URL()
	cfg.database.url = pg.URL("phoenix")
	return runMain(ctx, devBanner(e, cfg.admin.password, generated), "phoenix", cfg)
}

// flagSet reports whether the flag was given on the command line.
func flagSet(f *flags, name string) bool {
	set := false
	f.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// loopbackDefaults makes each listen address that was not set (by flag or
// environment) listen on loopback only: a development server with a
// printed password has no business on every interface.
func loopbackDefaults(f *flags, addrs map[string]*string) {
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for name, p := range addrs {
		if host, port, err := net.SplitHostPort(*p); !set[name] && err == nil && host == "" {
			*p = net.JoinHostPort("127.0.0.1", port)
		}
	}
}

// devBanner returns e with a started callback that also prints where each
// server is, once it listens; the admin's password when dev made it up.
func devBanner(e *env, password string, generated bool) *env {
	de := *e
	de.started = func(role, addr string) {
		if e.started != nil {
			e.started(role, addr)
		}
		host, port, _ := net.SplitHostPort(addr) // a listener's own address
		if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
			host = "localhost"
		}
		base := "http://" + net.JoinHostPort(host, port)
		switch role {
		case "shop":
			fmt.Fprintf(e.stdout, "  Shop:            %s/\n", base)
		case "admin":
			fmt.Fprintf(e.stdout, "  Admin dashboard: %s/admin\n", base)
			if generated {
				fmt.Fprintf(e.stdout, "  Admin password:  %s\n  (generated for this run; set PHOENIX_ADMIN_PASSWORD to choose your own)\n", password)
			}
		case "metrics":
			fmt.Fprintf(e.stdout, "  Metrics:         %s/metrics\n", base)
		}
	}
	return &de
}
