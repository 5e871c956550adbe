package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"phoenix/store/localdb"
)

// devConfig is phoenix dev's own settings: where the private servers live.
type devConfig struct {
	dir                     string
	redisPort, postgresPort int
}

func runDev(ctx context.Context, e *env, args []string) error {
	f := newFlags("dev", e)
	var (
		cfg allConfig
		dc  devConfig
	)
	cfg.register(f, "text")
	f.String(&dc.dir, "data-dir", "PHOENIX_DATA_DIR", ".phoenix", "folder of the private Redis and PostgreSQL data (kept between runs)")
	f.Int(&dc.redisPort, "redis-port", "PHOENIX_DEV_REDIS_PORT", 0, "port of the private Redis (0: a free port)")
	f.Int(&dc.postgresPort, "postgres-port", "PHOENIX_DEV_POSTGRES_PORT", 0, "port of the private PostgreSQL (0: a free port)")
	if err := f.parse(args); err != nil {
		return err
	}
	generated := cfg.admin.generateSecrets()
	for _, check := range cfg.checks() {
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
	log.Info("starting private servers", "dir", dc.dir)
	rdb, err := localdb.StartRedis(ctx, localdb.RedisOptions{Dir: filepath.Join(dir, "redis"), Port: dc.redisPort, AppendOnly: true})
	if err != nil {
		return err
	}
	defer rdb.Stop()
	pg, err := localdb.StartPostgres(ctx, localdb.PostgresOptions{Dir: filepath.Join(dir, "postgres"), Port: dc.postgresPort})
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
	if generated {
		_, port, _ := net.SplitHostPort(cfg.admin.addr) // checked above
		fmt.Fprintf(e.stdout, "\n  Admin dashboard: http://localhost:%s/admin\n  Admin password:  %s\n  (generated for this run; set PHOENIX_ADMIN_PASSWORD to choose your own)\n\n",
			port, cfg.admin.password)
	}
	return startAll(ctx, e, log, cfg)
}
