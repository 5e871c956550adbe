package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// server is what testkit starts in a folder of its own: a Redis, a Redis
// Cluster or a PostgreSQL server.
type server interface{ Stop() error }

// lazyServer is a server shared by the tests of one binary, started on
// first use. A start is tried once: after a failure every later test
// fails (or skips) at once rather than waiting for another try.
type lazyServer[S server] struct {
	mu    sync.Mutex
	tried bool
	s     S
	dir   string
	err   error
}

// get returns the server, starting it with start on first use.
func (l *lazyServer[S]) get(tb testing.TB, start func() (S, string, error)) S {
	tb.Helper()
	shared.mu.Lock()
	shared.requireRun(tb)
	shared.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.tried {
		l.tried = true
		l.s, l.dir, l.err = start()
	}
	if l.err != nil {
		failStart(tb, l.err)
	}
	return l.s
}

// stop stops the server if it was started and removes its folder.
func (l *lazyServer[S]) stop() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	if l.tried && l.err == nil {
		errs = append(errs, l.s.Stop())
	}
	if l.dir != "" {
		errs = append(errs, os.RemoveAll(l.dir))
	}
	var none S
	l.tried, l.s, l.dir, l.err = false, none, "", nil
	return errors.Join(errs...)
}

// private starts a server that one test owns, for fault tests that stop,
// kill or restart it; Cleanup stops it and removes its folder.
func private[S server](tb testing.TB, start func() (S, string, error)) S {
	tb.Helper()
	s, dir, err := start()
	if err != nil {
		failStart(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Errorf("testkit: %v", err)
		}
		_ = os.RemoveAll(dir)
	})
	return s
}

// startInTemp starts a server with start in a new temporary folder (pattern
// as for os.MkdirTemp) and returns it with the folder, which it removes
// again when the start fails.
func startInTemp[S server](what, pattern string, start func(ctx context.Context, dir string) (S, error)) (S, string, error) {
	var none S
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return none, "", fmt.Errorf("start %s: %w", what, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := start(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return none, "", err
	}
	return s, dir, nil
}
