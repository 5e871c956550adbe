package worker

import (
	"context"
	"sync/atomic"
	"time"

	"phoenix/store"
)

// DefaultReportEvery is how often a worker reports the replicas and relays
// the demo controls.
const DefaultReportEvery = 2 * time.Second

// reportTimeout bounds one report's calls.
const reportTimeout = 5 * time.Second

// counters are what the batch loop tells the report loop, without locks.
type counters struct {
	read, applied, lagMS atomic.Int64
}

// report runs beside the batch loop, every ReportEvery until ctx is done,
// so that a slow PostgreSQL or Redis delays the heartbeats, never a batch.
func (w *Sync) report(ctx context.Context) {
	store.Every(ctx, w.ReportEvery, func(ctx context.Context) {
		rctx, cancel := context.WithTimeout(ctx, reportTimeout)
		defer cancel()
		w.reportOnce(store.WithoutFaults(rctx))
	})
}

// reportOnce carries the heartbeats shop → Redis → worker → PostgreSQL and
// the controls back the other way: PostgreSQL → worker (which applies its
// own) → Redis → shops. Each step is best effort; the next report tries
// again, and the admin greys out whatever stops arriving.
func (w *Sync) reportOnce(ctx context.Context) {
	beat := store.Beat{Role: store.RoleWorker, Name: w.Consumer, Version: w.Version, At: w.now(),
		Counts: map[string]int64{store.CountRead: w.count.read.Load(), store.CountApplied: w.count.applied.Load()},
		LagMS:  w.count.lagMS.Load()}
	beats, err := w.Likes.ShopBeats(ctx)
	if err != nil {
		w.Log.Debug("read shop heartbeats failed", "err", err)
	}
	if shards, err := w.Likes.GroupBacklogs(ctx, w.Group); err == nil {
		for _, b := range shards {
			beat.Backlog = append(beat.Backlog, b.Total()) // one entry per shard
		}
		if store.SumBacklogs(shards).Total() == 0 {
			beat.LagMS = 0
		}
	}
	if err := w.Stats.RecordBeats(ctx, append(beats, beat)); err != nil {
		w.Log.Debug("record heartbeats failed", "err", err)
	}
	controls, err := w.Stats.ActiveControls(ctx)
	if err != nil {
		w.Log.Debug("read controls failed", "err", err)
		return // keep the controls in hand; each ends at its deadline anyway
	}
	w.Faults.Set(controls)
	if err := w.Likes.PublishControls(ctx, controls); err != nil {
		w.Log.Debug("publish controls failed", "err", err)
	}
}
