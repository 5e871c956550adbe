package handlers_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"phoenix/handlers"
	"phoenix/store"
)

// svgText returns the text of the SVG element with id, or "missing".
func svgText(body, id string) string {
	m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return "missing"
	}
	return m[1]
}

func TestAdmin_Flow(t *testing.T) {
	ctx := context.Background()
	f := newAdmin(t, func(a *handlers.Admin) { a.ReplicaAlive = 3 * time.Second })
	cookie := f.login(t)
	now := time.Now()
	beats := func(at time.Time, likes, applied int64) []store.Beat {
		return []store.Beat{
			{Role: store.RoleShop, Name: "shop-1", Version: "v1.2.0", At: at, Counts: map[string]int64{store.CountRequests: 3 * likes, store.CountLikes: likes}},
			{Role: store.RoleWorker, Name: "worker-1", Version: "v1.2.0", At: at, Counts: map[string]int64{store.CountApplied: applied, store.CountRead: applied},
				Backlog: []int64{40, 2}, LagMS: 120},
		}
	}
	for _, b := range [][]store.Beat{beats(now.Add(-2*time.Second), 100, 50), beats(now, 300, 250)} {
		if err := f.stats.RecordBeats(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	// A worker that stopped reporting a minute ago.
	gone := store.Beat{Role: store.RoleWorker, Name: "worker-0", Version: "v1.1.0", At: now.Add(-time.Minute)}
	if err := f.stats.RecordBeats(ctx, []store.Beat{gone}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.stats.SetControl(ctx, store.Control{Target: store.TargetWorkerPostgres, Effect: store.EffectError, Rate: 0.5,
		Until: now.Add(time.Minute), SetBy: "127.0.0.1", RequestID: "r"}); err != nil {
		t.Fatal(err)
	}

	for _, page := range []string{"/admin/stats/flow", "/admin"} {
		t.Run(page, func(t *testing.T) {
			resp, body := f.get(t, page, cookie, page != "/admin")
			if resp.StatusCode != fiber.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for id, want := range map[string]string{
				"flow-rate-likes":   "100 likes/s", // 200 more in 2 s
				"flow-rate-applied": "100 events/s",
				"flow-backlog":      "backlog 42",
				"flow-lag":          "lag 120 ms",
			} {
				if got := svgText(body, id); got != want {
					t.Errorf("%s: got %q, want %q", id, got, want)
				}
			}
			for _, want := range []string{
				`<tr data-replica="shop/shop-1" class="alive">`,
				`<tr data-replica="worker/worker-1" class="alive">`,
				`<tr data-replica="worker/worker-0" class="gone">`,
				`<code>v1.1.0</code>`,
				`<dt>Shard 1</dt><dd>2 waiting</dd>`,
				`PostgreSQL writes: 50.0% fail`,
				`<g id="flow-node-shop" class="flow-node">`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("missing %s", want)
				}
			}
		})
	}

	t.Run("stopped replicas grey out", func(t *testing.T) {
		// The alive window is 3 s; these beats are 2 s old then 4.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, body := f.get(t, "/admin/stats/flow", cookie, true)
			if strings.Contains(body, `<g id="flow-node-shop" class="flow-node down">`) &&
				strings.Contains(body, `<tr data-replica="worker/worker-1" class="gone">`) {
				if got := svgText(body, "flow-rate-likes"); got != "0.0 likes/s" {
					t.Errorf("rate of a gone shop: %q, want 0.0", got)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("shop and worker still alive after 10 s:\n%s", body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
