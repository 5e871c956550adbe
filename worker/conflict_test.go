package worker

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// TestSync_EventConflict: Redis lost writes and reused a stream id that
// PostgreSQL already stores for another event. The worker parks the new
// one, says so (log and metric), acknowledges it and goes on.
func TestSync_EventConflict(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	at := time.Now()
	id := strconv.FormatInt(at.UnixMilli(), 10) + "-0"
	if _, err := e.stats.Apply(ctx, []store.Event{{ID: id, ProductID: "tyre", ShopperID: "s1", Action: store.ActionLike, At: at}}); err != nil {
		t.Fatal(err)
	}
	for i, product := range []string{"battery", "muffler"} {
		args := &redis.XAddArgs{Stream: e.likes.StreamKey(), Values: []any{
			"product", product, "shopper", "s2", "action", "like", "at", strconv.FormatInt(at.UnixMilli(), 10), "likes", strconv.Itoa(i + 1)}}
		if i == 0 {
			args.ID = id // under the id PostgreSQL has
		}
		if err := e.rdb.XAdd(ctx, args).Err(); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	w := e.newSync(t, "w1")
	log, logs := testkit.Logger()
	w.Log = log
	w.Metrics = NewMetrics(reg, 0)
	start(t, w)
	waitDrained(t, e, 2, 30*time.Second) // the first like and muffler, not battery

	if got := gauge(t, reg, "phoenix_worker_event_conflicts_total"); got != 1 {
		t.Errorf("phoenix_worker_event_conflicts_total = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="event parked in event_conflicts" reason=conflict`) ||
		!strings.Contains(logs.String(), "stored_product=tyre") {
		t.Errorf("no warning naming both versions in the log:\n%s", logs.String())
	}
	var parked string
	if err := e.db.Get(&parked, `SELECT product_id || ' over ' || stored_product_id FROM event_conflicts`); err != nil || parked != "battery over tyre" {
		t.Errorf("event_conflicts %q (%v), want battery over tyre", parked, err)
	}
}
