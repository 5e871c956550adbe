package main

import (
	"testing"

	"github.com/chromedp/chromedp"

	"phoenix/testkit"
)

// TestAdminBrowser_Flow: the dashboard's flow view lists every replica
// with its role and version, and greys out a worker within seconds of its
// stop, pushed over the live stream without a reload.
func TestAdminBrowser_Flow(t *testing.T) {
	p := startStack(t)
	// A second worker, of its own, that the test stops.
	vars := map[string]string{
		"PHOENIX_REDIS_URL":       p.vars["PHOENIX_REDIS_URL"],
		"PHOENIX_REDIS_PREFIX":    p.vars["PHOENIX_REDIS_PREFIX"],
		"PHOENIX_DATABASE_URL":    p.vars["PHOENIX_DATABASE_URL"],
		"PHOENIX_WORKER_CONSUMER": "flow-worker-2",
	}
	w := startPhoenix(t, "worker", vars)
	b := newBrowser(t)
	ctx := b.timeout()
	b.open(ctx, p.url("admin", "/login"), true)
	login(b, ctx, adminTestPassword)
	waitVisible(b, ctx, "#flow-view svg")
	b.waitFor(ctx, "the live stream", `document.body.dataset.live === 'open'`, `document.body.dataset.live`)
	b.do(ctx, "mark the page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))

	rows := `[...document.querySelectorAll('#flow-replicas tbody tr')].map(r => r.dataset.replica + ':' + r.className + ':' + r.innerText).join(' | ')`
	// Every role of phoenix all, and the second worker, alive.
	b.waitFor(ctx, "the replicas alive",
		`['shop/', 'admin/', 'worker/flow-worker-2'].every(p => document.querySelector('#flow-replicas tr.alive[data-replica^="' + p + '"]')) && document.querySelectorAll('#flow-replicas tr.alive[data-replica^="worker/"]').length === 2`,
		rows)
	if v := text(b, ctx, `tr[data-replica="worker/flow-worker-2"] code`); v == "" || v == "missing" {
		t.Errorf("worker version %q, want the build's", v)
	}
	if got := text(b, ctx, "#flow-node-worker text:nth-of-type(2)"); got != "2 alive" {
		t.Errorf("worker node says %q, want 2 alive", got)
	}

	// Stopped, the worker turns grey; the other stays alive.
	w.stop(t)
	b.waitFor(ctx, "the stopped worker grey",
		`document.querySelector('#flow-replicas tr.gone[data-replica="worker/flow-worker-2"]') !== null && document.querySelectorAll('#flow-replicas tr.alive[data-replica^="worker/"]').length === 1`,
		rows)
	if got := text(b, ctx, "#flow-node-worker text:nth-of-type(2)"); got != "1 alive" {
		t.Errorf("worker node says %q after the stop, want 1 alive", got)
	}
	if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
		t.Error("the page reloaded; want the flow view pushed")
	}
	b.axe(ctx, "dashboard with a gone replica")
	b.screenshot(ctx, "flow")
}

// TestAdminBrowser_DemoControls: from the demo page a presenter pauses and
// resumes the workers, injects and ends a fault, and starts and stops
// simulated shoppers; the flow view shows each while it is in force.
func TestAdminBrowser_DemoControls(t *testing.T) {
	vars, _ := sharedRedis(t)
	vars["PHOENIX_DATABASE_URL"] = testkit.Postgres(t)
	vars["PHOENIX_ADMIN_PASSWORD"] = adminTestPassword
	vars["PHOENIX_SECRET"] = "test-secret-0123456789abcdef-0123456789"
	vars["PHOENIX_DEMO_CONTROLS"] = "true"
	p := startPhoenix(t, "all", vars)
	b := newBrowser(t)
	ctx := b.timeout()
	b.open(ctx, p.url("admin", "/login?next=/admin/demo"), true)
	login(b, ctx, adminTestPassword)
	waitVisible(b, ctx, "#pause-form")

	b.do(ctx, "pause", chromedp.SetValue(chromedp.CSS("#pause-duration"), "60"), chromedp.Click(chromedp.CSS("#pause-submit")))
	waitVisible(b, ctx, "#resume-submit")
	b.waitFor(ctx, "the pause in the flow view", `document.querySelector('#flow-node-worker.paused #flow-paused') !== null`, `document.getElementById('flow-node-worker')?.outerHTML`)
	b.do(ctx, "resume", chromedp.Click(chromedp.CSS("#resume-submit")))
	waitVisible(b, ctx, `#demo-done[data-done="demo.done_ended"]`)
	b.waitFor(ctx, "the pause gone", `document.querySelector('#flow-paused') === null && document.querySelector('#resume-submit') === null`, `document.getElementById('flow-node-worker')?.outerHTML`)

	b.do(ctx, "inject PostgreSQL errors",
		chromedp.SetValue(chromedp.CSS("#fault-rate"), "50"), chromedp.SetValue(chromedp.CSS("#fault-duration"), "60"),
		chromedp.Click(chromedp.CSS("#fault-submit")))
	waitVisible(b, ctx, "#demo-faults")
	b.waitFor(ctx, "the fault in the flow view", `document.querySelector('#flow-node-postgres .flow-fault')?.textContent.includes('50.0%')`,
		`document.getElementById('flow-node-postgres')?.outerHTML`)
	b.axe(ctx, "demo page with a fault")
	b.screenshot(ctx, "demo")
	b.do(ctx, "end the fault", chromedp.Click(chromedp.CSS("#demo-faults button[data-end]")))
	waitVisible(b, ctx, `#demo-done[data-done="demo.done_ended"]`)
	b.waitFor(ctx, "the fault gone", `document.querySelector('#demo-faults') === null && document.querySelector('.flow-fault') === null`,
		`document.getElementById('flow-view')?.outerHTML`)

	b.do(ctx, "start simulated shoppers",
		chromedp.SetValue(chromedp.CSS("#load-rate"), "20"), chromedp.SetValue(chromedp.CSS("#load-shoppers"), "3"),
		chromedp.Click(chromedp.CSS("#load-submit")))
	waitVisible(b, ctx, "#load-stop")
	// Progress arrives with the flow view's next update: requests sent > 0.
	b.waitFor(ctx, "the load's progress in the flow view", `/[1-9][0-9,]* sent/.test(document.querySelector('#flow-load')?.textContent ?? '')`,
		`document.getElementById('flow-node-shop')?.outerHTML`)
	b.axe(ctx, "demo page with simulated shoppers")
	b.do(ctx, "stop the shoppers", chromedp.Click(chromedp.CSS("#load-stop")))
	waitVisible(b, ctx, `#demo-done[data-done="demo.done_ended"]`)
	b.waitFor(ctx, "the load gone", `document.querySelector('#flow-load') === null && document.querySelector('#load-stop') === null`,
		`document.getElementById('flow-view')?.outerHTML`)
}
