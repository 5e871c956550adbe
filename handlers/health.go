package handlers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// readyTimeout bounds the dependency checks of one readiness answer.
const readyTimeout = time.Second

// Check is one dependency that readiness depends on.
type Check struct {
	Name string
	Ping func(context.Context) error
}

// Health serves /healthz (the process is alive) and /readyz (its own
// dependencies answer and it is not shutting down).
type Health struct {
	Checks   []Check
	draining atomic.Bool
}

// Drain makes /readyz fail from now on, so a load balancer stops sending
// traffic before the server shuts down.
func (h *Health) Drain() { h.draining.Store(true) }

// Routes registers the health endpoints.
func (h *Health) Routes(r fiber.Router) {
	r.Get("/healthz", h.Alive)
	r.Get("/readyz", h.Ready)
}

// Alive handles GET /healthz; it touches nothing.
func (h *Health) Alive(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.SendString("ok\n")
}

// Ready handles GET /readyz: 200 when every check passes within a second.
func (h *Health) Ready(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	ctx, cancel := context.WithTimeout(c.UserContext(), readyTimeout)
	defer cancel()
	if reason := h.unready(ctx); reason != "" {
		return c.Status(fiber.StatusServiceUnavailable).SendString(reason + "\n")
	}
	return c.SendString("ready\n")
}

// Export registers phoenix_ready{role}, 1 when /readyz would answer 200 and
// 0 when not. It runs the checks at each scrape, so that an alert sees
// readiness where nothing probes /readyz, and sees it per role in phoenix
// all.
func (h *Health) Export(reg prometheus.Registerer, role string) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "phoenix_ready", Help: "1 when the role is ready (its dependencies answer and it is not shutting down), else 0.",
		ConstLabels: prometheus.Labels{"role": role},
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if h.unready(ctx) != "" {
			return 0
		}
		return 1
	}))
}

// unready returns why the role is not ready, or "" when it is.
func (h *Health) unready(ctx context.Context) string {
	if h.draining.Load() {
		return "shutting down"
	}
	for _, check := range h.Checks {
		if err := check.Ping(ctx); err != nil {
			return check.Name + " unreachable"
		}
	}
	return ""
}
