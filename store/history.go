package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// dayMS is the span of one like_events partition: a UTC day of stream ids.
const dayMS = 24 * 60 * 60 * 1000

// partitionsAhead is how many days past today get their like_events
// partition in advance, so that a day's events never wait in the default
// partition.
const partitionsAhead = 2

// historyLock is the advisory lock of MaintainHistory: one worker at a
// time creates and drops partitions; the others skip.
const historyLock = 0x70686f656e6968 // "phoenih"

// partitionPrefix starts every daily partition's name, followed by its day
// as YYYYMMDD (as the like_events_partition function names them).
const partitionPrefix = "like_events_"

// HistoryReport says what MaintainHistory did.
type HistoryReport struct {
	Skipped  bool      // another worker was at it
	Created  int       // partitions created
	Dropped  []string  // partitions dropped by retention
	KeptFrom time.Time // the start of the history kept (zero: all of it)
}

// MaintainHistory creates the daily like_events partitions of today and
// the next days and, when retention is positive, drops the history older
// than retention: whole days, rounded so that at least retention is kept.
// The like state, the counters and the buckets stay; events older than
// the kept history are parked from then on instead of applied, since a
// replay of one could not be recognised any more, and the tombstones and
// parked events older than it go as well.
func (s *Stats) MaintainHistory(ctx context.Context, retention time.Duration) (HistoryReport, error) {
	var r HistoryReport
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var locked bool
		if err := tx.GetContext(ctx, &locked, `SELECT pg_try_advisory_xact_lock($1)`, historyLock); err != nil {
			return err
		}
		if !locked {
			r.Skipped = true
			return nil
		}
		now := s.now()
		today := now.UnixMilli() / dayMS
		for d := today; d <= today+partitionsAhead; d++ {
			var created bool
			if err := tx.GetContext(ctx, &created, `SELECT like_events_partition($1)`, d); err != nil {
				return fmt.Errorf("create partition: %w", err)
			}
			if created {
				r.Created++
			}
		}
		// Days that landed in the default partition (replayed backlogs,
		// clocks off) get their own partition, so retention can drop them.
		var moved []bool
		if err := tx.SelectContext(ctx, &moved, `SELECT like_events_partition(d)
FROM (SELECT DISTINCT stream_ms / $1 AS d FROM like_events_default) days ORDER BY d`, dayMS); err != nil {
			return fmt.Errorf("create partition: %w", err)
		}
		for _, c := range moved {
			if c {
				r.Created++
			}
		}
		var keptFrom int64
		if err := tx.GetContext(ctx, &keptFrom, `SELECT kept_from_ms FROM event_history`); err != nil {
			return err
		}
		if retention > 0 {
			keptFrom = max(keptFrom, now.Add(-retention).UnixMilli()/dayMS*dayMS)
			dropped, err := dropHistory(ctx, tx, keptFrom)
			if err != nil {
				return err
			}
			r.Dropped = dropped
		}
		if keptFrom > 0 {
			r.KeptFrom = time.UnixMilli(keptFrom).UTC()
		}
		return nil
	})
	if err != nil {
		return HistoryReport{}, fmt.Errorf("maintain history: %w", err)
	}
	return r, nil
}

// dropHistory drops the partitions wholly before keptFrom (unix ms, a day
// boundary) and the other rows older than it, and records it as the start
// of the history.
func dropHistory(ctx context.Context, tx *sqlx.Tx, keptFrom int64) ([]string, error) {
	var names []string
	if err := tx.SelectContext(ctx, &names, `
SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'like_events'::regclass ORDER BY c.relname`); err != nil {
		return nil, fmt.Errorf("list partitions: %w", err)
	}
	var dropped []string
	for _, name := range names {
		day, err := time.Parse("20060102", strings.TrimPrefix(name, partitionPrefix))
		if err != nil || !strings.HasPrefix(name, partitionPrefix) {
			continue // the default partition
		}
		if day.UnixMilli()+dayMS > keptFrom {
			continue
		}
		if _, err := tx.ExecContext(ctx, `DROP TABLE `+pq.QuoteIdentifier(name)); err != nil { // #nosec G202 -- a partition name from pg_catalog, quoted (DROP takes no parameters)
			return nil, fmt.Errorf("drop partition: %w", err)
		}
		dropped = append(dropped, name)
	}
	for _, q := range []string{
		`DELETE FROM like_events_default WHERE stream_ms < $1`,
		`DELETE FROM like_state WHERE NOT liked AND last_ms < $1`,
		`DELETE FROM event_conflicts WHERE parked_at < timestamptz 'epoch' + $1 * interval '1 millisecond'`,
		`UPDATE event_history SET kept_from_ms = $1 WHERE kept_from_ms < $1`,
	} {
		if _, err := tx.ExecContext(ctx, q, keptFrom); err != nil {
			return nil, fmt.Errorf("drop history: %w", err)
		}
	}
	return dropped, nil
}
