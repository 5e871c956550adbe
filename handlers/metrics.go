package handlers

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"phoenix/store"
)

// Metrics counts and times HTTP requests, and counts Likes. Every series
// carries a constant "role" label, so that the roles of one process can
// share one registry (and one scrape endpoint) in phoenix all.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	likes    *prometheus.CounterVec
	// Running totals for the role's heartbeat (the flow view's rates).
	requestsSeen, likesSaved atomic.Int64
}

// Like outcomes, the "outcome" label of phoenix_likes_total.
const (
	likeAccepted    = "accepted"      // the state changed and an event was appended
	likeUnchanged   = "unchanged"     // already in that state (a double click)
	likeCSRF        = "refused_csrf"  // no valid CSRF token or a cross-site request
	likeLimited     = "refused_limit" // over the rate limit
	likeBusy        = "busy"          // the event backlog is over its bound (back-pressure)
	likeUnavailable = "unavailable"   // Redis could not be reached: nothing saved
	likeUnconfirmed = "unconfirmed"   // saved on the primary, no replica confirmed in time
	likeInvalid     = "invalid"       // unknown product, no shopper cookie, junk
	likeFailed      = "error"         // any other server error
)

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
			Name:        "phoenix_likes_total",
			Help:        "Like and Unlike requests by action and outcome (accepted, unchanged, refused_csrf, refused_limit, busy, unavailable, invalid, error).",
			ConstLabels: labels,
		}, []string{"action", "outcome"}),
	}
	reg.MustRegister(m.requests, m.duration, m.likes)
	// The accepted series exist from the start at 0, so that increase()
	// counts the first Likes after a restart too: the backlog alert sums
	// them against what the workers synced.
	for _, a := range []store.Action{store.ActionLike, store.ActionUnlike} {
		m.likes.WithLabelValues(string(a), likeAccepted)
	}
	return m
}

// request records one finished request under its route pattern (never the
// raw path, which would let clients create unbounded series); m may be nil.
func (m *Metrics) request(route, method string, status int, d time.Duration) {
	if m != nil {
		m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
		m.requestsSeen.Add(1)
		m.duration.WithLabelValues(route, method).Observe(d.Seconds())
	}
}

// like counts one Like or Unlike by its outcome; m may be nil.
func (m *Metrics) like(action, outcome string) {
	if m != nil {
		m.likes.WithLabelValues(action, outcome).Inc()
		if outcome == likeAccepted {
			m.likesSaved.Add(1)
		}
	}
}

// Counts returns the requests answered and the Likes and Unlikes saved
// since start, as a heartbeat carries them; m may be nil.
func (m *Metrics) Counts() map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return map[string]int64{store.CountRequests: m.requestsSeen.Load(), store.CountLikes: m.likesSaved.Load()}
}
