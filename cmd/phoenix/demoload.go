package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"phoenix/loadgen"
	"phoenix/store"
)

// demoLoadEvery is how often an admin looks for the load it owns and
// records its progress.
const demoLoadEvery = time.Second

// demoLoad generates the simulated shoppers that a demo control set on
// this admin replica asks for: the control names its replica (Owner), so
// one load has one generator however many admins run, and any admin can
// stop it by ending the control. Progress goes into the control's row,
// for every admin's flow view.
type demoLoad struct {
	stats   *store.Stats
	shopURL string
	owner   string
	log     *slog.Logger
}

func (d *demoLoad) run(ctx context.Context) {
	var (
		load         *loadgen.Load
		id           int64
		sent, failed atomic.Int64
	)
	stop := func() {
		if load == nil {
			return
		}
		s := load.Stop()
		d.log.Info("simulated shoppers stopped", "control", id, "requests", s.Requests, "errors", len(s.Errors))
		load, id = nil, 0
	}
	defer stop()
	store.Every(ctx, demoLoadEvery, func(ctx context.Context) {
		tctx, cancel := context.WithTimeout(ctx, demoLoadEvery)
		defer cancel()
		cs, err := d.stats.ActiveControls(tctx)
		if err != nil {
			// A load in hand keeps to its own deadline meanwhile.
			d.log.Debug("read demo controls failed", "err", err)
			return
		}
		var want *store.Control
		for i, c := range cs {
			if c.Effect == store.EffectLoad && c.Owner == d.owner {
				want = &cs[i]
			}
		}
		if load != nil && (want == nil || want.ID != id) {
			stop() // ended from some admin, or replaced by a newer load
		}
		if load == nil && want != nil {
			products, err := d.stats.ProductIDs(tctx)
			if err != nil || len(products) == 0 {
				d.log.Warn("simulated shoppers wait for the catalog", "control", want.ID, "err", err)
				return
			}
			sent.Store(0)
			failed.Store(0)
			id = want.ID
			load = loadgen.Start(ctx, loadgen.Config{
				URL: d.shopURL, Products: products, Shoppers: want.Shoppers, Rate: want.PerSecond,
				Duration: time.Until(want.Until), Browse: 1 - want.Rate, Timeout: 5 * time.Second,
				Progress: func(p loadgen.Progress) { sent.Store(p.Requests); failed.Store(p.Errors) },
			})
			d.log.Info("simulated shoppers started", "control", id, "per_second", want.PerSecond,
				"shoppers", want.Shoppers, "until", want.Until, "shop", d.shopURL)
		}
		if load != nil {
			if err := d.stats.LoadProgress(tctx, id, sent.Load(), failed.Load()); err != nil {
				d.log.Debug("record load progress failed", "err", err)
			}
		}
	})
}
