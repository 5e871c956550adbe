package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"

	"phoenix"
	"phoenix/handlers"
)

// browserTimeout bounds each browser test.
const browserTimeout = 2 * time.Minute

// cspListener runs before any page script (and is itself exempt from the
// page's CSP, as DevTools injects it): it turns every CSP violation into a
// console error that names the directive, on top of Chromium's own report.
const cspListener = `document.addEventListener('securitypolicyviolation', e =>
	console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));`

// browser is a headless Chromium with one tab. It records what the pages
// write to the console, and at the end of the test fails it on any JS
// exception, CSP violation or error that the test did not expect.
type browser struct {
	tb  testing.TB
	ctx context.Context // the tab; actions take a context derived from it

	mu       sync.Mutex
	msgs     []chromedp.ConsoleMessage
	expected []string // substrings of errors that the test provokes on purpose
	barriers int
	jsOff    bool // the page's scripts are disabled (set by disableJS)
}

// disableJS turns the page's scripts off, as for a visitor without JS;
// evaluating through the protocol still works.
func (b *browser) disableJS(ctx context.Context) {
	b.tb.Helper()
	b.setJS(ctx, false)
	b.jsOff = true
}

func (b *browser) setJS(ctx context.Context, on bool) {
	b.tb.Helper()
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: !on}); err != nil {
		b.tb.Fatalf("turn scripts on=%v: %v", on, err)
	}
}

// newBrowser starts Debian's chromium headless with a fresh profile, plus
// any extra options. Without chromium the test is skipped, or fails when CI
// is "true".
func newBrowser(tb testing.TB, extra ...chromedp.ExecAllocatorOption) *browser {
	tb.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		const hint = "chromium not found: install the Debian package chromium (apt-get install chromium)"
		if os.Getenv("CI") == "true" {
			tb.Fatal(hint)
		}
		tb.Skip(hint)
	}
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // root in a container has no user namespaces
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1280, 900),
	}, extra...)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tb.Cleanup(acancel)
	ctx, cancel := chromedp.NewContext(actx)
	// Start the browser with the tab's own context: the browser lives as
	// long as the context of the first action.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		tb.Fatalf("start chromium: %v", err)
	}
	b := &browser{tb: tb, ctx: ctx}
	messages := chromedp.Console(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for m, err := range messages {
			if err != nil {
				return // the tab is closed
			}
			b.mu.Lock()
			b.msgs = append(b.msgs, m)
			b.mu.Unlock()
		}
	})
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspListener}); err != nil {
		tb.Fatalf("install CSP listener: %v", err)
	}
	tb.Cleanup(func() {
		for _, p := range b.problems() {
			tb.Errorf("browser: %s", p)
		}
	})
	return b
}

// timeout returns a context for the test's actions, bounded by browserTimeout.
func (b *browser) timeout() context.Context {
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	b.tb.Cleanup(cancel)
	return ctx
}

// expectErrors tells the browser that console errors whose text and URL
// ("<text> <url>") contain one of subs are provoked by the test (a 503 while
// Redis is down), not defects. Exceptions and CSP violations never are.
func (b *browser) expectErrors(subs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.expected = append(b.expected, subs...)
}

// problems waits until every message the pages wrote so far has arrived,
// then returns the ones that are defects, and forgets them.
func (b *browser) problems() []string {
	b.sync()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		if p := b.problem(m); p != "" {
			out = append(out, p)
		}
	}
	b.msgs = nil
	return out
}

// problem classifies one console message; "" means it is no defect.
func (b *browser) problem(m chromedp.ConsoleMessage) string {
	where := ""
	if m.URL != "" {
		where = fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
	}
	switch {
	case m.IsException():
		return "JS exception: " + m.Text + where
	case strings.Contains(m.Text, "Content Security Policy") || strings.HasPrefix(m.Text, "CSP violation"):
		return "CSP violation: " + m.Text + where
	case m.Type == chromedp.ConsoleError:
		for _, s := range b.expected {
			if strings.Contains(m.Text+" "+m.URL, s) {
				return ""
			}
		}
		return "console error: " + m.Text + where
	}
	return ""
}

// sync writes a marker to the console through the protocol and waits until
// it is recorded. Messages keep their order, so every earlier one is in.
// When the page cannot run it (no page yet), sync does nothing.
func (b *browser) sync() {
	b.mu.Lock()
	b.barriers++
	marker := fmt.Sprintf("phoenix-test-barrier-%d", b.barriers)
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](fmt.Sprintf("console.debug(%q)", marker))); err != nil {
		return
	}
	for ctx.Err() == nil {
		b.mu.Lock()
		for i, m := range b.msgs {
			if m.Text == marker {
				b.msgs = append(b.msgs[:i], b.msgs[i+1:]...)
				b.mu.Unlock()
				return
			}
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.tb.Errorf("browser: console marker not seen within 10s; some messages may be missing")
}

// do runs actions and fails the test with what was being done.
func (b *browser) do(ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	b.tb.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.tb.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JS expression in the page and decodes its value.
func eval[T any](b *browser, ctx context.Context, expr string) T {
	b.tb.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JS predicate until it is true; on timeout it fails with
// what was awaited and the value of show, to tell what the page did instead.
func (b *browser) waitFor(ctx context.Context, what, predicate, show string) {
	b.tb.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string]("String("+show+")"))
		b.tb.Fatalf("waiting for %s: %v; page shows: %s", what, err, got)
	}
}

// open navigates to url and, when JS is on, waits until htmx has set up the
// page, so that a click goes through htmx and not a plain form post.
func (b *browser) open(ctx context.Context, url string, js bool) {
	b.tb.Helper()
	b.do(ctx, "open "+url, chromedp.Navigate(url))
	if js {
		b.waitFor(ctx, "htmx on "+url, `window.htmx !== undefined && document.readyState === 'complete'`, "typeof window.htmx")
	}
}

// screenshot saves a full-page PNG into $PHOENIX_SCREENSHOT_DIR, when set,
// for a person to look at; tests never compare images.
func (b *browser) screenshot(ctx context.Context, name string) {
	b.tb.Helper()
	dir := os.Getenv("PHOENIX_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.tb.Fatal(err)
	}
}

// probePage serves html at / of an app with Phoenix's real security
// headers and returns its URL.
func probePage(t *testing.T, html string) string {
	t.Helper()
	app, err := handlers.NewApp(handlers.AppConfig{
		Name: "probe", Views: phoenix.Views(), Assets: phoenix.Assets(), Locales: phoenix.Locales(),
		Log: slog.New(slog.DiscardHandler), Instance: "probe", Section: "shop",
	})
	if err != nil {
		t.Fatal(err)
	}
	app.Get("/", func(c *fiber.Ctx) error {
		c.Type("html")
		return c.SendString(html)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	t.Cleanup(func() {
		if err := app.Shutdown(); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

// TestBrowser_ReportsProblems checks the checker: a page with an inline
// script under Phoenix's real security headers must be reported as a CSP
// violation, and a thrown error as a JS exception.
func TestBrowser_ReportsProblems(t *testing.T) {
	url := probePage(t, `<!doctype html><title>inline</title><p id="p">inline</p><script>document.title = 'ran'</script>`)
	b := newBrowser(t)
	ctx := b.timeout()
	b.open(ctx, url, false)
	if title := eval[string](b, ctx, "document.title"); title != "inline" {
		t.Errorf("inline script ran under the CSP: title %q", title)
	}
	b.do(ctx, "throw", chromedp.Evaluate[chromedp.Void](`setTimeout(() => { throw new Error('probe boom') }, 0)`))
	b.waitFor(ctx, "the timer", `new Promise(r => setTimeout(() => r(true), 50))`, "''")

	var csp, exc bool
	for _, p := range b.problems() {
		t.Logf("reported: %s", p)
		csp = csp || strings.HasPrefix(p, "CSP violation")
		exc = exc || strings.Contains(p, "JS exception") && strings.Contains(p, "probe boom")
	}
	if !csp || !exc {
		t.Errorf("got CSP violation %v, exception %v; want both reported", csp, exc)
	}
}
