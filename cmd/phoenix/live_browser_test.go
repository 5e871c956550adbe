package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAdminBrowser_Live: the dashboard follows its live stream, sends no
// polls while the stream is open, and picks the stream up again after the
// admin restarts.
func TestAdminBrowser_Live(t *testing.T) {
	p := startStack(t) // shop, worker, and an admin that this test does not use
	// The admin under test runs on its own, so it can restart on its port.
	adminVars := map[string]string{
		"PHOENIX_DATABASE_URL":   p.vars["PHOENIX_DATABASE_URL"],
		"PHOENIX_ADMIN_PASSWORD": adminTestPassword,
		"PHOENIX_SECRET":         p.vars["PHOENIX_SECRET"],
	}
	a := startPhoenix(t, "admin", adminVars)
	product := defaultCatalog(t).Products()[0].ID
	b := newBrowser(t)
	ctx := b.timeout()

	b.open(ctx, a.url("admin", "/login"), true)
	login(b, ctx, adminTestPassword)
	waitVisible(b, ctx, "#stats-totals")
	b.waitFor(ctx, "the live stream", `document.body.dataset.live === 'open'`, `document.getElementById('dashboard')?.outerHTML.slice(0, 300)`)
	b.do(ctx, "count requests", chromedp.Evaluate[chromedp.Void](
		`window.phoenixMark = 1; window.phoenixPolls = 0; window.phoenixSSE = []; document.addEventListener('htmx:beforeSend', () => window.phoenixPolls++); ['htmx:sseOpen', 'htmx:sseError', 'htmx:sseClose', 'htmx:sseMessage'].forEach(n => document.addEventListener(n, (e) => window.phoenixSSE.push(n.slice(8) + '@' + Math.round(performance.now()) + (e.detail && e.detail.type ? ':' + e.detail.type : ''))))`))

	likeShows := func(want string) {
		t.Helper()
		start := time.Now()
		newShopper(t, p).like(t, product)
		b.waitFor(ctx, want+" likes in the totals", fmt.Sprintf(`document.querySelector('#total-likes .stat-value')?.textContent.trim() === %q`, want),
			`document.getElementById('stats-totals')?.innerText + ' ' + window.phoenixSSE.join(' ')`)
		t.Logf("Like → dashboard: %v", time.Since(start))
	}

	// A Like arrives pushed, with no poll: the polls (every 2 s) are
	// dropped while the stream is open.
	likeShows("1")
	time.Sleep(2500 * time.Millisecond) // at least one polling period
	if n := eval[int](b, ctx, `window.phoenixPolls`); n != 0 {
		t.Errorf("%d htmx requests while the stream was open, want none", n)
	}

	// The admin restarts on the same address; the stream reconnects by
	// itself and the next Like arrives pushed again.
	addr := a.addr("admin")
	// While it is away, the stream's errors show, and the polls it resumes fail.
	b.expectErrors("[object Event]", "htmx:sendError", "htmx:afterRequest", "ERR_CONNECTION_REFUSED")
	a.stop(t)
	b.waitFor(ctx, "the stream noticed", `document.body.dataset.live !== 'open'`, `document.body.dataset.live`)
	adminVars["PHOENIX_ADMIN_ADDR"] = addr
	startPhoenix(t, "admin", adminVars)
	b.waitFor(ctx, "the stream back", `document.body.dataset.live === 'open'`, `document.body.dataset.live`)
	time.Sleep(100 * time.Millisecond) // a poll sent just before the stream was back, answered
	b.do(ctx, "reset count", chromedp.Evaluate[chromedp.Void](`window.phoenixPolls = 0`))
	likeShows("2")
	if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
		t.Error("the page reloaded; want the stream to reconnect")
	}
	if n := eval[int](b, ctx, `window.phoenixPolls`); n != 0 {
		t.Errorf("%d htmx requests after the reconnect, want none", n)
	}
}

// TestAdminBrowser_LiveFallback: without a working stream (here: the
// server refuses it, as when too many are open), the dashboard polls.
func TestAdminBrowser_LiveFallback(t *testing.T) {
	p := startStack(t)
	b := newBrowser(t)
	ctx := b.timeout()
	// Every stream is refused as if the session had too many open.
	b.expectErrors("/admin/nonexistent", "[object Event]") // the refused stream
	b.open(ctx, p.url("admin", "/login"), true)
	login(b, ctx, adminTestPassword)
	waitVisible(b, ctx, "#stats-totals")
	b.do(ctx, "block the stream", chromedp.Evaluate[chromedp.Void](
		`window.phoenixMark = 1; document.body.dataset.live = ''; htmx.createEventSource = (url) => new EventSource(url.replace('/admin/live', '/admin/nonexistent'))`))
	// Swapping the dashboard makes a new stream: it fails, and polling runs.
	b.do(ctx, "reconnect", chromedp.Evaluate[chromedp.Void](`htmx.ajax('GET', '/admin', {target: '#dashboard', swap: 'outerHTML'})`))
	newShopper(t, p).like(t, defaultCatalog(t).Products()[0].ID)
	b.waitFor(ctx, "1 like, by polling", `document.querySelector('#total-likes .stat-value')?.textContent.trim() === '1'`,
		`document.body.dataset.live + ' ' + document.getElementById('stats-totals')?.innerText`)
}
