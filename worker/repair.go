package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"phoenix/store"
)

// DefaultRepairCheckEvery is how often each shard is checked for lost
// writes: a read of one PostgreSQL row and one Redis round trip.
const DefaultRepairCheckEvery = time.Second

// watch checks every shard each RepairCheckEvery until ctx is done, and
// repairs a shard whose Redis lost writes that PostgreSQL has. Several
// workers may notice the same loss; the repair lock lets one repair.
func (w *Sync) watch(ctx context.Context) {
	prev := map[int]store.StreamID{}
	for sleep(ctx, w.RepairCheckEvery) {
		for shard := range w.Likes.Shards() {
			prev[shard] = w.checkShard(ctx, shard, prev[shard])
		}
	}
}

// checkShard checks one shard against prev (PostgreSQL's mark one check
// ago), repairs it if it lost writes, and returns the mark to compare with
// next time.
func (w *Sync) checkShard(ctx context.Context, shard int, prev store.StreamID) store.StreamID {
	cctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	c, err := store.CheckShard(cctx, w.Likes, w.Stats, w.Group, shard, prev)
	if err != nil {
		w.Log.Debug("loss check failed", "shard", shard, "err", err)
		return prev
	}
	if c.Lost == "" || c.Repairing {
		return c.Mark
	}
	w.Log.Error("redis lost writes that postgres has; repairing from postgres", "shard", shard, "reason", c.Lost,
		"postgres_mark", c.Mark.String(), "synced_mark", c.Synced.String(), "stream_last_id", c.LastGenerated.String())
	w.Metrics.lossDetected(shard)
	w.repair(ctx, shard, c.Lost)
	return c.Mark
}

// repair repairs shard from PostgreSQL's record and says what it did. It
// reports whether the repair ran to the end: false when it failed or
// another process holds the shard's repair lock.
func (w *Sync) repair(ctx context.Context, shard int, reason string) bool {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*batchTimeout)
	defer cancel()
	r, err := store.RepairShard(rctx, w.Likes, w.Stats, w.Group, shard, reason, "worker "+w.Consumer, false)
	switch {
	case errors.Is(err, store.ErrRepairLocked):
		w.Log.Info("shard repaired by another process", "shard", shard)
		return false
	case err != nil:
		w.Log.Error("repair failed; will retry", "shard", shard, "err", err)
		w.Metrics.repairFailed(shard)
		return false
	}
	w.Log.Warn("redis repaired from postgres", "shard", shard, "drained", r.Drained,
		"shoppers_fixed", len(r.ShoppersFixed), "products_recounted", len(r.ProductsRecounted),
		"took", r.Finished.Sub(r.Started).String())
	w.Metrics.repaired(shard, len(r.ShoppersFixed))
	return true
}

// lostInFlight repairs shard after this worker committed a batch that
// changed the record but whose entries the group no longer held, and the
// shard's repair count moved since the batch was read: Redis lost the
// stream (or a repair rebuilt it) while the batch was in flight,
// so a repair that read the record before this commit left the batch's
// changes out of Redis. The repair under way elsewhere may be that one, so
// this waits for the lock and repairs again (a few tries: after that the
// loss check is the safety net).
func (w *Sync) lostInFlight(ctx context.Context, shard int) {
	const reason = "a batch committed after its stream entries were lost"
	w.Log.Error("redis lost a batch's entries while it was applied; repairing from postgres", "shard", shard)
	w.Metrics.lossDetected(shard)
	wait := backoffMin
	for range 8 {
		if w.repair(ctx, shard, reason) || !sleep(ctx, wait) {
			return
		}
		wait = min(2*wait, backoffMax)
	}
}

// repairedSince reports whether shard was repaired, or lost its repair
// count with its data, since a batch read count (or whether it cannot
// tell).
func (w *Sync) repairedSince(ctx context.Context, shard *store.Likes, count string) bool {
	cctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	now, err := shard.Repairs(cctx)
	return err != nil || now != count
}

// recheck checks shard for lost writes at once, against PostgreSQL's
// current mark (the reader calls it when Redis answers again after
// failing). A batch in flight elsewhere is not taken for a loss: its
// entries are still in the stream.
func (w *Sync) recheck(ctx context.Context, shard int) {
	mctx, cancel := context.WithTimeout(ctx, batchTimeout)
	mark, ok, err := w.Stats.StreamMark(mctx, shard)
	cancel()
	if err != nil || !ok {
		return
	}
	w.checkShard(ctx, shard, mark)
}

// ownMarks holds the highest synced mark a worker wrote per shard.
type ownMarks struct {
	mu  sync.Mutex
	ids map[int]store.StreamID
}

func (m *ownMarks) raise(shard int, id store.StreamID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ids == nil {
		m.ids = map[int]store.StreamID{}
	}
	if id.Compare(m.ids[shard]) > 0 {
		m.ids[shard] = id
	}
}

func (m *ownMarks) get(shard int) store.StreamID {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[shard]
}

// checkOwnMark repairs shard when its synced mark in Redis is below one
// this worker wrote and Redis acknowledged: Redis lost that write (a lost
// append-only tail, an asynchronous failover), and with it whatever came
// before it but after the rollback point. Unlike a comparison with
// PostgreSQL's mark, this one cannot mistake another worker's batch in
// flight (committed, not yet marked) for a loss.
func (w *Sync) checkOwnMark(ctx context.Context, shard int) {
	own := w.ownMarks.get(shard)
	if own == (store.StreamID{}) {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, batchTimeout)
	synced, err := w.Likes.SyncedMark(cctx, shard)
	cancel()
	if err != nil || synced.Compare(own) >= 0 {
		return
	}
	reason := "synced mark " + synced.String() + " behind " + own.String() + ", which this worker wrote"
	w.Log.Error("redis lost writes that postgres has; repairing from postgres", "shard", shard, "reason", reason)
	w.Metrics.lossDetected(shard)
	w.repair(ctx, shard, reason)
}

// markSynced raises the shard's synced mark to the batch's last event, now
// that it is committed and acknowledged. A failure only delays the mark;
// the loss check compares with an older PostgreSQL mark, and the next batch
// raises it.
func (w *Sync) markSynced(ctx context.Context, events []store.Event) {
	var last store.StreamID
	shard := 0
	for _, e := range events {
		id, err := store.ParseStreamID(e.ID)
		if err == nil && id.Compare(last) > 0 {
			last, shard = id, e.Shard
		}
	}
	if err := w.retry(ctx, "mark synced", func(ctx context.Context) error {
		return w.Likes.MarkSynced(ctx, shard, last.String())
	}); err != nil {
		w.Log.Debug("mark synced skipped", "err", err)
		return
	}
	w.ownMarks.raise(shard, last)
}
