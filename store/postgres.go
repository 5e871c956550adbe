package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/XSAM/otelsql"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq" // also registers the driver as "postgres"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Stats is the PostgreSQL store: the worker writes Like events and
// pre-aggregated counters into it, the admin reads statistics from it.
type Stats struct {
	db  *sqlx.DB
	url string // for Listen, which needs a connection of its own
	now func() time.Time
}

// StatsOptions are OpenStats's optional settings.
type StatsOptions struct {
	// Tracer, when set, gives every statement made within a traced
	// operation (a request's, a worker batch's) a span; nil: none, and the
	// plain driver.
	Tracer trace.TracerProvider
}

// OpenStats connects to PostgreSQL at url (postgres://...). It returns the
// store even when the server is down (with an error wrapping ErrUnavailable),
// because roles keep running and retry.
func OpenStats(ctx context.Context, url string, opts ...StatsOptions) (*Stats, error) {
	var o StatsOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	db, err := openDB(url, o.Tracer)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &Stats{db: db, url: url, now: time.Now}
	if err := s.Ping(ctx); err != nil {
		return s, err
	}
	return s, nil
}

// openDB opens the pool, through otelsql when tp is set. Only statements
// inside a traced operation get a span (the heartbeat and the trim would
// otherwise start a trace each), and only the statements themselves: no
// span per connection reset, row scan or prepare.
//
// Every connection uses lib/pq's binary_parameters, whatever url says: a
// statement with parameters then takes one round trip instead of two
// (lib/pq otherwise asks the server for the parameters' types first),
// about a quarter of a dashboard refresh's time on a local server.
// It changes how []byte parameters are sent (as binary); Phoenix passes
// none to a column of another type than bytea or text.
func openDB(url string, tp trace.TracerProvider) (*sqlx.DB, error) {
	cfg, err := pq.NewConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.BinaryParameters = true
	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tp == nil {
		return sqlx.NewDb(sql.OpenDB(conn), "postgres"), nil
	}
	traced := func(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
		return trace.SpanContextFromContext(ctx).IsValid()
	}
	db := otelsql.OpenDB(conn, otelsql.WithTracerProvider(tp),
		otelsql.WithAttributes(attribute.String("db.system.name", "postgresql")),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitConnResetSession: true, OmitConnPrepare: true, OmitRows: true, OmitConnectorConnect: true,
			DisableErrSkip: true, SpanFilter: traced,
		}))
	return sqlx.NewDb(db, "postgres"), nil
}

// At is s with its clock reading now: the same pool, for a writer that
// stamps rows at a time of the caller's choosing (a test's heartbeat of
// the past).
func (s *Stats) At(now func() time.Time) *Stats {
	c := *s
	c.now = now
	return &c
}

// Close closes the connection pool.
func (s *Stats) Close() error { return s.db.Close() }

// Ping checks that PostgreSQL answers.
func (s *Stats) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: ping postgres: %v", ErrUnavailable, err)
	}
	return nil
}

// inTx runs fn in one transaction, committing if it returns nil and rolling
// back otherwise.
func (s *Stats) inTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// After a commit, Rollback does nothing; after a failure, the error
	// from fn or Commit already says why.
	defer tx.Rollback() //nolint:errcheck

	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
