package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"phoenix/store"
)

// maxMigrateWait bounds one attempt at the migrations and the wait
// between attempts.
const maxMigrateWait = 30 * time.Second

// migrateGrace is how long an attempt at the migrations may go on once the
// process is stopping. Cancelling one inside its transaction races in
// database/sql: the transaction's rollback closes goose's connection while
// goose unlocks on it, a nil-pointer panic (seen in CI when a test stopped
// phoenix during its start).
const migrateGrace = 5 * time.Second

// databaseConfig is how a role reaches PostgreSQL.
type databaseConfig struct {
	url     string
	migrate bool
}

func (c *databaseConfig) register(f *flags) {
	f.String(&c.url, "database-url", "PHOENIX_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/phoenix?sslmode=disable", "PostgreSQL URL")
}

// registerMigrate adds the switch for migrating at start, which roles that
// use PostgreSQL have and phoenix migrate does not need.
func (c *databaseConfig) registerMigrate(f *flags) {
	f.Bool(&c.migrate, "migrate", "PHOENIX_MIGRATE", true, "apply the database migrations at start")
}

func (c *databaseConfig) checks() []func() error {
	return []func() error{checkURL("PHOENIX_DATABASE_URL", &c.url, "postgres", "postgresql")}
}

// runMigrate applies the embedded migrations and exits.
func runMigrate(ctx context.Context, e *env, args []string) error {
	f := newFlags("migrate", e)
	var c allConfig // its log and database settings only
	c.log.register(f, "text")
	c.database.register(f)
	if err := f.parse(args, c.database.checks()...); err != nil {
		return err
	}
	log, err := c.log.logger(e.stderr)
	if err != nil {
		return err
	}
	stats, err := store.OpenStats(ctx, c.database.url)
	if err != nil {
		if stats != nil {
			_ = stats.Close() // the open error is the one to report
		}
		return fmt.Errorf("PHOENIX_DATABASE_URL: %w", err)
	}
	defer stats.Close()
	if err := stats.Migrate(ctx); err != nil {
		return err
	}
	log.Info("migrations applied")
	return nil
}

// migrateUntilDone applies the migrations, retrying with back-off while
// they fail, until they succeed (true) or ctx is done (false).
func migrateUntilDone(ctx context.Context, log *slog.Logger, stats *store.Stats) bool {
	for wait := time.Second; ; wait = min(2*wait, maxMigrateWait) {
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), maxMigrateWait)
		stop := context.AfterFunc(ctx, func() { time.AfterFunc(migrateGrace, cancel) })
		err := stats.Migrate(mctx)
		stop()
		cancel()
		if err == nil {
			log.Info("migrations applied")
			return true
		}
		log.Warn("migrations not applied, retrying", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}
