package handlers_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"phoenix/handlers"
	"phoenix/store"
)

func activeControls(t *testing.T, s *store.Stats) []store.Control {
	t.Helper()
	cs, err := s.ActiveControls(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestAdmin_DemoControls(t *testing.T) {
	f := newAdmin(t, func(a *handlers.Admin) { a.Demo, a.DemoLoad = true, true })
	cookie := f.login(t)
	set := func(form url.Values) *fiberResponse {
		resp, body := f.do(t, request{method: "POST", target: "/admin/demo/controls", cookie: cookie, form: form})
		return &fiberResponse{status: resp.StatusCode, location: resp.Header.Get("Location"), body: body}
	}

	t.Run("page", func(t *testing.T) {
		resp, body := f.get(t, "/admin/demo", cookie, false)
		if resp.StatusCode != fiber.StatusOK || !strings.Contains(body, `id="fault-form"`) || !strings.Contains(body, `id="flow-view"`) {
			t.Fatalf("status %d, forms and flow view shown: %v", resp.StatusCode, strings.Contains(body, `id="fault-form"`))
		}
		if !strings.Contains(body, `href="/admin/demo" aria-current="page"`) {
			t.Error("the navigation does not mark the demo page as current")
		}
		if _, dash := f.get(t, "/admin", cookie, false); !strings.Contains(dash, `href="/admin/demo"`) {
			t.Error("the dashboard's navigation does not link the demo page")
		}
	})
	t.Run("pause, then resume", func(t *testing.T) {
		r := set(url.Values{"target": {"workers"}, "effect": {"pause"}, "duration": {"30"}})
		if r.status != fiber.StatusSeeOther || r.location != "/admin/demo?done=set" {
			t.Fatalf("status %d to %q, want 303 back to the page", r.status, r.location)
		}
		cs := activeControls(t, f.stats)
		if len(cs) != 1 || cs[0].Effect != store.EffectPause || cs[0].SetBy == "" || cs[0].RequestID == "" ||
			time.Until(cs[0].Until) < 25*time.Second || time.Until(cs[0].Until) > 31*time.Second {
			t.Fatalf("controls %+v, want one pause of 30 s, logged with who set it", cs)
		}
		_, page := f.get(t, "/admin/demo", cookie, false)
		if !strings.Contains(page, `id="flow-paused"`) || !strings.Contains(page, `id="resume-submit"`) {
			t.Error("the page does not show the pause and its resume button")
		}
		resp, _ := f.do(t, request{method: "POST", target: "/admin/demo/controls/" + strconv.FormatInt(cs[0].ID, 10) + "/end", cookie: cookie})
		if resp.StatusCode != fiber.StatusSeeOther || len(activeControls(t, f.stats)) != 0 {
			t.Fatalf("resume: status %d, %d controls left", resp.StatusCode, len(activeControls(t, f.stats)))
		}
		// Ended already: nothing to end.
		resp, _ = f.do(t, request{method: "POST", target: "/admin/demo/controls/" + strconv.FormatInt(cs[0].ID, 10) + "/end", cookie: cookie})
		if resp.StatusCode != fiber.StatusNotFound {
			t.Errorf("ending it twice: status %d, want 404", resp.StatusCode)
		}
	})
	t.Run("faults", func(t *testing.T) {
		for _, form := range []url.Values{
			{"target": {"worker-postgres"}, "effect": {"error"}, "rate": {"50"}, "duration": {"20"}},
			{"target": {"shop-redis"}, "effect": {"latency"}, "rate": {"100"}, "latency": {"250"}, "duration": {"20"}},
		} {
			if r := set(form); r.status != fiber.StatusSeeOther {
				t.Fatalf("%v: status %d: %s", form, r.status, r.body)
			}
		}
		cs := activeControls(t, f.stats)
		if len(cs) != 2 || cs[0].Rate != 0.5 || cs[1].Latency != 250*time.Millisecond {
			t.Fatalf("controls %+v, want errors at 50%% and 250 ms latency", cs)
		}
		_, body := f.get(t, "/admin/stats/flow", cookie, true)
		if strings.Count(body, `class="flow-fault"`) != 2 {
			t.Errorf("the flow view shows %d faults, want 2", strings.Count(body, `class="flow-fault"`))
		}
		for _, c := range cs {
			if _, err := f.stats.EndControl(context.Background(), c.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("simulated shoppers", func(t *testing.T) {
		r := set(url.Values{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"300"}, "shoppers": {"40"},
			"rate": {"75"}, "duration": {"60"}})
		if r.status != fiber.StatusSeeOther {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		cs := activeControls(t, f.stats)
		if len(cs) != 1 || cs[0].PerSecond != 300 || cs[0].Shoppers != 40 || cs[0].Rate != 0.75 || cs[0].Owner != "test-1" {
			t.Fatalf("controls %+v, want one load of 300/s from 40 shoppers, 75%% Likes, run by this replica", cs)
		}
		_, page := f.get(t, "/admin/demo", cookie, false)
		if !strings.Contains(page, `id="demo-load"`) || !strings.Contains(page, `id="load-stop"`) || !strings.Contains(page, "test-1") {
			t.Error("the page does not show the load starting on this replica, with its stop button")
		}
		if err := f.stats.LoadProgress(context.Background(), cs[0].ID, 1234, 5); err != nil {
			t.Fatal(err)
		}
		_, flow := f.get(t, "/admin/stats/flow", cookie, true)
		if !strings.Contains(flow, `id="flow-load"`) || !strings.Contains(flow, "1,234 sent, 5 failed") {
			t.Errorf("the flow view does not show the load's progress: %s", flow)
		}
		if _, err := f.stats.EndControl(context.Background(), cs[0].ID); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad values", func(t *testing.T) {
		for _, form := range []url.Values{
			{"target": {"workers"}, "effect": {"pause"}},                         // no duration
			{"target": {"workers"}, "effect": {"pause"}, "duration": {"0"}},      // too short
			{"target": {"workers"}, "effect": {"pause"}, "duration": {"100000"}}, // too long
			{"target": {"workers"}, "effect": {"pause"}, "duration": {"ten"}},    // junk
			{"target": {"shop-redis"}, "effect": {"error"}, "rate": {"0"}, "duration": {"5"}},
			{"target": {"shop-redis"}, "effect": {"error"}, "rate": {"101"}, "duration": {"5"}},
			{"target": {"shop-redis"}, "effect": {"error"}, "rate": {"NaN"}, "duration": {"5"}},
			{"target": {"shop-redis"}, "effect": {"latency"}, "latency": {"0"}, "duration": {"5"}},
			{"target": {"shop-redis"}, "effect": {"latency"}, "latency": {"60000"}, "duration": {"5"}},
			{"target": {"admin"}, "effect": {"error"}, "duration": {"5"}},
			{"target": {"workers"}, "effect": {"error"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"0"}, "shoppers": {"10"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"5001"}, "shoppers": {"10"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"10"}, "shoppers": {"0"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"10"}, "shoppers": {"1001"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"ten"}, "shoppers": {"10"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"load"}, "shoppers": {"10"}, "duration": {"5"}},
			{"target": {"shoppers"}, "effect": {"error"}, "per_second": {"10"}, "shoppers": {"10"}, "duration": {"5"}},
			{"target": {"shop-redis"}, "effect": {"load"}, "per_second": {"10"}, "shoppers": {"10"}, "duration": {"5"}},
		} {
			if r := set(form); r.status != fiber.StatusBadRequest {
				t.Errorf("%v: status %d, want 400", form, r.status)
			}
		}
		for _, id := range []string{"x", "0", "-1", "99999999999999999999"} {
			if resp, _ := f.do(t, request{method: "POST", target: "/admin/demo/controls/" + id + "/end", cookie: cookie}); resp.StatusCode != fiber.StatusBadRequest {
				t.Errorf("end %q: status %d, want 400", id, resp.StatusCode)
			}
		}
		if cs := activeControls(t, f.stats); len(cs) != 0 {
			t.Errorf("bad requests set %+v", cs)
		}
	})
	t.Run("no CSRF token", func(t *testing.T) {
		resp, _ := f.do(t, request{method: "POST", target: "/admin/demo/controls", cookie: cookie, noCSRF: true,
			form: url.Values{"target": {"workers"}, "effect": {"pause"}, "duration": {"30"}}})
		if resp.StatusCode != fiber.StatusForbidden || len(activeControls(t, f.stats)) != 0 {
			t.Errorf("status %d, want 403 and nothing set", resp.StatusCode)
		}
	})
	t.Run("no session", func(t *testing.T) {
		for _, r := range []request{
			{method: "GET", target: "/admin/demo"},
			{method: "POST", target: "/admin/demo/controls", form: url.Values{"target": {"workers"}, "effect": {"pause"}, "duration": {"30"}}},
			{method: "POST", target: "/admin/demo/controls", htmx: true, form: url.Values{"target": {"workers"}, "effect": {"pause"}, "duration": {"30"}}},
		} {
			resp, _ := f.do(t, r)
			if loc := resp.Header.Get("Location"); resp.StatusCode < 300 || (resp.StatusCode == fiber.StatusSeeOther && !strings.HasPrefix(loc, "/login")) {
				t.Errorf("%s %s htmx=%v: status %d to %q, want the login", r.method, r.target, r.htmx, resp.StatusCode, loc)
			}
		}
		if cs := activeControls(t, f.stats); len(cs) != 0 {
			t.Errorf("requests without a session set %+v", cs)
		}
	})
	t.Run("expired controls gone", func(t *testing.T) {
		if _, err := f.stats.SetControl(context.Background(), store.Control{Target: store.TargetShopRedis, Effect: store.EffectError, Rate: 1,
			Until: time.Now().Add(-time.Second), SetBy: "t", RequestID: "t"}); err != nil {
			t.Fatal(err)
		}
		_, body := f.get(t, "/admin/demo", cookie, false)
		if strings.Contains(body, `class="flow-fault"`) || strings.Contains(body, `id="demo-faults"`) {
			t.Error("an expired control shows")
		}
	})
}

func TestAdmin_DemoControlsOff(t *testing.T) {
	f := newAdmin(t) // Demo off
	cookie := f.login(t)
	t.Run("no shop to send shoppers to", func(t *testing.T) {
		g := newAdmin(t, func(a *handlers.Admin) { a.Demo = true }) // DemoLoad off
		cookie := g.login(t)
		if _, page := g.get(t, "/admin/demo", cookie, false); strings.Contains(page, `id="load-form"`) || !strings.Contains(page, `id="load-unavailable"`) {
			t.Error("the page offers simulated shoppers it cannot send")
		}
		resp, _ := g.do(t, request{method: "POST", target: "/admin/demo/controls", cookie: cookie,
			form: url.Values{"target": {"shoppers"}, "effect": {"load"}, "per_second": {"10"}, "shoppers": {"10"}, "rate": {"50"}, "duration": {"5"}}})
		if resp.StatusCode != fiber.StatusConflict || len(activeControls(t, g.stats)) != 0 {
			t.Errorf("status %d, want 409 and nothing set", resp.StatusCode)
		}
	})
	if _, dash := f.get(t, "/admin", cookie, false); strings.Contains(dash, `/admin/demo`) {
		t.Error("the navigation links demo controls that do not exist")
	}
	for _, r := range []request{
		{method: "GET", target: "/admin/demo", cookie: cookie},
		{method: "POST", target: "/admin/demo/controls", cookie: cookie, form: url.Values{"target": {"workers"}, "effect": {"pause"}, "duration": {"30"}}},
		{method: "POST", target: "/admin/demo/controls/1/end", cookie: cookie},
	} {
		if resp, _ := f.do(t, r); resp.StatusCode != fiber.StatusNotFound {
			t.Errorf("%s %s: status %d, want 404", r.method, r.target, resp.StatusCode)
		}
	}
	if cs := activeControls(t, f.stats); len(cs) != 0 {
		t.Errorf("controls set while off: %+v", cs)
	}
}

type fiberResponse struct {
	status         int
	location, body string
}
