package main

import (
	"context"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// TestDemo_SimulatedShoppers starts phoenix all with the demo controls and
// sets a load of simulated shoppers as the demo page does: the admin that
// owns it sends them to the shop (their Likes reach PostgreSQL), records
// its progress in the control, and stops when the control is ended.
func TestDemo_SimulatedShoppers(t *testing.T) {
	vars, _ := sharedRedis(t)
	vars["PHOENIX_DATABASE_URL"] = testkit.Postgres(t)
	vars["PHOENIX_ADMIN_PASSWORD"] = adminTestPassword
	vars["PHOENIX_DEMO_CONTROLS"] = "true"
	vars["PHOENIX_INSTANCE"] = "demo-1"
	vars["PHOENIX_WORKER_BLOCK"] = "50ms"
	p := startPhoenix(t, "all", vars)
	ctx := context.Background()
	stats, err := store.OpenStats(ctx, vars["PHOENIX_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	events := func() int64 {
		v, err := stats.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v.Totals.Events
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s\n%s", what, d, p.logs.String())
			}
		}
	}
	// The worker writes the catalog the simulated shoppers choose from.
	waitFor("catalog synced", 20*time.Second, func() bool { ids, err := stats.ProductIDs(ctx); return err == nil && len(ids) > 0 })

	ctl, err := stats.SetControl(ctx, store.Control{Target: store.TargetShoppers, Effect: store.EffectLoad, Rate: 1,
		PerSecond: 50, Shoppers: 5, Owner: "demo-1", Until: time.Now().Add(time.Minute), SetBy: "test", RequestID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	progress := func() store.Control {
		cs, err := stats.ActiveControls(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.ID == ctl.ID {
				return c
			}
		}
		return store.Control{}
	}
	waitFor("progress recorded", 20*time.Second, func() bool { return progress().Sent >= 50 })
	waitFor("the shoppers' Likes in PostgreSQL", 20*time.Second, func() bool { return events() >= 20 })
	if c := progress(); c.Failed > c.Sent/10 {
		t.Errorf("%d of %d simulated requests failed", c.Failed, c.Sent)
	}

	// Ended from any admin: the owner stops sending within its poll.
	if _, err := stats.EndControl(ctx, ctl.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * demoLoadEvery) // the owner's poll, then the worker drains
	before := events()
	time.Sleep(2 * time.Second)
	if after := events(); after != before {
		t.Errorf("%d events arrived after the load was stopped", after-before)
	}
}
