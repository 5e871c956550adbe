package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"

	"phoenix/handlers"
)

// shutdownTimeout bounds how long in-flight requests may take to finish.
const shutdownTimeout = 10 * time.Second

// server is one role's HTTP server: a Fiber app on a listener.
type server struct {
	role   string
	app    *fiber.App
	ln     net.Listener
	health *handlers.Health
	log    *slog.Logger
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
// lets in-flight requests finish within shutdownTimeout.
func (s *server) run(ctx context.Context) error {
	s.log.Info("listening", "role", s.role, "addr", s.ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.app.Listener(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: serve: %w", s.role, err)
	case <-ctx.Done():
	}
	s.health.Drain()
	if s.drainDelay > 0 {
		time.Sleep(s.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.app.ShutdownWithContext(sctx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", s.role, err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("%s: serve: %w", s.role, err)
	}
	s.log.Info("stopped", "role", s.role)
	return nil
}
