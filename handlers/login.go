package handlers

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// LoginMetrics counts the admin's failed logins, so that an alert can fire
// on guessing spread over many addresses, which no per-client limit stops.
type LoginMetrics struct {
	failures prometheus.Counter
	alerts   prometheus.Counter
}

// NewLoginMetrics registers the admin's login metrics with reg.
func NewLoginMetrics(reg prometheus.Registerer) *LoginMetrics {
	m := &LoginMetrics{
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_admin_login_failures_total", Help: "Failed admin logins (wrong password).",
		}),
		alerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "phoenix_admin_login_guessing_alerts_total",
			Help: "Windows in which failed admin logins of all clients together passed PHOENIX_ADMIN_LOGIN_ALERT (distributed guessing).",
		}),
	}
	reg.MustRegister(m.failures, m.alerts)
	return m
}

// checkLoginLimit refuses, with 429 and Retry-After, a client that has used
// up its failed logins, before the password is even compared: a correct
// guess in the refused attempts would otherwise still tell the guesser.
// When the count cannot be read, logins wait (503) rather than go unlimited.
func (h *Admin) checkLoginLimit(ctx context.Context, c *fiber.Ctx) error {
	wait, err := h.Logins.Check(ctx, c.IP())
	if err != nil {
		h.Log.Warn("login limit unreadable", "err", err)
		return refuse(fiber.StatusServiceUnavailable, "error.logins_paused")
	}
	if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return refuse(fiber.StatusTooManyRequests, "error.too_many_logins", secs)
	}
	return nil
}

// loginFailed counts a wrong password against the client and all clients.
// Past the overall cap it only alerts: refusing everyone would let any
// attacker lock the admin out.
func (h *Admin) loginFailed(ctx context.Context, c *fiber.Ctx) {
	f, err := h.Logins.Fail(ctx, c.IP())
	if h.LoginMetrics != nil {
		h.LoginMetrics.failures.Inc()
	}
	if err != nil {
		h.Log.Warn("login failure not counted", "err", err, "ip", c.IP())
		return
	}
	h.Log.Warn("admin login failed", "ip", c.IP(), "client_failures", f.Client, "all_failures", f.Overall)
	if f.Alert {
		lim := h.Logins.Limits()
		h.Log.Warn("failed admin logins past the overall cap: possible distributed guessing",
			"all_failures", f.Overall, "cap", lim.Overall, "window", lim.Window.String())
		if h.LoginMetrics != nil {
			h.LoginMetrics.alerts.Inc()
		}
	}
}

// loginTimeout bounds the login limit's queries.
const loginTimeout = 2 * time.Second
