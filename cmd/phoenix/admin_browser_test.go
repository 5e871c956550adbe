package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"phoenix/loadgen"
	"phoenix/testkit"
)

const adminTestPassword = "a-long-test-password-for-phoenix"

// startStack runs phoenix all (shop, worker, admin) on the shared test
// Redis, under a prefix of its own, and a fresh PostgreSQL database.
func startStack(t *testing.T) *phoenixProc {
	t.Helper()
	vars, _ := sharedRedis(t)
	vars["PHOENIX_DATABASE_URL"] = testkit.Postgres(t)
	vars["PHOENIX_ADMIN_PASSWORD"] = adminTestPassword
	vars["PHOENIX_SECRET"] = "test-secret-0123456789abcdef-0123456789"
	vars["PHOENIX_WORKER_BLOCK"] = "50ms"
	return startPhoenix(t, "all", vars)
}

// shopper is a client of the shop with its own cookies and CSRF token.
type shopper struct{ *loadgen.Shopper }

// newShopper visits the shop once, as a browser would, for its cookies and
// CSRF token.
func newShopper(t *testing.T, p *phoenixProc) *shopper {
	t.Helper()
	s := loadgen.NewShopper(p.url("shop", ""), nil, 10*time.Second)
	if err := s.Arrive(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &shopper{s}
}

// like posts the no-JS Like form of product.
func (s *shopper) like(t *testing.T, product string) { s.post(t, "like", product) }

// post sends the no-JS form of action ("like" or "unlike") on product.
func (s *shopper) post(t *testing.T, action, product string) {
	t.Helper()
	status, _, err := s.Post(context.Background(), "/products/"+product+"/"+action, false)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusSeeOther {
		t.Fatalf("%s %s: status %d, want 303", action, product, status)
	}
}

// text returns the trimmed text of the element with id, or "missing".
func text(b *browser, ctx context.Context, selector string) string {
	b.tb.Helper()
	return eval[string](b, ctx, fmt.Sprintf(`document.querySelector(%q)?.textContent.trim() ?? 'missing'`, selector))
}

// login fills in the login form and submits it.
func login(b *browser, ctx context.Context, password string) {
	b.tb.Helper()
	b.do(ctx, "log in",
		chromedp.SetValue(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#login-form")))
}

// waitVisible waits until an element matching the CSS selector is shown,
// across page loads (a form post, a redirect).
func waitVisible(b *browser, ctx context.Context, selector string) {
	b.tb.Helper()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
		got, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + ' ' + document.querySelector('main')?.innerText`))
		b.tb.Fatalf("waiting for %s: %v; page shows: %s", selector, err, got)
	}
}

// noOverflow fails when the page is wider than the viewport.
func noOverflow(t *testing.T, b *browser, ctx context.Context, width int) {
	t.Helper()
	got := eval[[]int](b, ctx, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
	if got[0] > got[1] {
		wide := eval[string](b, ctx, `[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className).join(', ')`)
		t.Errorf("at %dpx the page is %dpx wide (viewport %d); too wide: %s", width, got[0], got[1], wide)
	}
	// Nor may a table hide columns behind a scroll bar in its card.
	if cut := eval[string](b, ctx, `[...document.querySelectorAll('.table-wrap')].filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.id + ': ' + e.scrollWidth + ' > ' + e.clientWidth).join(', ')`); cut != "" {
		t.Errorf("at %dpx tables scroll sideways: %s", width, cut)
	}
}

func setWidth(b *browser, ctx context.Context, width int) {
	b.tb.Helper()
	b.do(ctx, fmt.Sprintf("resize to %d", width), chromedp.EmulateViewport(int64(width), 844))
}

func TestAdminBrowser_Dashboard(t *testing.T) {
	p := startStack(t)
	products := defaultCatalog(t).Products()
	first, second := products[0].ID, products[1].ID
	b := newBrowser(t)
	ctx := b.timeout()
	admin := p.url("admin", "")

	// Logged out, the dashboard sends to login.
	{
		b.open(ctx, admin+"/admin", true)
		if path := eval[string](b, ctx, `location.pathname + location.search`); path != "/login?next=%2Fadmin" {
			t.Errorf("at %q, want /login?next=%%2Fadmin", path)
		}
		b.axe(ctx, "login")
	}

	// Wrong password.
	{
		// The refusal is a 401, which Chromium reports on the console.
		b.expectErrors("status of 401 (Unauthorized) " + admin + "/login")
		login(b, ctx, "not the password")
		waitVisible(b, ctx, ".notice.error")
		if got := text(b, ctx, ".notice.error"); got != "Wrong password." {
			t.Errorf("refusal says %q, want Wrong password.", got)
		}
		if eval[bool](b, ctx, `document.getElementById('stats-totals') !== null`) {
			t.Error("a wrong password shows statistics")
		}
		b.axe(ctx, "login after a wrong password")
	}

	// Right password lands on the dashboard.
	{
		login(b, ctx, adminTestPassword)
		waitVisible(b, ctx, "#stats-totals")
		b.waitFor(ctx, "the dashboard", `location.pathname === '/admin' && window.htmx !== undefined`, `location.href`)
		if got := text(b, ctx, "#total-likes .stat-value"); got != "0" {
			t.Errorf("likes before any Like: %q, want 0", got)
		}
	}

	// A Like appears without a reload.
	{
		b.do(ctx, "mark page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))
		s := newShopper(t, p)
		s.like(t, first)
		s.like(t, second)
		newShopper(t, p).like(t, first)
		b.waitFor(ctx, "3 likes in the totals", `document.querySelector('#total-likes .stat-value')?.textContent.trim() === '3'`, `document.getElementById('stats-totals')?.innerText`)
		b.waitFor(ctx, "2 likes in the row of "+first, fmt.Sprintf(`document.querySelector('#product-row-%s .likes')?.textContent.trim() === '2'`, first),
			fmt.Sprintf(`document.getElementById('product-row-%s')?.innerText`, first))
		if got := text(b, ctx, "#total-shoppers .stat-value"); got != "2" {
			t.Errorf("shoppers: %q, want 2", got)
		}
		if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
			t.Error("the page reloaded; want htmx polling")
		}
		b.axe(ctx, "dashboard with likes")
	}

	// Sorting and filtering with htmx.
	{
		b.do(ctx, "sort by name", chromedp.Click(chromedp.CSS(`#stats-products th a[href*="sort=name"]`)))
		b.waitFor(ctx, "sorted by name", `location.search.includes('sort=name') && document.querySelector('#stats-products th[aria-sort="ascending"] a')?.textContent === 'Product'`,
			`location.search + ' ' + document.querySelector('#stats-products thead')?.outerHTML`)
		names := eval[[]string](b, ctx, `[...document.querySelectorAll('#stats-products tbody th')].map(e => e.textContent.trim())`)
		for i := 1; i < len(names); i++ {
			if strings.ToLower(names[i-1]) > strings.ToLower(names[i]) {
				t.Errorf("not sorted by name: %q before %q", names[i-1], names[i])
			}
		}
		category := products[0].Category
		b.do(ctx, "filter by category", chromedp.SetValue(chromedp.CSS("#filter-category"), category),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('filter-category').dispatchEvent(new Event('change', {bubbles: true}))`))
		b.waitFor(ctx, "filtered by "+category, fmt.Sprintf(`location.search.includes('category=') && [...document.querySelectorAll('#stats-products tbody .col-category')].every(e => e.textContent === %q)`, category),
			`location.search + ' ' + document.querySelector('#stats-products caption')?.textContent`)
		if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
			t.Error("sorting or filtering reloaded the page; want an htmx swap")
		}
		b.axe(ctx, "dashboard sorted and filtered")
	}

	// Screenshots at 1280px and 390px.
	{
		b.open(ctx, admin+"/admin", true)
		b.screenshot(ctx, "admin-1280")
		noOverflow(t, b, ctx, 1280)
		setWidth(b, ctx, 390)
		b.open(ctx, admin+"/admin", true)
		b.screenshot(ctx, "admin-390")
		noOverflow(t, b, ctx, 390)
		b.axe(ctx, "dashboard at 390px")
		setWidth(b, ctx, 1280)
	}

	// In Chinese, at both widths.
	{
		acceptLanguage(b, ctx, "zh-CN,zh;q=0.9")
		for _, width := range []int{390, 1280} {
			setWidth(b, ctx, width)
			b.open(ctx, admin+"/admin", true)
			if lang := eval[string](b, ctx, `document.documentElement.lang`); lang != "zh-CN" {
				t.Fatalf("dashboard lang %q, want zh-CN", lang)
			}
			noOverflow(t, b, ctx, width)
			b.axe(ctx, fmt.Sprintf("dashboard in Chinese at %dpx", width))
		}
		acceptLanguage(b, ctx, "en")
	}

	// Logout.
	{
		b.do(ctx, "log out", chromedp.Click(chromedp.CSS("#logout")))
		waitVisible(b, ctx, "#password")
		b.waitFor(ctx, "the login form", `location.pathname === '/login'`, `location.href`)
		b.open(ctx, admin+"/admin", false)
		if path := eval[string](b, ctx, `location.pathname`); path != "/login" {
			t.Errorf("after logout /admin shows %q, want the login form", path)
		}
		for _, width := range []int{390, 1280} {
			setWidth(b, ctx, width)
			acceptLanguage(b, ctx, "zh-CN")
			b.open(ctx, admin+"/login", false)
			b.axe(ctx, fmt.Sprintf("login in Chinese at %dpx", width))
			acceptLanguage(b, ctx, "en")
			b.open(ctx, admin+"/login", false)
			b.axe(ctx, fmt.Sprintf("login at %dpx", width))
		}
	}

	// Sorting and filtering without JS.
	{
		nojs := newBrowser(t)
		ctx := nojs.timeout()
		nojs.disableJS(ctx)
		nojs.open(ctx, admin+"/login", false)
		login(nojs, ctx, adminTestPassword)
		waitVisible(nojs, ctx, "#stats-products")
		nojs.do(ctx, "sort by likes", chromedp.Click(chromedp.CSS(`#stats-products th a[href*="sort=likes"]`)))
		waitVisible(nojs, ctx, `#stats-products th[aria-sort] a[href*="sort=likes"]`)
		likes := eval[[]string](nojs, ctx, `[...document.querySelectorAll('#stats-products tbody .likes')].map(e => e.textContent.trim())`)
		if len(likes) < 2 || likes[0] != "2" {
			t.Errorf("sorted by likes: %v, want 2 first", likes)
		}
		nojs.do(ctx, "filter", chromedp.SetValue(chromedp.CSS("#filter-text"), products[1].Name),
			chromedp.Submit(chromedp.CSS("#product-filters")))
		waitVisible(nojs, ctx, `#stats-products caption`)
		nojs.waitFor(ctx, "filtered", `location.search.includes('q=')`, `location.href`)
		if rows := eval[int](nojs, ctx, `document.querySelectorAll('#stats-products tbody tr[id]').length`); rows != 1 {
			t.Errorf("filtered by %q: %d rows, want 1", products[1].Name, rows)
		}
		nojs.axe(ctx, "dashboard filtered without JS")
		if eval[bool](nojs, ctx, `window.htmx !== undefined`) {
			t.Error("htmx ran with JS disabled")
		}
	}
}

// TestAdmin_LoggedOut checks every admin URL of a running phoenix all
// without a session: a page is redirected to the login form, an htmx
// request gets HX-Redirect, and no statistic comes back.
func TestAdmin_LoggedOut(t *testing.T) {
	p := startStack(t)
	client := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/admin", "/admin?sort=name", "/admin/export.csv", "/admin/stats/totals", "/admin/stats/products",
		"/admin/stats/products?sort=likes&dir=asc", "/admin/stats/categories", "/admin/stats/chart", "/admin/stats/worker"} {
		for _, htmx := range []bool{false, true} {
			req, err := http.NewRequest("GET", p.url("admin", path), nil)
			if err != nil {
				t.Fatal(err)
			}
			if htmx {
				req.Header.Set("HX-Request", "true")
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case htmx && (resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/login"):
				t.Errorf("htmx GET %s: %d, HX-Redirect %q; want 401 and /login", path, resp.StatusCode, resp.Header.Get("HX-Redirect"))
			case !htmx && (resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=")):
				t.Errorf("GET %s: %d to %q; want 303 to /login?next=", path, resp.StatusCode, resp.Header.Get("Location"))
			}
			if strings.Contains(string(body), "stat-value") || strings.Contains(string(body), "product-row-") {
				t.Errorf("GET %s (htmx %v) leaked statistics", path, htmx)
			}
		}
	}
}
