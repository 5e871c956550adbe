package worker

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"phoenix/store"
)

// Metrics is what a Sync reports to Prometheus: its batches, the events it
// synced, and how far behind the stream it is.
type Metrics struct {
	batchSize     prometheus.Histogram
	batchDuration prometheus.Histogram
	synced        prometheus.Counter
	replayed      prometheus.Counter
	parked        prometheus.Counter
	conflicts     *prometheus.CounterVec
	backlog       prometheus.Gauge
	shardBacklog  *prometheus.GaugeVec
	maxBacklog    prometheus.Gauge
	lag           prometheus.Gauge
	heartbeat     prometheus.Gauge
	others        prometheus.Gauge
	deleted       prometheus.Counter
	lost          *prometheus.CounterVec
	repairs       *prometheus.CounterVec
	repairErrors  *prometheus.CounterVec
	fixed         *prometheus.CounterVec
}

// NewMetrics registers the worker's metrics with reg. maxBacklog is the
// shop's backlog bound (PHOENIX_MAX_BACKLOG), exported as a constant gauge
// so that an alert can compare the backlog with it.
func NewMetrics(reg prometheus.Registerer, maxBacklog int64) *Metrics {
	m := &Metrics{
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "phoenix_worker_batch_size", Help: "Events per committed batch.",
			Buckets: []float64{1, 10, 50, 100, 250, 500, 1000, 2500, 5000},
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "phoenix_worker_batch_duration_seconds", Help: "Time to write a batch to PostgreSQL and acknowledge it in Redis.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "phoenix_worker_event_conflicts_total",
			Help: "Events parked in PostgreSQL's event_conflicts instead of applied: reason conflict, a different event under a stored (shard, stream id); reason expired, an event older than the kept history.",
		}, []string{"reason"}),
		shardBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "phoenix_worker_shard_backlog_events", Help: "Stream entries not yet synced by the group, per shard (PHOENIX_REDIS_SHARDS), as last read.",
		}, []string{"shard"}),

		synced:   newCounter("phoenix_worker_events_synced_total", "Like events written to PostgreSQL."),
		replayed: newCounter("phoenix_worker_events_replayed_total", "Events delivered again and ignored because PostgreSQL already had them."),
		parked:   newCounter("phoenix_worker_events_parked_total", "Malformed stream entries moved to the dead-letter stream."),
		deleted:  newCounter("phoenix_worker_consumers_deleted_total", "Consumers deleted from the group after idling past PHOENIX_WORKER_CONSUMER_IDLE with nothing pending."),

		backlog:    newGauge("phoenix_worker_backlog_events", "Stream entries not yet synced by the group (undelivered plus pending), as last read."),
		maxBacklog: newGauge("phoenix_worker_backlog_max_events", "The backlog at which the shop answers Likes 503 busy (PHOENIX_MAX_BACKLOG; 0: no bound)."),
		others:     newGauge("phoenix_worker_other_groups", "Consumer groups on the event stream other than the worker's own, as the last trim saw; the trim does not wait for them."),
		lag:        newGauge("phoenix_worker_lag_seconds", "Age of the newest event of the last batch when it was committed; 0 once the backlog is empty."),
		// A timestamp rather than up{}: it also goes stale when the worker
		// runs but cannot reach PostgreSQL, and it needs no scrape job name.
		heartbeat: newGauge("phoenix_worker_heartbeat_timestamp_seconds", "Unix time at which the worker last recorded its status in PostgreSQL (every few seconds while it runs)."),

		lost:         newShardCounter("phoenix_worker_redis_loss_detected_total", "Times Redis was found to have lost writes that PostgreSQL has, per shard."),
		repairs:      newShardCounter("phoenix_worker_redis_repairs_total", "Repairs of a shard's shopper sets and live counts from PostgreSQL's record."),
		repairErrors: newShardCounter("phoenix_worker_redis_repair_failures_total", "Repairs that failed and will be retried."),
		fixed:        newShardCounter("phoenix_worker_redis_shoppers_repaired_total", "Shoppers whose Redis set a repair rewrote from PostgreSQL."),
	}
	m.maxBacklog.Set(float64(maxBacklog))
	reg.MustRegister(m.batchSize, m.batchDuration, m.synced, m.replayed, m.parked, m.conflicts, m.backlog, m.shardBacklog, m.maxBacklog, m.lag, m.others, m.deleted, m.heartbeat,
		m.lost, m.repairs, m.repairErrors, m.fixed)
	return m
}

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
}

// newShardCounter is a counter with one series per shard.
func newShardCounter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"shard"})
}

// batch records one committed and acknowledged batch; m may be nil.
func (m *Metrics) batch(events, applied int, d, lag time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(events))
	m.batchDuration.Observe(d.Seconds())
	m.synced.Add(float64(applied))
	m.replayed.Add(float64(events - applied))
	m.lag.Set(lag.Seconds())
}

// parkedEntries counts malformed entries moved aside; m may be nil.
func (m *Metrics) parkedEntries(n int) {
	if m != nil && n > 0 {
		m.parked.Add(float64(n))
	}
}

// conflict counts an event parked by PostgreSQL; m may be nil.
func (m *Metrics) conflict(reason string) {
	if m != nil {
		m.conflicts.WithLabelValues(reason).Inc()
	}
}

// status records the backlog (in all and per shard) and lag as the status
// record reads them.
func (m *Metrics) status(shards []store.Backlog, lag time.Duration) {
	if m != nil {
		m.backlog.Set(float64(store.SumBacklogs(shards).Total()))
		for i, b := range shards {
			m.shardBacklog.WithLabelValues(strconv.Itoa(i)).Set(float64(b.Total()))
		}
		m.lag.Set(lag.Seconds())
	}
}

// recorded notes that the status was written to PostgreSQL at t; m may be
// nil.
func (m *Metrics) recorded(t time.Time) {
	if m != nil {
		m.heartbeat.Set(float64(t.UnixNano()) / 1e9)
	}
}

// otherGroups records how many foreign groups the trim saw; m may be nil.
func (m *Metrics) otherGroups(n int) {
	if m != nil {
		m.others.Set(float64(n))
	}
}

// consumersDeleted counts idle consumers deleted; m may be nil.
func (m *Metrics) consumersDeleted(n int) {
	if m != nil {
		m.deleted.Add(float64(n))
	}
}

// lossDetected counts a shard found to have lost writes; m may be nil.
func (m *Metrics) lossDetected(shard int) {
	if m != nil {
		m.lost.WithLabelValues(strconv.Itoa(shard)).Inc()
	}
}

// repaired counts a finished repair and the shoppers it fixed; m may be nil.
func (m *Metrics) repaired(shard, shoppers int) {
	if m != nil {
		m.repairs.WithLabelValues(strconv.Itoa(shard)).Inc()
		m.fixed.WithLabelValues(strconv.Itoa(shard)).Add(float64(shoppers))
	}
}

// repairFailed counts a failed repair; m may be nil.
func (m *Metrics) repairFailed(shard int) {
	if m != nil {
		m.repairErrors.WithLabelValues(strconv.Itoa(shard)).Inc()
	}
}
