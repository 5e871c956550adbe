package handlers

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts and times HTTP requests, and counts Likes. Every series
// carries a constant "role" label, so that the shop and the admin of one
// process can share one registry (and one scrape endpoint) in phoenix all.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	likes    *prometheus.CounterVec
}

// NewMetrics registers the HTTP metrics of one role with reg.
func NewMetrics(reg prometheus.Registerer, role string) *Metrics {
	labels := prometheus.Labels{"role": role}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_http_requests_total", Help: "HTTP requests by route, method and status.", ConstLabels: labels,
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "phoenix_http_request_duration_seconds", Help: "HTTP request duration by route and method.", ConstLabels: labels,
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		likes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_likes_total", Help: "Like and Unlike requests by action and outcome (accepted, unchanged, refused).", ConstLabels: labels,
		}, []string{"action", "outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.likes)
	return m
}

// Middleware records every request under its route pattern (never the raw
// path, which would let clients create unbounded series).
func (m *Metrics) Middleware(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; predict its status.
		status, _ = classify(err)
	}
	route := c.Route().Path
	if c.Route().Method == "USE" && status == fiber.StatusNotFound {
		// Only a middleware saw it (say, the shopper cookie): no route matched.
		route = "unmatched"
	}
	method := c.Method()
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	return err
}

// like counts one Like or Unlike by its outcome; m may be nil in tests.
func (m *Metrics) like(action, outcome string) {
	if m != nil {
		m.likes.WithLabelValues(action, outcome).Inc()
	}
}
