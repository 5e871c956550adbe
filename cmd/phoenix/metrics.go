package main

import (
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

// listenMetrics returns the server of /metrics, on its own address apart
// from the public ports, so that scrapes need not be exposed to shoppers;
// nil when metrics are off.
func listenMetrics(addr string, reg *prometheus.Registry, e *env, log *slog.Logger) (*server, error) {
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
	serve := func(ln net.Listener) error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return &server{role: "metrics", serve: serve, shutdown: srv.Shutdown, ln: ln, log: log}, nil
}

// opsConfig is the operational settings every process has, once however
// many roles it runs.
type opsConfig struct {
	metricsAddr string
	drainDelay  time.Duration
}

// maxDrainDelay keeps a drain delay inside Kubernetes' default grace period
// (30s) with room for the shutdown itself.
const maxDrainDelay = 20 * time.Second

func (c *opsConfig) register(f *flags) {
	f.String(&c.metricsAddr, "metrics-addr", "PHOENIX_METRICS_ADDR", ":9090", "Prometheus /metrics listen address (off: no metrics server)")
	f.Duration(&c.drainDelay, "drain-delay", "PHOENIX_DRAIN_DELAY", 0,
		"on SIGTERM, fail /readyz and keep serving this long before closing, so load balancers stop routing first")
}

func (c *opsConfig) checks() []func() error {
	addr := checkAddr("PHOENIX_METRICS_ADDR", &c.metricsAddr)
	return []func() error{
		func() error {
			if c.metricsAddr == "off" {
				return nil
			}
			return addr()
		},
		func() error {
			if c.drainDelay < 0 || c.drainDelay > maxDrainDelay {
				return fmt.Errorf("PHOENIX_DRAIN_DELAY: %s is not between 0s and %s", c.drainDelay, maxDrainDelay)
			}
			return nil
		},
	}
}
