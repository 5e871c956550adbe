package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"phoenix/handlers"
)

// shutdownTimeout bounds how long in-flight requests may take to finish.
const shutdownTimeout = 10 * time.Second

// server is one HTTP server on a listener: a role's Fiber app, or the
// metrics server.
type server struct {
	role     string
	serve    func(net.Listener) error
	shutdown func(context.Context) error
	ln       net.Listener
	health   *handlers.Health // nil: no readiness to fail
	log      *slog.Logger
	// drainDelay keeps serving after readiness fails, so that load
	// balancers notice before connections are refused.
	drainDelay time.Duration
}

// listen opens the server's listener, so that Addr is known before Run.
func listen(role, addr string, e *env) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", role, addr, err)
	}
	if e.started != nil {
		e.started(role, ln.Addr().String())
	}
	return ln, nil
}

// run serves until ctx is done, then fails readiness, waits drainDelay and
// lets in-flight requests finish within shutdownTimeout. A nil server (no
// metrics) just waits.
func (s *server) run(ctx context.Context) error {
	if s == nil {
		<-ctx.Done()
		return nil
	}
	s.log.Info("listening", "role", s.role, "addr", s.ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: serve: %w", s.role, err)
	case <-ctx.Done():
	}
	if s.health != nil {
		s.health.Drain()
	}
	if s.drainDelay > 0 {
		time.Sleep(s.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.shutdown(sctx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", s.role, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("%s: serve: %w", s.role, err)
	}
	s.log.Info("stopped", "role", s.role)
	return nil
}
