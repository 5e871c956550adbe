package worker

import (
	"context"

	"phoenix/store"
)

// highlight rewrites the shop's highlights in Redis every HighlightEvery
// until ctx is done, beside the batch loop (see store/highlights.go: one
// worker of all runs each round). It reads PostgreSQL's record, so it
// runs while the workers are paused by a demo control too: a pause stops
// new events, not the view of those already applied. A failed round is
// logged; the next one tries again.
func (w *Sync) highlight(ctx context.Context) {
	failed := false
	store.Every(ctx, w.HighlightEvery, func(ctx context.Context) {
		hctx, cancel := context.WithTimeout(ctx, batchTimeout)
		defer cancel()
		r, err := store.RefreshHighlights(hctx, w.Likes, w.Stats, w.HighlightEvery)
		switch {
		case err != nil && !failed:
			w.Log.Warn("highlights not refreshed; retrying each round", "err", err)
		case err == nil && failed:
			w.Log.Info("highlights refreshed again")
		case err == nil && !r.Skipped:
			w.Log.Debug("highlights refreshed", "most_liked", len(r.Highlights.MostLiked),
				"trending", len(r.Highlights.Trending), "also_liked", r.AlsoLiked)
		}
		failed = err != nil
	})
}
