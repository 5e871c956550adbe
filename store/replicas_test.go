package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

func TestLikes_ShopBeats(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	likes := store.NewLikes(rdb, prefix)
	now := time.Now()
	for _, b := range []store.Beat{
		{Role: store.RoleShop, Name: "shop-a", Version: "v1", At: now, Counts: map[string]int64{store.CountLikes: 5}},
		{Role: store.RoleShop, Name: "shop-old", Version: "v1", At: now.Add(-store.ReplicaGone - time.Minute)},
	} {
		if err := likes.ReportShop(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := likes.ShopBeats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Name != "shop-a" || got[0].Counts[store.CountLikes] != 5 || !got[0].At.Equal(now) {
		t.Fatalf("got %+v, want shop-a alone with 5 likes", got)
	}
	// The gone shop was dropped from Redis, not only left out.
	if n := rdb.HLen(ctx, prefix+"replicas:shop").Val(); n != 1 {
		t.Errorf("%d heartbeats left in Redis, want 1", n)
	}
}

func TestStats_RecordBeats(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	calls := listen(t, s)
	t0 := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	beat := func(at time.Time, likes int64) store.Beat {
		return store.Beat{Role: store.RoleShop, Name: "shop-a", Version: "v1", At: at, Counts: map[string]int64{store.CountLikes: likes}}
	}
	worker := store.Beat{Role: store.RoleWorker, Name: "w1", Version: "v2", At: t0, Backlog: []int64{7, 0, 3}, LagMS: 40}
	if err := s.RecordBeats(ctx, []store.Beat{beat(t0, 10), worker}); err != nil {
		t.Fatal(err)
	}
	expectCall(t, calls, "first heartbeats")
	if err := s.RecordBeats(ctx, []store.Beat{beat(t0.Add(2*time.Second), 30)}); err != nil {
		t.Fatal(err)
	}
	// A beat relayed again by a second worker changes nothing.
	if err := s.RecordBeats(ctx, []store.Beat{beat(t0.Add(time.Second), 20)}); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("got %d replicas, want 2: %+v", len(rs), rs)
	}
	shop, w := rs[0], rs[1] // by role: shop, worker
	if got := shop.Rate(store.CountLikes); got != 10 {
		t.Errorf("shop likes rate %v, want 10/s (20 likes in 2 s)", got)
	}
	if !shop.At.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("shop seen at %v, want the newest beat's time", shop.At)
	}
	if w.Role != store.RoleWorker || w.Version != "v2" || w.LagMS != 40 || len(w.Backlog) != 3 || w.Backlog[0] != 7 || w.Backlog[2] != 3 {
		t.Errorf("worker row %+v, want version v2, lag 40, backlog per shard [7 0 3]", w)
	}
	if got := w.Rate(store.CountRead); got != 0 {
		t.Errorf("one beat gives rate %v, want 0", got)
	}
	// A restart resets the counters: no negative rate.
	if err := s.RecordBeats(ctx, []store.Beat{beat(t0.Add(4*time.Second), 1)}); err != nil {
		t.Fatal(err)
	}
	if rs, _ = s.Replicas(ctx); rs[0].Rate(store.CountLikes) != 0 {
		t.Errorf("rate after a restart %v, want 0", rs[0].Rate(store.CountLikes))
	}
}

func TestStats_Controls(t *testing.T) {
	ctx := context.Background()
	s := testkit.Stats(t)
	until := time.Now().Add(time.Minute)
	c, err := s.SetControl(ctx, store.Control{Target: store.TargetWorkerPostgres, Effect: store.EffectError, Rate: 0.5,
		Until: until, SetBy: "127.0.0.1", RequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	// A second control of the same kind replaces the first.
	c2, err := s.SetControl(ctx, store.Control{Target: store.TargetWorkerPostgres, Effect: store.EffectError, Rate: 1,
		Until: until, SetBy: "127.0.0.1", RequestID: "req-2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetControl(ctx, store.Control{Target: store.TargetWorkers, Effect: store.EffectPause, Rate: 1,
		Until: time.Now().Add(-time.Second), SetBy: "127.0.0.1", RequestID: "req-3"}); err != nil {
		t.Fatal(err)
	}
	active, err := s.ActiveControls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].ID != c2.ID || active[0].Rate != 1 || active[0].SetBy != "127.0.0.1" || active[0].RequestID != "req-2" {
		t.Fatalf("active %+v, want only the second control (the first replaced, the expired one gone)", active)
	}
	if ended, err := s.EndControl(ctx, c.ID); err != nil || ended {
		t.Errorf("ending the replaced control: %v, %v; want false, nil", ended, err)
	}
	if ended, err := s.EndControl(ctx, c2.ID); err != nil || !ended {
		t.Errorf("ending the active control: %v, %v; want true, nil", ended, err)
	}
	if active, _ := s.ActiveControls(ctx); len(active) != 0 {
		t.Errorf("after the end: %+v, want none", active)
	}
	var logged int
	if err := s.DB().Get(&logged, `SELECT count(*) FROM controls WHERE set_by <> '' AND request_id <> ''`); err != nil || logged != 3 {
		t.Errorf("%d controls logged with who set them (%v), want 3", logged, err)
	}
}

func TestControl_Check(t *testing.T) {
	until := time.Now().Add(time.Minute)
	tests := []struct {
		name string
		in   store.Control
		ok   bool
	}{
		{"pause", store.Control{Target: store.TargetWorkers, Effect: store.EffectPause, Rate: 1, Until: until}, true},
		{"errors", store.Control{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 0.1, Until: until}, true},
		{"latency", store.Control{Target: store.TargetWorkerPostgres, Effect: store.EffectLatency, Rate: 1, Latency: 200 * time.Millisecond, Until: until}, true},
		{"pause of postgres", store.Control{Target: store.TargetWorkerPostgres, Effect: store.EffectPause, Rate: 1, Until: until}, false},
		{"errors in workers", store.Control{Target: store.TargetWorkers, Effect: store.EffectError, Rate: 1, Until: until}, false},
		{"unknown target", store.Control{Target: "admin", Effect: store.EffectError, Rate: 1, Until: until}, false},
		{"zero rate", store.Control{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 0, Until: until}, false},
		{"rate over 1", store.Control{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 1.5, Until: until}, false},
		{"no latency", store.Control{Target: store.TargetShopRedis, Effect: store.EffectLatency, Rate: 1, Until: until}, false},
		{"huge latency", store.Control{Target: store.TargetShopRedis, Effect: store.EffectLatency, Rate: 1, Latency: time.Hour, Until: until}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.in.Check(); (err == nil) != tt.ok {
				t.Errorf("got %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestFaults_RedisHook(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	faults := store.NewFaults()
	rdb.AddHook(faults.RedisHook(store.TargetShopRedis))
	key := prefix + "fault-probe"
	faults.Set([]store.Control{{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 1, Until: time.Now().Add(time.Minute)}})
	if err := rdb.Set(ctx, key, "1", 0).Err(); !errors.Is(err, store.ErrInjected) {
		t.Fatalf("SET with errors injected: %v, want ErrInjected", err)
	}
	pipe := rdb.Pipeline()
	pipe.Set(ctx, key, "2", 0)
	if _, err := pipe.Exec(ctx); !errors.Is(err, store.ErrInjected) {
		t.Fatalf("pipeline with errors injected: %v, want ErrInjected", err)
	}
	// The failed calls were never made.
	if err := rdb.Get(store.WithoutFaults(ctx), key).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("the key exists after failed writes: %v", err)
	}
	// Latency delays the call, then makes it.
	faults.Set([]store.Control{{Target: store.TargetShopRedis, Effect: store.EffectLatency, Rate: 1, Latency: 150 * time.Millisecond, Until: time.Now().Add(time.Minute)}})
	start := time.Now()
	if err := rdb.Set(ctx, key, "3", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("SET took %v with 150ms injected", d)
	}
	// An expired control injects nothing, without anyone lifting it.
	faults.Set([]store.Control{{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 1, Until: time.Now().Add(50 * time.Millisecond)}})
	time.Sleep(60 * time.Millisecond) // the control's own deadline, not a wait for a result
	if err := rdb.Get(ctx, key).Err(); err != nil {
		t.Fatalf("after the deadline: %v, want the call made", err)
	}
}

func TestLikes_Controls(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	likes := store.NewLikes(rdb, prefix)
	if cs, err := likes.Controls(ctx); err != nil || cs != nil {
		t.Fatalf("before any: %v, %v", cs, err)
	}
	want := []store.Control{{ID: 3, Target: store.TargetShopRedis, Effect: store.EffectLatency, Rate: 0.25, Latency: time.Second, Until: time.Now().Add(time.Minute).UTC()}}
	if err := likes.PublishControls(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := likes.Controls(ctx)
	if err != nil || len(got) != 1 || got[0].ID != 3 || got[0].Latency != time.Second || !got[0].Until.Equal(want[0].Until) {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	if ttl := rdb.PTTL(ctx, prefix+"controls").Val(); ttl <= 0 {
		t.Errorf("controls key TTL %v, want a bound (they outlive no worker for long)", ttl)
	}
}
