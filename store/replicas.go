package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Roles of a replica, as its heartbeat names them.
const (
	RoleShop   = "shop"
	RoleWorker = "worker"
	RoleAdmin  = "admin"
)

// Counters a heartbeat carries, running totals since the process started.
const (
	CountRequests = "requests" // shop: HTTP requests answered
	CountLikes    = "likes"    // shop: Likes and Unlikes saved
	CountRead     = "read"     // worker: stream entries read
	CountApplied  = "applied"  // worker: events written to PostgreSQL that were new
	CountStreams  = "streams"  // admin: live dashboard streams open now (a level, not a total)
)

// Heartbeat bounds.
const (
	// ReplicaGone is how long a replica's heartbeat is kept after it
	// stopped reporting: in Redis until a worker drops it, in PostgreSQL
	// until a later write deletes it.
	ReplicaGone = 10 * time.Minute
	// maxReplicas bounds what one read returns.
	maxReplicas = 100
	// maxReplicaName bounds a replica's name and version as stored.
	maxReplicaName = 128
)

// Beat is one heartbeat of a running process: who it is, and its counters,
// from which two beats give a rate.
type Beat struct {
	Role    string           `json:"role"`
	Name    string           `json:"name"`
	Version string           `json:"version"`
	At      time.Time        `json:"at"`
	Counts  map[string]int64 `json:"counts"`
	// Backlog is, per shard of the event stream, the entries the workers'
	// group has not acknowledged (workers only).
	Backlog []int64 `json:"backlog,omitempty"`
	LagMS   int64   `json:"lag_ms,omitempty"`
}

// clipped returns b with its names cut to what is stored.
func (b Beat) clipped() Beat {
	cut := func(s string) string {
		if len(s) > maxReplicaName {
			return s[:maxReplicaName]
		}
		return s
	}
	b.Name, b.Version = cut(b.Name), cut(b.Version)
	return b
}

// Replica is a replica's latest heartbeat and the one before it.
type Replica struct {
	Beat
	PrevAt     time.Time
	PrevCounts map[string]int64
}

// Rate is counter's change per second between the last two heartbeats; 0
// after a restart (the counter went back) or with one heartbeat only.
func (r Replica) Rate(counter string) float64 {
	d := r.At.Sub(r.PrevAt).Seconds()
	n := r.Counts[counter] - r.PrevCounts[counter]
	if d <= 0 || n < 0 {
		return 0
	}
	return float64(n) / d
}

// shopBeatsKey is the hash of the shops' heartbeats, name -> JSON Beat.
func (s *Likes) shopBeatsKey() string { return s.prefix + "replicas:shop" }

// ReportShop records a shop's heartbeat in Redis, for the workers to relay.
func (s *Likes) ReportShop(ctx context.Context, b Beat) error {
	b = b.clipped()
	js, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("report shop: %w", err)
	}
	if err := s.rdb.HSet(WithoutFaults(ctx), s.shopBeatsKey(), b.Name, js).Err(); err != nil {
		return fmt.Errorf("%w: report shop: %v", ErrUnavailable, err)
	}
	return nil
}

// ShopBeats returns the shops' heartbeats of the last ReplicaGone, and
// drops older ones (shops that stopped) and unreadable ones.
func (s *Likes) ShopBeats(ctx context.Context) ([]Beat, error) {
	all, err := s.rdb.HGetAll(ctx, s.shopBeatsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: read shop heartbeats: %v", ErrUnavailable, err)
	}
	var out []Beat
	var gone []string
	for name, js := range all {
		var b Beat
		if json.Unmarshal([]byte(js), &b) != nil || b.Name != name || time.Since(b.At) > ReplicaGone {
			gone = append(gone, name)
			continue
		}
		out = append(out, b)
	}
	if len(gone) > 0 {
		_ = s.rdb.HDel(ctx, s.shopBeatsKey(), gone...).Err() // the next read tries again
	}
	return out, nil
}

// RecordBeats writes heartbeats into the replicas table in one statement,
// which notifies the admins. A beat older than the one stored (relayed
// twice, by two workers) changes nothing. Rows of replicas gone for
// ReplicaGone are deleted on the way.
func (s *Stats) RecordBeats(ctx context.Context, beats []Beat) error {
	if len(beats) == 0 {
		return nil
	}
	for i := range beats {
		beats[i] = beats[i].clipped()
		if beats[i].Counts == nil {
			beats[i].Counts = map[string]int64{}
		}
	}
	js, err := json.Marshal(beats)
	if err != nil {
		return fmt.Errorf("record heartbeats: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `
WITH b AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS x(role text, name text, version text, at timestamptz, counts jsonb, backlog bigint[], lag_ms bigint)
), gone AS (
    DELETE FROM replicas WHERE seen_at < $2
), up AS (
    INSERT INTO replicas AS r (role, name, version, seen_at, counts, prev_seen_at, prev_counts, backlog, lag_ms)
    SELECT role, name, version, at, counts, at, counts, COALESCE(backlog, '{}'), COALESCE(lag_ms, 0) FROM b
    ON CONFLICT (role, name) DO UPDATE SET
        version = EXCLUDED.version, seen_at = EXCLUDED.seen_at, counts = EXCLUDED.counts,
        prev_seen_at = r.seen_at, prev_counts = r.counts, backlog = EXCLUDED.backlog, lag_ms = EXCLUDED.lag_ms
    WHERE EXCLUDED.seen_at > r.seen_at
    RETURNING 1
)
SELECT pg_notify('`+NotifyChannel+`', '') FROM (SELECT 1 FROM up LIMIT 1) changed`,
		string(js), s.now().Add(-ReplicaGone))
	if err != nil {
		return fmt.Errorf("record heartbeats: %w", err)
	}
	return nil
}

// Replicas returns the replicas heard from in the last ReplicaGone, by role
// and name.
func (s *Stats) Replicas(ctx context.Context) ([]Replica, error) {
	rows, err := s.db.QueryContext(ctx, `
SELECT role, name, version, seen_at, counts, prev_seen_at, prev_counts, backlog, lag_ms
FROM replicas WHERE seen_at >= $1 ORDER BY role, name LIMIT $2`, s.now().Add(-ReplicaGone), maxReplicas)
	if err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var (
			r            Replica
			counts, prev []byte
			backlog      pq.Int64Array
		)
		if err := rows.Scan(&r.Role, &r.Name, &r.Version, &r.At, &counts, &r.PrevAt, &prev, &backlog, &r.LagMS); err != nil {
			return nil, fmt.Errorf("replicas: %w", err)
		}
		if err := json.Unmarshal(counts, &r.Counts); err != nil {
			return nil, fmt.Errorf("replicas: counts of %s: %w", r.Name, err)
		}
		if err := json.Unmarshal(prev, &r.PrevCounts); err != nil {
			return nil, fmt.Errorf("replicas: counts of %s: %w", r.Name, err)
		}
		r.Backlog = backlog
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replicas: %w", err)
	}
	return out, nil
}

// Every calls fn now and then every d until ctx is done: the heartbeat
// loops of the roles.
func Every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beatTimeout bounds one heartbeat's Redis calls.
const beatTimeout = time.Second

// Heartbeat reports a shop's beat into Redis every d until ctx is done, and
// hands the demo controls the workers left there to faults. It is best
// effort: while Redis is away the shop's row in the flow view greys out.
func (s *Likes) Heartbeat(ctx context.Context, d time.Duration, beat func() Beat, faults *Faults) {
	Every(ctx, d, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(WithoutFaults(ctx), beatTimeout)
		defer cancel()
		if s.ReportShop(ctx, beat()) != nil {
			return
		}
		if cs, err := s.Controls(ctx); err == nil {
			faults.Set(cs)
		}
	})
}
