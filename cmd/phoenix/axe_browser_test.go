package main

import (
	"context"
	_ "embed"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core, vendored for the tests only (see testdata/axe).
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// axeVersion is the version axeSource must report, so that a swapped file
// is noticed.
const axeVersion = "4.14.1"

// axeRun checks the whole document against WCAG 2.2 A and AA and axe's
// best practices, and returns one line per violation.
const axeRun = `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})
	.then(r => r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' +
		v.nodes.map(n => n.target.join(' ') + (n.failureSummary ? ' [' + n.failureSummary.replace(/\s+/g, ' ') + ']' : '')).join('; ')))`

// axeViolations injects axe-core into the current page through the
// DevTools protocol (which the page's CSP does not govern) and runs it.
func (b *browser) axeViolations(ctx context.Context) []string {
	b.tb.Helper()
	version := eval[string](b, ctx, `typeof axe === 'undefined' ? '' : axe.version`)
	if version == "" {
		version = eval[string](b, ctx, axeSource+"\n;axe.version")
	}
	if version != axeVersion {
		b.tb.Fatalf("axe-core %q in the page, want %s", version, axeVersion)
	}
	// axe.run waits on timers, which do not fire while scripts are off; the
	// page's own scripts do not run again when they are turned back on.
	if b.jsOff {
		b.setJS(ctx, true)
		defer b.setJS(ctx, false)
	}
	// Colours in mid-transition (a swapped Like button fading in) are not
	// the page's: wait for htmx to settle and the transitions to end.
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](
		`!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling') && document.getAnimations().every(a => a.playState !== 'running')`,
		chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		b.tb.Fatalf("page did not settle before axe: %v", err)
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		b.tb.Fatalf("run axe: %v", err)
	}
	return v
}

// axe fails the test with every accessibility violation on the current
// page; what names the page in the message.
func (b *browser) axe(ctx context.Context, what string) {
	b.tb.Helper()
	for _, v := range b.axeViolations(ctx) {
		b.tb.Errorf("axe on %s: %s", what, v)
	}
}

// TestBrowser_AxeReportsViolations checks the checker: a page with an
// image without alt text, a nameless button and a skipped heading level
// must be reported by rule.
func TestBrowser_AxeReportsViolations(t *testing.T) {
	url := probePage(t, `<!doctype html><html lang="en"><title>bad</title><main><h1>bad</h1>`+
		`<img src="/none.png"><button></button><h3>skipped a level</h3></main></html>`)
	b := newBrowser(t)
	b.expectErrors("404 (Not Found)")
	ctx := b.timeout()
	b.open(ctx, url, false)
	got := strings.Join(b.axeViolations(ctx), "\n")
	t.Logf("reported:\n%s", got)
	for _, rule := range []string{"image-alt (critical)", "button-name (critical)", "heading-order (moderate)"} {
		if !strings.Contains(got, rule) {
			t.Errorf("axe did not report %s", rule)
		}
	}
	// A second run reuses the injected axe.
	if n := len(b.axeViolations(ctx)); n == 0 {
		t.Error("second run reports nothing")
	}
}
