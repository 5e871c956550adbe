package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// allClients is the login_failures row that counts every client's failures.
const allClients = "*"

// LoginLimits are the admin's failed-login limits. Zero values take the
// defaults below.
type LoginLimits struct {
	PerClient int           // failures a client may have per Window before it is refused (5)
	Overall   int           // failures of all clients per Window past which Fail reports an alert (50)
	Window    time.Duration // how long failures count (1 minute)
}

// Logins keeps the admin's failed logins in PostgreSQL, the admin's only
// store, so that every admin replica sees the same counts. A fixed window
// per client: one upsert per failure, one read per attempt, and the clock
// is PostgreSQL's, which replicas share.
type Logins struct {
	s      *Stats
	limits LoginLimits
}

// NewLogins returns the failed-login store with limits.
func NewLogins(s *Stats, limits LoginLimits) *Logins {
	if limits.PerClient <= 0 {
		limits.PerClient = 5
	}
	if limits.Overall <= 0 {
		limits.Overall = 50
	}
	if limits.Window <= 0 {
		limits.Window = time.Minute
	}
	return &Logins{s: s, limits: limits}
}

// Limits returns the limits in force.
func (l *Logins) Limits() LoginLimits { return l.limits }

// Check reports how long the client must wait before it may try again: 0
// when it may try now.
func (l *Logins) Check(ctx context.Context, client string) (time.Duration, error) {
	var wait float64
	err := l.s.db.QueryRowContext(ctx, `
SELECT EXTRACT(EPOCH FROM window_start + $3 * interval '1 millisecond' - now())
FROM login_failures
WHERE client = $1 AND failures >= $2 AND window_start > now() - $3 * interval '1 millisecond'`,
		client, l.limits.PerClient, l.limits.Window.Milliseconds()).Scan(&wait)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: check login limit: %v", ErrUnavailable, err)
	}
	return max(time.Duration(wait*float64(time.Second)), time.Second), nil
}

// LoginFailure is what Fail counted.
type LoginFailure struct {
	Client  int // the client's failures in its window, this one included
	Overall int // every client's failures in the current window
	// Alert is set for the one failure that took Overall past the limit in
	// this window, so that one replica alerts once per window.
	Alert bool
}

// Fail counts a failed login of client, and of all clients together, in
// one statement. Windows that have ended start again at 1. Rows of clients
// whose window ended are removed on the way, skipping any row another
// failure holds, so no two failures wait on each other.
func (l *Logins) Fail(ctx context.Context, client string) (LoginFailure, error) {
	if client == allClients {
		return LoginFailure{}, fmt.Errorf("count login failure: %q is not a client address", client)
	}
	window := l.limits.Window.Milliseconds()
	rows, err := l.s.db.QueryContext(ctx, `
INSERT INTO login_failures AS f (client, failures, window_start)
VALUES ($1, 1, now()), ('`+allClients+`', 1, now())
ON CONFLICT (client) DO UPDATE SET
    failures = CASE WHEN f.window_start <= now() - $2 * interval '1 millisecond' THEN 1 ELSE f.failures + 1 END,
    window_start = CASE WHEN f.window_start <= now() - $2 * interval '1 millisecond' THEN now() ELSE f.window_start END
RETURNING client, failures`, client, window)
	if err != nil {
		return LoginFailure{}, fmt.Errorf("%w: count login failure: %v", ErrUnavailable, err)
	}
	defer rows.Close()
	var f LoginFailure
	for rows.Next() {
		var who string
		var n int
		if err := rows.Scan(&who, &n); err != nil {
			return LoginFailure{}, fmt.Errorf("count login failure: %w", err)
		}
		if who == allClients {
			f.Overall = n
		} else {
			f.Client = n
		}
	}
	if err := rows.Err(); err != nil {
		return LoginFailure{}, fmt.Errorf("%w: count login failure: %v", ErrUnavailable, err)
	}
	f.Alert = f.Overall == l.limits.Overall+1
	_, err = l.s.db.ExecContext(ctx, `
DELETE FROM login_failures WHERE client IN (
    SELECT client FROM login_failures
    WHERE client <> '`+allClients+`' AND window_start <= now() - $1 * interval '1 millisecond'
    LIMIT 100 FOR UPDATE SKIP LOCKED)`, window)
	if err != nil {
		return f, fmt.Errorf("%w: forget old login failures: %v", ErrUnavailable, err)
	}
	return f, nil
}
