package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lib/pq"
)

// NotifyChannel is the PostgreSQL channel on which the writers of the
// dashboard's data announce a commit: the worker's batch transaction and
// its status row NOTIFY it, so the admin learns of new data from
// PostgreSQL itself.
const NotifyChannel = "phoenix_stats"

// notifyChanged is run inside a writing transaction: PostgreSQL delivers
// the notification only if, and when, the transaction commits.
const notifyChanged = `SELECT pg_notify('` + NotifyChannel + `', '')`

// Listener reconnect back-off and keep-alive.
const (
	listenMinBackoff = 500 * time.Millisecond
	listenMaxBackoff = 10 * time.Second
	listenPing       = 90 * time.Second
)

// Listen calls changed after each notification on NotifyChannel, and after
// each reconnection (notifications sent while disconnected are lost, so
// the data may have changed), until ctx is done. It holds one connection
// of its own, outside the pool; a process needs one Listen, fanned out.
func (s *Stats) Listen(ctx context.Context, changed func()) error {
	l := pq.NewListener(s.url, listenMinBackoff, listenMaxBackoff, nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // before wg.Wait: ends the goroutine on any return
	wg.Add(1)
	go func() { // Close ends a Listen blocked while PostgreSQL is down
		defer wg.Done()
		<-ctx.Done()
		_ = l.Close()
	}()
	if err := l.Listen(NotifyChannel); err != nil && ctx.Err() == nil {
		return fmt.Errorf("listen %s: %w", NotifyChannel, err)
	}
	ping := time.NewTicker(listenPing)
	defer ping.Stop()
	for {
		select {
		case _, ok := <-l.Notify:
			if !ok {
				return nil // closed: ctx is done
			}
			changed() // nil after a reconnection: changed too
		case <-ping.C:
			_ = l.Ping() // notices a dead connection; the listener reconnects
		case <-ctx.Done():
			return nil
		}
	}
}
