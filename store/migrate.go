package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"math"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the embedded migrations that are not applied yet, each in
// its own transaction, recorded in goose's version table. A PostgreSQL
// advisory lock makes it safe for several workers to start at once.
func (s *Stats) Migrate(ctx context.Context) error { return s.MigrateTo(ctx, math.MaxInt64) }

// MigrateTo applies the migrations up to version (a migration file's
// number), as Migrate does; tests use it to build an older schema.
func (s *Stats) MigrateTo(ctx context.Context, version int64) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, s.db.DB, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
