package handlers

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

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
	if h.draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).SendString("shutting down\n")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	for _, check := range h.Checks {
		if err := check.Ping(ctx); err != nil {
			return c.Status(fiber.StatusServiceUnavailable).SendString(check.Name + " unreachable\n")
		}
	}
	return c.SendString("ready\n")
}
