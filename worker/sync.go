// Package worker moves Like events from the Redis stream into PostgreSQL.
package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"phoenix/store"
)

// Defaults for the zero values of Sync's settings.
const (
	DefaultGroup = "phoenix-workers"
	// DefaultBatchSize: a batch costs PostgreSQL a few milliseconds over
	// its events (planning, the counters' rows, the commit), and 5,000 a
	// batch drained a million events 20-35 % faster than 1,000 in
	// BenchmarkSync_Drain. Under light load a batch is what arrived since
	// the last one, so freshness does not change.
	DefaultBatchSize = 5000
	DefaultBlock     = time.Second
	DefaultClaimIdle = 30 * time.Second
	// Trimming often keeps the stream near its unacknowledged part, which
	// the shop's back-pressure reads as XLEN: a second of Likes at most.
	DefaultTrimEvery      = time.Second
	DefaultHeartbeatEvery = 5 * time.Second
	DefaultConsumerIdle   = time.Hour
	// DefaultMaintainEvery: the event history's partitions are daily, so
	// an hourly look creates each in time and drops each within the hour.
	DefaultMaintainEvery = time.Hour
)

// GCPercent is the worker process's GC target (GOGC) unless the operator
// sets one. Its live heap is a batch or two of events, and it allocates
// fast (go-redis's entries, the batch's arrays): at Go's default of 100,
// garbage collection took about a third of its CPU per event in
// BenchmarkSync_Drain (BENCHMARKS.md).
const GCPercent = 400

// Back-off after a failed Redis or PostgreSQL call: doubling from
// backoffMin to backoffMax, so a long outage costs a call every few seconds.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// statusEvery is how often a busy worker records its status.
const statusEvery = time.Second

// batchTimeout bounds each store call made for a batch. Those calls do not
// use the Run context, so that a shutdown lets the current batch finish.
const batchTimeout = 30 * time.Second

// Sync reads every shard's event stream through a consumer group (one per
// shard stream, same name) and writes each batch to PostgreSQL in one
// transaction, acknowledging the entries only after the commit. Events are
// keyed by their shard and stream id in PostgreSQL, so an entry delivered
// twice (after a crash between commit and acknowledgement, or claimed from
// a consumer that was only slow) is counted once. Several Syncs with
// different Consumer names share the work. A Sync runs one Run at a time.
//
// Every worker reads every shard rather than owning some: the consumer
// groups already share each stream's entries among the workers that read
// it, so adding, removing or crashing a worker needs no reassignment (its
// pending entries are claimed as before), and the load balances itself.
// Each shard gets its own reader: on Redis Cluster the shards' streams sit
// in different slots, which one XREADGROUP cannot read together.
type Sync struct {
	Likes *store.Likes
	Stats *store.Stats
	Log   *slog.Logger

	Consumer  string        // this worker's name in the group; unique per process
	Group     string        // the consumer group (DefaultGroup)
	BatchSize int           // entries per read and per transaction (DefaultBatchSize)
	Block     time.Duration // how long a read waits for new entries (DefaultBlock)
	// ClaimIdle is how long an entry may stay pending with another consumer
	// before this one takes it over (DefaultClaimIdle). The scan for such
	// entries runs at start and every ClaimIdle/2.
	ClaimIdle time.Duration
	// TrimEvery is how often acknowledged entries are trimmed (DefaultTrimEvery).
	TrimEvery time.Duration
	// HeartbeatEvery is how often an idle worker records its status
	// (DefaultHeartbeatEvery).
	HeartbeatEvery time.Duration
	// RepairCheckEvery is how often the worker checks each shard for
	// writes Redis lost that PostgreSQL has, and repairs it
	// (DefaultRepairCheckEvery; see repair.go).
	RepairCheckEvery time.Duration
	// ConsumerIdle is how long another consumer of the group may go without
	// reading, with nothing pending, before the trim step deletes it
	// (DefaultConsumerIdle). A live worker reads every Block.
	ConsumerIdle time.Duration
	// Retention is how long the event history (like_events) is kept
	// (PHOENIX_EVENT_RETENTION); 0 keeps all of it. The like state and the
	// aggregates are kept whatever it is.
	Retention time.Duration
	// MaintainEvery is how often the history's partitions are created
	// ahead and dropped past Retention (DefaultMaintainEvery); one worker
	// at a time does it.
	MaintainEvery time.Duration
	// MaxBacklog is the shop's backlog bound (PHOENIX_MAX_BACKLOG), recorded
	// with the status so that the admin can show the backlog against it.
	MaxBacklog int64

	// Metrics receives batch sizes and durations, events synced, backlog
	// and lag; nil: none.
	Metrics *Metrics
	// Tracer, when set, gives each batch a span (see traceBatch); nil: no
	// tracing at all.
	Tracer trace.TracerProvider

	// Version is the build's version, reported with the heartbeat.
	Version string
	// ReportEvery is how often the heartbeats are reported and the demo
	// controls relayed (DefaultReportEvery).
	ReportEvery time.Duration
	// HighlightEvery is how often the shop's highlights are rewritten in
	// Redis from PostgreSQL (store.HighlightEvery; see highlights.go).
	HighlightEvery time.Duration
	// Faults holds the demo controls in force; nil: NewFaults (filled by
	// the report loop).
	Faults *store.Faults

	// Products, when set, is written to the products table at start, so
	// the admin sees the shop's catalog.
	Products []store.Product

	// now is the clock (time.Now when nil).
	now func() time.Time
	// afterCommit, when set, runs after a batch is committed and before it
	// is acknowledged; an error stops Run as a crash at that point would.
	// Tests use it to inject that fault.
	afterCommit func(store.Batch) error

	// progress is what happened since the status was last recorded.
	progress struct {
		mu          sync.Mutex
		synced      int64 // events applied
		lastBatchAt time.Time
		lag         time.Duration
		lastStatus  time.Time
	}
	// recording is held while a status record is written.
	recording sync.Mutex
	// count is shared with the report loop.
	count counters
	// ownMarks is, per shard, the highest synced mark this worker wrote
	// (markSynced; the readers compare).
	ownMarks ownMarks
	// others is the other groups the last trim saw, to log a change once.
	others string
}

func (w *Sync) defaults() {
	w.Group = cmp.Or(w.Group, DefaultGroup)
	w.BatchSize = positiveOr(w.BatchSize, DefaultBatchSize)
	w.Block = positiveOr(w.Block, DefaultBlock)
	w.ClaimIdle = positiveOr(w.ClaimIdle, DefaultClaimIdle)
	w.TrimEvery = positiveOr(w.TrimEvery, DefaultTrimEvery)
	w.HeartbeatEvery = positiveOr(w.HeartbeatEvery, DefaultHeartbeatEvery)
	w.ReportEvery = positiveOr(w.ReportEvery, DefaultReportEvery)
	w.HighlightEvery = positiveOr(w.HighlightEvery, store.HighlightEvery)
	w.RepairCheckEvery = positiveOr(w.RepairCheckEvery, DefaultRepairCheckEvery)
	w.MaintainEvery = positiveOr(w.MaintainEvery, DefaultMaintainEvery)
	w.ConsumerIdle = positiveOr(w.ConsumerIdle, DefaultConsumerIdle)
	if w.Faults == nil {
		w.Faults = store.NewFaults()
	}
	if w.now == nil {
		w.now = time.Now
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
}

// positiveOr returns v, or def when v is zero or negative (unset).
func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Run syncs until ctx is done, then finishes the batch in hand and returns
// nil. Failures of Redis or PostgreSQL are logged and retried with back-off;
// Run returns an error only for a fault injected by tests.
func (w *Sync) Run(ctx context.Context) error {
	if w.Consumer == "" {
		return errors.New("worker: no consumer name")
	}
	w.defaults()
	w.Log.Info("worker starting", "consumer", w.Consumer, "group", w.Group, "batch", w.BatchSize)
	var reporter sync.WaitGroup
	defer reporter.Wait()
	rctx, stopReport := context.WithCancel(ctx)
	defer stopReport() // before reporter.Wait, as defers run last first
	reporter.Go(func() { w.report(rctx) })
	reporter.Go(func() { w.watch(rctx) })
	reporter.Go(func() { w.highlight(rctx) })
	if err := w.retry(ctx, "prepare", w.prepare); err != nil {
		return nil // ctx done
	}
	if err := w.eachShard(func(shard *store.Likes) error { return w.drainOwn(ctx, shard) }); err != nil {
		return err
	}
	// Each shard has a reader goroutine, which reads the next batch while
	// the shard's applier writes the current one to PostgreSQL, and the
	// shards apply side by side (ApplyShard): one worker uses as many
	// PostgreSQL backends as there are shards. The channels are unbuffered,
	// so at most one batch per shard is read ahead; a reader hands over
	// every batch it read and closes its channel once it stopped with ctx,
	// and its applier processes everything it receives: no entry read is
	// left behind at shutdown.
	readCtx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	var crashed error
	var crash sync.Once
	var appliers sync.WaitGroup
	for i := range w.Likes.Shards() {
		shard, batches := w.Likes.Shard(i), make(chan store.Batch)
		appliers.Go(func() {
			go func() {
				defer close(batches)
				w.read(readCtx, shard, batches)
			}()
			if err := w.applyShard(ctx, shard, batches); err != nil {
				// Only an injected crash: what was read ahead stays
				// pending, as it would in a real crash.
				crash.Do(func() { crashed = err })
				stopReaders()
				for range batches {
				}
			}
		})
	}
	stopped := make(chan struct{})
	go func() {
		appliers.Wait()
		close(stopped)
	}()
	w.housekeep(ctx, stopped)
	if crashed != nil {
		return crashed
	}
	w.Log.Info("worker stopped", "consumer", w.Consumer)
	return nil
}

// applyShard processes the batches of one shard's reader until it closes
// them, and claims the shard's stale entries every ClaimIdle/2.
func (w *Sync) applyShard(ctx context.Context, shard *store.Likes, batches <-chan store.Batch) error {
	nextClaim := time.Time{}
	for b := range batches {
		if b.Len() > 0 {
			if err := w.process(ctx, b); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			continue // finish what the reader hands over, start nothing new
		}
		if !w.now().Before(nextClaim) {
			if err := w.claimStale(ctx, shard); err != nil {
				return err
			}
			nextClaim = w.now().Add(w.ClaimIdle / 2)
		}
	}
	return nil
}

// housekeep records the status of an idle worker, trims the streams and
// maintains the event history while the appliers run, every Block, until
// stopped is closed.
func (w *Sync) housekeep(ctx context.Context, stopped <-chan struct{}) {
	tick := time.NewTicker(w.Block)
	defer tick.Stop()
	nextTrim, nextMaintain := w.now().Add(w.TrimEvery), w.now().Add(w.MaintainEvery)
	for {
		select {
		case <-stopped:
			return
		case <-tick.C:
		}
		if ctx.Err() != nil {
			continue
		}
		w.heartbeat(ctx)
		now := w.now()
		if !now.Before(nextTrim) {
			w.trim(ctx)
			nextTrim = w.now().Add(w.TrimEvery)
		}
		if !now.Before(nextMaintain) {
			w.maintain(ctx)
			nextMaintain = w.now().Add(w.MaintainEvery)
		}
	}
}

// read reads new entries of shard's stream into out until ctx is done.
func (w *Sync) read(ctx context.Context, shard *store.Likes, out chan<- store.Batch) {
	wait := backoffMin
	failed := false
	dialed := int64(-1) // the client's dials at the last check: none yet
	for ctx.Err() == nil {
		if w.Faults.Paused() {
			// Paused by a demo control: read nothing, so the backlog
			// grows; an empty batch lets the loop record its status.
			if !sleep(ctx, w.Block) {
				return
			}
			out <- store.Batch{Shard: shard.ShardIndex()}
			continue
		}
		// The read does not use ctx: a blocked read cut short could leave
		// entries delivered to us that we never see (pending until
		// claimed). Block bounds how long a shutdown waits for it instead.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.Block+batchTimeout)
		b, err := shard.ReadNew(rctx, w.Group, w.Consumer, w.BatchSize, w.Block)
		cancel()
		if err != nil {
			w.Log.Warn("read failed", "shard", shard.ShardIndex(), "err", err, "retry_in", wait)
			if !sleep(ctx, wait) {
				return
			}
			wait = min(2*wait, backoffMax)
			// The stream or the group may have been deleted (FLUSHALL, a
			// new Redis); recreating the group lets the next read work.
			gctx, cancel := context.WithTimeout(ctx, batchTimeout)
			_ = shard.EnsureGroup(gctx, w.Group)
			cancel()
			failed = true
		} else {
			wait = backoffMin
			if failed {
				// Redis answers again, perhaps a new or rolled-back one:
				// check for lost writes before this batch is acknowledged
				// and raises the synced mark past the evidence.
				w.recheck(ctx, shard.ShardIndex())
				failed = false
			}
			if n := shard.Dials(); n != dialed {
				// A connection dialed since: Redis may have restarted or
				// failed over with no command failing (go-redis retries on
				// a fresh connection by itself).
				w.checkOwnMark(ctx, shard.ShardIndex())
				dialed = n
			}
		}
		// Sent even when ctx is done: the batch must be processed.
		out <- b
	}
}

// prepare readies PostgreSQL and Redis: catalog, event partitions, each
// shard's consumer group. The schema is cmd's to apply before Run.
func (w *Sync) prepare(ctx context.Context) error {
	if w.Products != nil {
		if err := w.Stats.SyncProducts(ctx, w.Products); err != nil {
			return err
		}
	}
	if err := w.Stats.RecordShards(ctx, w.Likes.Shards()); err != nil {
		return err
	}
	w.maintain(ctx)
	return w.eachShard(func(shard *store.Likes) error { return shard.EnsureGroup(ctx, w.Group) })
}

// eachShard calls fn with every shard in turn, stopping at the first error.
func (w *Sync) eachShard(fn func(*store.Likes) error) error {
	for i := range w.Likes.Shards() {
		if err := fn(w.Likes.Shard(i)); err != nil {
			return err
		}
	}
	return nil
}

// drainOwn processes the entries still pending under this consumer's name
// on one shard, left by an earlier process with the same name that stopped
// mid-batch. Processed entries are acknowledged, so each read starts from
// the top.
func (w *Sync) drainOwn(ctx context.Context, shard *store.Likes) error {
	for ctx.Err() == nil {
		var b store.Batch
		err := w.retry(ctx, "read pending", func(ctx context.Context) error {
			var err error
			b, err = shard.ReadPending(ctx, w.Group, w.Consumer, "0", w.BatchSize)
			return err
		})
		if err != nil || b.Len() == 0 {
			return nil
		}
		if err := w.process(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// claimStale takes over and processes entries of one shard left pending
// too long by other consumers (presumably dead). Errors are logged; the next
// scan tries again.
func (w *Sync) claimStale(ctx context.Context, shard *store.Likes) error {
	start := "0-0"
	for ctx.Err() == nil {
		b, next, err := shard.Claim(ctx, w.Group, w.Consumer, w.ClaimIdle, start, w.BatchSize)
		if err != nil {
			w.Log.Warn("claim failed", "shard", shard.ShardIndex(), "err", err)
			return nil
		}
		if b.Len() > 0 {
			w.Log.Info("claimed stale entries", "shard", shard.ShardIndex(), "count", b.Len())
			if err := w.process(ctx, b); err != nil {
				return err
			}
		}
		if next == "0-0" || next == "" {
			return nil
		}
		start = next
	}
	return nil
}

// process parks the malformed entries, applies the events in one
// transaction and acknowledges them after the commit. If ctx is done while
// PostgreSQL or Redis is away, it gives up: the entries stay pending, and
// this or another worker processes them later.
func (w *Sync) process(ctx context.Context, b store.Batch) error {
	shard := w.Likes.Shard(b.Shard)
	w.count.read.Add(int64(b.Len()))
	for _, m := range b.Malformed {
		w.Log.Warn("malformed entry parked", "shard", b.Shard, "id", m.ID, "err", m.Err)
	}
	if err := w.retry(ctx, "dead-letter", func(ctx context.Context) error {
		return shard.DeadLetter(ctx, w.Group, b.Malformed)
	}); err != nil {
		return nil
	}
	w.Metrics.parkedEntries(len(b.Malformed))
	if len(b.Events) == 0 {
		return nil
	}
	start := w.now()
	ctx, end := w.traceBatch(ctx, b)
	defer end()
	var a store.Applied
	if err := w.retry(ctx, "apply", func(ctx context.Context) error {
		// A demo fault fails the write before it is made: the batch
		// stays pending and is retried, as after a real failure.
		if err := w.Faults.Inject(ctx, store.TargetWorkerPostgres); err != nil {
			return err
		}
		var err error
		a, err = w.Stats.ApplyShard(ctx, w.Likes.Shards(), b.Events)
		return err
	}); err != nil {
		return nil
	}
	applied := a.New
	w.parked(a.Conflicts)
	if w.afterCommit != nil {
		if err := w.afterCommit(b); err != nil {
			return err
		}
	}
	ids := make([]string, len(b.Events))
	for i, e := range b.Events {
		ids[i] = e.ID
	}
	acked := 0
	if err := w.retry(ctx, "ack", func(ctx context.Context) error {
		var err error
		acked, err = shard.Ack(ctx, w.Group, ids)
		return err
	}); err != nil {
		return nil
	}
	if acked < len(ids) && a.Changed > 0 {
		if w.repairedSince(ctx, shard, b.Repairs) {
			w.lostInFlight(ctx, b.Shard)
		} else {
			// Claimed by another worker while this one retried the
			// batch (PostgreSQL away longer than ClaimIdle), and
			// acknowledged there: Redis holds every entry's write.
			w.Log.Info("entries acknowledged by another worker", "shard", b.Shard, "count", len(ids)-acked)
		}
	}
	w.markSynced(ctx, b.Events)
	lag := w.now().Sub(latest(b.Events))
	w.count.applied.Add(int64(applied))
	w.count.lagMS.Store(lag.Milliseconds())
	w.Metrics.batch(len(b.Events), applied, w.now().Sub(start), lag)
	if applied < len(b.Events) {
		w.Log.Info("replayed events ignored", "count", len(b.Events)-applied)
	}
	w.progress.mu.Lock()
	w.progress.synced += int64(applied)
	w.progress.lastBatchAt, w.progress.lag = w.now(), lag
	// A busy worker records its status at most every statusEvery: a
	// write per batch would add a commit (and a disk flush) to each one.
	due := w.now().Sub(w.progress.lastStatus) >= statusEvery
	w.progress.mu.Unlock()
	if due {
		w.recordStatus(ctx)
	}
	return nil
}

// parked alerts on the events PostgreSQL parked instead of applying.
func (w *Sync) parked(conflicts []store.Conflict) {
	for _, c := range conflicts {
		e := c.Event
		attrs := []any{"reason", c.Reason, "shard", e.Shard, "id", e.ID, "product", e.ProductID, "action", e.Action, "at", e.At}
		if c.Stored != nil {
			attrs = append(attrs, "stored_product", c.Stored.ProductID, "stored_action", c.Stored.Action, "stored_at", c.Stored.At)
		}
		w.Log.Warn("event parked in event_conflicts", attrs...)
		w.Metrics.conflict(c.Reason)
	}
}

// maintain creates the event history's partitions ahead and drops those
// past Retention. It is best effort: a failure is logged and the next
// round tries again.
func (w *Sync) maintain(ctx context.Context) {
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	r, err := w.Stats.MaintainHistory(mctx, w.Retention)
	if err != nil {
		w.Log.Warn("maintain event history failed", "err", err)
		return
	}
	if r.Created > 0 || len(r.Dropped) > 0 {
		w.Log.Info("event history maintained", "created", r.Created, "dropped", r.Dropped, "kept_from", r.KeptFrom)
	}
}

// heartbeat records the status of an idle worker every HeartbeatEvery, and
// at once when it has just finished work (no batch for a Block), so the
// backlog shows as zero. A busy worker's batches record it (process).
func (w *Sync) heartbeat(ctx context.Context) {
	w.progress.mu.Lock()
	now := w.now()
	due := now.Sub(w.progress.lastStatus) >= w.HeartbeatEvery ||
		w.progress.synced > 0 && now.Sub(w.progress.lastBatchAt) >= w.Block
	w.progress.mu.Unlock()
	if due {
		w.recordStatus(ctx)
	}
}

// recordStatus writes this consumer's status row. It is best effort: a
// failure is logged and the counts carry over to the next record. One
// record is written at a time: a shard's applier that finds one being
// written leaves its progress to the next, instead of a second commit.
func (w *Sync) recordStatus(ctx context.Context) {
	if !w.recording.TryLock() {
		return
	}
	defer w.recording.Unlock()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	shards, err := w.Likes.GroupBacklogs(sctx, w.Group)
	if err != nil {
		w.Log.Warn("read backlog failed", "err", err)
		return
	}
	backlog := store.SumBacklogs(shards)
	w.progress.mu.Lock()
	if backlog.Total() == 0 {
		w.progress.lag = 0
	}
	st := store.WorkerReport{
		Consumer: w.Consumer, LastBatchAt: w.progress.lastBatchAt, Synced: w.progress.synced,
		Backlog: backlog.Total(), MaxBacklog: w.MaxBacklog, Lag: w.progress.lag,
	}
	w.progress.mu.Unlock()
	w.Metrics.status(shards, st.Lag)
	if err := w.Stats.RecordWorkerStatus(sctx, st); err != nil {
		w.Log.Warn("record status failed", "err", err)
		return
	}
	now := w.now()
	w.progress.mu.Lock()
	w.progress.synced -= st.Synced // what the appliers added meanwhile stays
	if w.progress.lastBatchAt.Equal(st.LastBatchAt) {
		w.progress.lastBatchAt = time.Time{}
	}
	w.progress.lastStatus = now
	w.progress.mu.Unlock()
	w.Metrics.recorded(now)
}

// trim removes the acknowledged history from every shard's stream, reports
// consumer groups other than its own (they pin nothing, but someone should
// remove them) and deletes consumers idle past ConsumerIdle.
func (w *Sync) trim(ctx context.Context) {
	var others []string
	for i := range w.Likes.Shards() {
		o, ok := w.trimShard(ctx, w.Likes.Shard(i))
		if !ok {
			return
		}
		others = append(others, o...)
	}
	slices.Sort(others)
	others = slices.Compact(others)
	w.Metrics.otherGroups(len(others))
	if others := strings.Join(others, ","); others != w.others {
		w.others = others
		if others != "" {
			w.Log.Warn("other consumer groups on the stream are not waited for by the trim; remove them with XGROUP DESTROY if unused",
				"groups", others, "group", w.Group)
		}
	}
}

// trimShard trims one shard's stream and deletes its idle consumers. It
// returns the other groups seen, and false when Redis failed.
func (w *Sync) trimShard(ctx context.Context, shard *store.Likes) ([]string, bool) {
	t, err := shard.TrimAcked(ctx, w.Group)
	if err != nil {
		w.Log.Warn("trim failed", "shard", shard.ShardIndex(), "err", err)
		return nil, false
	}
	if t.Removed > 0 {
		w.Log.Debug("trimmed stream", "shard", shard.ShardIndex(), "entries", t.Removed)
	}
	gone, err := shard.DeleteIdleConsumers(ctx, w.Group, w.Consumer, w.ConsumerIdle)
	if err != nil {
		w.Log.Warn("delete idle consumers failed", "shard", shard.ShardIndex(), "err", err)
		return t.Others, true
	}
	if len(gone) > 0 {
		w.Log.Info("deleted idle consumers", "shard", shard.ShardIndex(), "consumers", gone, "idle", w.ConsumerIdle.String())
		w.Metrics.consumersDeleted(len(gone))
	}
	return t.Others, true
}

// retry calls fn until it succeeds, backing off between failures. Each call
// gets its own timeout and is not cut short by ctx, so a shutdown lets the
// call in flight finish; ctx being done stops further attempts, and retry
// then returns ctx's error.
func (w *Sync) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	wait := backoffMin
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		err := fn(cctx)
		cancel()
		if err == nil {
			if attempt > 1 {
				w.Log.Info("recovered", "op", what, "attempts", attempt)
			}
			return nil
		}
		if attempt == 1 || attempt%10 == 0 {
			w.Log.Warn("retrying", "op", what, "attempt", attempt, "err", err)
		}
		if !sleep(ctx, wait) {
			w.Log.Warn("gave up at shutdown; entries stay pending", "op", what, "err", err)
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		wait = min(2*wait, backoffMax)
	}
}

// sleep waits for d or until ctx is done, reporting whether it slept fully.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// latest is the time of the newest event.
func latest(events []store.Event) time.Time {
	var t time.Time
	for _, e := range events {
		if e.At.After(t) {
			t = e.At
		}
	}
	return t
}
