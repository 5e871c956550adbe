package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// newRegistry returns the process's metrics registry, with the Go runtime
// and process collectors. Roles register their own metrics in it, so that in
// phoenix all one scrape shows every role.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsServer serves /metrics on its own address, apart from the public
// ports, so that scrapes need not be exposed to shoppers.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

func listenMetrics(addr string, reg *prometheus.Registry, e *env, log *slog.Logger) (*metricsServer, error) {
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := listen("metrics", addr, e)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	return &metricsServer{srv: srv, ln: ln, log: log}, nil
}

// run serves until ctx is done; a nil server (metrics off) just waits.
func (m *metricsServer) run(ctx context.Context) error {
	if m == nil {
		<-ctx.Done()
		return nil
	}
	m.log.Info("listening", "role", "metrics", "addr", m.ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- m.srv.Serve(m.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := m.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve: %w", err)
	}
	return nil
}
