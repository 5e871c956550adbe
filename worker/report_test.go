package worker

import (
	"context"
	"testing"
	"time"

	"phoenix/store"
)

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setControl records a control from the admin's side, in force for d.
func setControl(t *testing.T, e *env, target, effect string, rate float64, d time.Duration) store.Control {
	t.Helper()
	c, err := e.stats.SetControl(context.Background(), store.Control{Target: target, Effect: effect, Rate: rate,
		Until: time.Now().Add(d), SetBy: "test", RequestID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSync_Report(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	shop := store.Beat{Role: store.RoleShop, Name: "shop-1", Version: "v9", At: time.Now(), Counts: map[string]int64{store.CountLikes: 4}}
	if err := e.likes.ReportShop(ctx, shop); err != nil {
		t.Fatal(err)
	}
	n := clicks(t, e.likes, shoppers(10), 50)
	w := e.newSync(t, "w1")
	w.Version, w.ReportEvery = "v9", 50*time.Millisecond
	setControl(t, e, store.TargetShopRedis, store.EffectError, 0.5, time.Minute)
	start(t, w)
	waitDrained(t, e, n, 30*time.Second)

	// The shop's beat and the worker's own reach PostgreSQL, with the
	// worker's counters once it has applied everything.
	waitFor(t, 10*time.Second, "replicas recorded", func() bool {
		rs, err := e.stats.Replicas(ctx)
		if err != nil || len(rs) != 2 {
			return false
		}
		wr := rs[1]
		return rs[0].Name == "shop-1" && rs[0].Counts[store.CountLikes] == 4 &&
			wr.Name == "w1" && wr.Version == "v9" && wr.Counts[store.CountApplied] == n &&
			wr.Counts[store.CountRead] >= n && len(wr.Backlog) == 1 && wr.Backlog[0] == 0
	})
	// The controls go on to the shops through Redis.
	waitFor(t, 10*time.Second, "controls handed on", func() bool {
		cs, err := e.likes.Controls(ctx)
		return err == nil && len(cs) == 1 && cs[0].Target == store.TargetShopRedis && cs[0].Rate == 0.5
	})
}

func TestSync_Pause(t *testing.T) {
	e := newEnv(t)
	w := e.newSync(t, "w1")
	w.ReportEvery, w.Faults = 50*time.Millisecond, store.NewFaults()
	pause := setControl(t, e, store.TargetWorkers, store.EffectPause, 1, time.Minute)
	start(t, w)
	waitFor(t, 10*time.Second, "pause taken", w.Faults.Paused)
	time.Sleep(4 * w.Block) // the read in flight when the pause came ends
	n := clicks(t, e.likes, shoppers(10), 30)
	// Paused: nothing is read, so the backlog holds every event.
	time.Sleep(500 * time.Millisecond) // ten reads' worth of doing nothing
	if got := eventsStored(t, e.db); got != 0 {
		t.Fatalf("paused worker stored %d events", got)
	}
	if b, err := e.likes.GroupBacklog(context.Background(), DefaultGroup); err != nil || b.Total() != n {
		t.Fatalf("backlog %+v (%v), want %d", b, err, n)
	}
	if _, err := e.stats.EndControl(context.Background(), pause.ID); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, e, n, 30*time.Second)
}

func TestSync_InjectedPostgresErrors(t *testing.T) {
	e := newEnv(t)
	ids := shoppers(20)
	w := e.newSync(t, "w1")
	w.ReportEvery = 50 * time.Millisecond
	// Every write fails for 1.5 s, then the control ends by itself.
	setControl(t, e, store.TargetWorkerPostgres, store.EffectError, 1, 1500*time.Millisecond)
	start(t, w)
	waitFor(t, 10*time.Second, "fault taken", func() bool { // handed on after the worker took it
		cs, err := e.likes.Controls(context.Background())
		return err == nil && len(cs) == 1
	})
	n := clicks(t, e.likes, ids, 500)
	time.Sleep(300 * time.Millisecond) // some batches meet the fault
	if got := eventsStored(t, e.db); got != 0 {
		t.Fatalf("%d events stored while every write fails", got)
	}
	waitDrained(t, e, n, 30*time.Second)
	assertExact(t, e, ids, n)
}
