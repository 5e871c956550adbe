package main

import (
	"context"
	"testing"
	"time"

	"phoenix/store"
)

// TestFault_DemoControls injects, under load, errors into every PostgreSQL
// write of the worker (a child process) and then into half the shop's
// Redis calls, each for a few seconds set in the controls table as the
// admin's demo page sets them. The controls reach the worker and, through
// it, the shop; injected errors are real failures, so the shop answers
// "could not save" for what it did not save, and phoenix audit is exact.
func TestFault_DemoControls(t *testing.T) {
	ctx := context.Background()
	r := newFaultRig(t, nil)
	// Long enough for both faults on a loaded machine; the shop's fault
	// lasts until just before the load ends, so Likes meet it.
	const loadFor = 20 * time.Second
	loadEnd := time.Now().Add(loadFor)
	run := r.load(t, loadFor)
	r.waitStored(t, 0)

	// PostgreSQL errors: nothing is stored while they last, the backlog grows.
	stored := r.stored()
	if _, err := r.stats.SetControl(ctx, store.Control{Target: store.TargetWorkerPostgres, Effect: store.EffectError, Rate: 1,
		Until: time.Now().Add(4 * time.Second), SetBy: "test", RequestID: t.Name()}); err != nil {
		t.Fatal(err)
	}
	before := backlog(t, r.likes)
	r.holdDown(t, 3*time.Second, func() bool { return backlog(t, r.likes) > before+100 })
	if got := r.stored(); got > stored+int64(2*faultRate) { // what was in flight when the control arrived
		t.Errorf("PostgreSQL took %d events while every write failed", got-stored)
	}
	// It ends by itself; the backlog drains.
	r.waitStored(t, r.stored())

	// Shop Redis errors, on half the calls, handed on through the worker.
	until := loadEnd.Add(-time.Second)
	if time.Until(until) < 3*time.Second {
		t.Fatalf("the PostgreSQL fault and its drain took the load's time: %s left", time.Until(until))
	}
	if _, err := r.stats.SetControl(ctx, store.Control{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 0.5,
		Until: until, SetBy: "test", RequestID: t.Name()}); err != nil {
		t.Fatal(err)
	}
	sum := <-run
	if sum.Errors["status 503"] == 0 {
		t.Errorf("no Like answered 503 while half the shop's Redis calls failed: %v", sum.Errors)
	}
	t.Logf("load: %d requests, %d likes and %d unlikes saved, errors %v", sum.Requests, sum.ConfirmedLikes, sum.ConfirmedUnlikes, sum.Errors)
	clean := r.recovered(t)
	r.assertHonest(t, sum, clean)
}
