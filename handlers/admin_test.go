package handlers_test

import (
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jmoiron/sqlx"

	"phoenix"
	"phoenix/handlers"
	"phoenix/store"
	"phoenix/testkit"
)

const (
	testPassword = "correct horse battery"
	testSecret   = "0123456789abcdef0123456789abcdef-test"
)

// adminFixture is an admin app on a real, migrated PostgreSQL database.
type adminFixture struct {
	app      *fiber.App
	stats    *store.Stats
	db       *sqlx.DB // the same database, for the tests' checks
	sessions *handlers.Sessions
	admin    *handlers.Admin
	token    string // a CSRF token the login form issued
	nonce    string // the visitor nonce that token is bound to
}

func newAdmin(tb testing.TB, opts ...func(*handlers.Admin)) *adminFixture {
	tb.Helper()
	return newAdminOn(tb, testkit.Postgres(tb), opts...)
}

// newAdminOn builds the fixture on dbURL; opts change the admin before its
// routes are registered.
func newAdminOn(tb testing.TB, dbURL string, opts ...func(*handlers.Admin)) *adminFixture {
	tb.Helper()
	stats := testkit.StatsAt(tb, dbURL)
	app, admin := adminApp(tb, stats, slog.New(slog.NewTextHandler(io.Discard, nil)), opts...)
	f := &adminFixture{app: app, stats: stats, db: testkit.DB(tb, dbURL), sessions: admin.Sessions, admin: admin}
	resp, body := f.get(tb, "/login", "", false)
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_csrf" {
			f.nonce = c.Value
		}
	}
	if m := csrfField.FindStringSubmatch(body); m != nil {
		f.token = m[1]
	}
	if f.token == "" || f.nonce == "" {
		tb.Fatalf("GET /login gave no token or no phoenix_csrf cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	return f
}

// adminApp assembles the admin app on stats as phoenix admin does, with
// sessions and CSRF tokens under the test secret, behind a proxy that
// app.Test's peer address (0.0.0.0) stands for, so that X-Real-IP names the
// client; opts change the admin before its routes are registered.
func adminApp(tb testing.TB, stats *store.Stats, log *slog.Logger, opts ...func(*handlers.Admin)) (*fiber.App, *handlers.Admin) {
	tb.Helper()
	app, err := handlers.NewApp(handlers.AppConfig{Name: "admin", Views: phoenix.Views(), Assets: phoenix.Assets(), Locales: phoenix.Locales(), Log: log, Instance: "test-1", Section: "admin",
		ProxyHeader: "X-Real-IP", TrustedProxies: []string{"0.0.0.0"}})
	if err != nil {
		tb.Fatal(err)
	}
	sessions, err := handlers.NewSessions(testPassword, []byte(testSecret), time.Hour, false)
	if err != nil {
		tb.Fatal(err)
	}
	(&handlers.Health{Checks: []handlers.Check{{Name: "postgres", Ping: stats.Ping}}}).Routes(app)
	csrf, err := handlers.NewCSRF([]byte(testSecret), "admin")
	if err != nil {
		tb.Fatal(err)
	}
	admin := &handlers.Admin{Stats: stats, Sessions: sessions, Log: log, Instance: "test-1", StaleAfter: 30 * time.Second, CSRF: csrf}
	for _, o := range opts {
		o(admin)
	}
	admin.Routes(app)
	return app, admin
}

// request is one test request: cookie "" means no session; htmx adds the
// HX-Request header; header adds more. A POST carries the fixture's CSRF
// cookie and token unless noCSRF.
type request struct {
	method, target string
	form           url.Values
	cookie         string
	htmx           bool
	header         map[string]string
	noCSRF         bool
}

func (f *adminFixture) do(tb testing.TB, r request) (*http.Response, string) {
	tb.Helper()
	var body io.Reader
	if r.form != nil {
		body = strings.NewReader(r.form.Encode())
	}
	req := httptest.NewRequest(r.method, r.target, body)
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "phoenix_admin", Value: r.cookie})
	}
	if r.htmx {
		req.Header.Set("HX-Request", "true")
	}
	if r.method == "POST" && !r.noCSRF {
		req.AddCookie(&http.Cookie{Name: "phoenix_csrf", Value: f.nonce})
		req.Header.Set("X-CSRF-Token", f.token)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	return serve(tb, f.app, req)
}

func (f *adminFixture) get(tb testing.TB, target, cookie string, htmx bool) (*http.Response, string) {
	tb.Helper()
	return f.do(tb, request{method: "GET", target: target, cookie: cookie, htmx: htmx})
}

// login posts the password and returns the session cookie's value.
func (f *adminFixture) login(tb testing.TB) string {
	tb.Helper()
	resp, _ := f.do(tb, request{method: "POST", target: "/login", form: url.Values{"password": {testPassword}}})
	if resp.StatusCode != fiber.StatusSeeOther {
		tb.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_admin" && c.Value != "" {
			return c.Value
		}
	}
	tb.Fatal("login: no session cookie")
	return ""
}

// seed records a small shop: four products in three categories, likes now
// and two hours ago, and a worker that reported just now.
func seed(tb testing.TB, s *store.Stats) {
	tb.Helper()
	now := time.Now()
	testkit.SetProducts(tb, s, seedProducts("Wiper blade")...)
	// 6 likes two hours ago, 5 of them shoppers' first: 5 shoppers in all.
	testkit.AddFirstLikes(tb, s, "brake-pads", 5, now.Add(-2*time.Hour))
	testkit.AddLikes(tb, s, "brake-pads", 1, 0, now.Add(-2*time.Hour))
	testkit.AddLikes(tb, s, "brake-pads", 2, 1, now)
	testkit.AddLikes(tb, s, "brake-disc", 3, 0, now)
	testkit.AddLikes(tb, s, "oil-filter", 1, 0, now)
	testkit.SetWorker(tb, s, "worker-1", now, 4, 250)
}

// seedProducts is seed's catalog, the wiper named wiper.
func seedProducts(wiper string) []store.Product {
	return []store.Product{testkit.Part("brake-pads", "Brake pads", "Brakes"), testkit.Part("brake-disc", `Disc, "vented" – 280 mm`, "Brakes"),
		testkit.Part("oil-filter", "=Oil filter", "Filters"), testkit.Part("wiper", wiper, "Visibility")}
}

func TestAdmin_Login(t *testing.T) {
	f := newAdmin(t)
	t.Run("form", func(t *testing.T) {
		resp, body := f.get(t, "/login?next=/admin/stats/totals", "", false)
		if resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) || !strings.Contains(body, `value="/admin/stats/totals"`) {
			t.Fatalf("status %d, body lacks the password field or next:\n%s", resp.StatusCode, body)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		resp, body := f.do(t, request{method: "POST", target: "/login", form: url.Values{"password": {"guess"}}})
		if resp.StatusCode != fiber.StatusUnauthorized || !strings.Contains(body, "Wrong password.") {
			t.Errorf("status %d, want 401 and a message", resp.StatusCode)
		}
		for _, c := range resp.Cookies() {
			if c.Name == "phoenix_admin" {
				t.Errorf("wrong password set a session cookie")
			}
		}
	})
	t.Run("right password", func(t *testing.T) {
		resp, _ := f.do(t, request{method: "POST", target: "/login", form: url.Values{"password": {testPassword}, "next": {"/admin?sort=name"}}})
		if resp.StatusCode != fiber.StatusSeeOther || resp.Header.Get("Location") != "/admin?sort=name" {
			t.Fatalf("status %d to %q, want 303 to /admin?sort=name", resp.StatusCode, resp.Header.Get("Location"))
		}
		var set string
		for _, c := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(c, "phoenix_admin=") {
				set = c
			}
		}
		for _, want := range []string{"phoenix_admin=", "HttpOnly", "SameSite=Strict", "path=/"} {
			if !strings.Contains(set, want) {
				t.Errorf("Set-Cookie %q lacks %q", set, want)
			}
		}
		if strings.Contains(set, "v1|") {
			t.Errorf("session cookie is not encrypted: %q", set)
		}
		cookie := f.login(t)
		if resp, _ := f.get(t, "/admin", cookie, false); resp.StatusCode != 200 {
			t.Errorf("dashboard with the session: status %d, want 200", resp.StatusCode)
		}
		if resp, _ := f.get(t, "/login", cookie, false); resp.StatusCode != fiber.StatusSeeOther {
			t.Errorf("login form with a session: status %d, want 303 to the dashboard", resp.StatusCode)
		}
	})
	t.Run("next elsewhere", func(t *testing.T) {
		resp, _ := f.do(t, request{method: "POST", target: "/login", form: url.Values{"password": {testPassword}, "next": {"//evil.example/x"}}})
		if got := resp.Header.Get("Location"); got != "/admin" {
			t.Errorf("redirected to %q, want /admin", got)
		}
	})
	t.Run("forged, expired and old-password cookies", func(t *testing.T) {
		cookie := f.login(t)
		forged := cookie[:len(cookie)-4] + "AAA="
		later, err := handlers.NewSessions(testPassword, []byte(testSecret), time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		later.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		otherPassword, err := handlers.NewSessions("a new password", []byte(testSecret), time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := f.get(t, "/admin", forged, false); resp.StatusCode != fiber.StatusSeeOther {
			t.Errorf("forged cookie: status %d, want 303 to login", resp.StatusCode)
		}
		for name, s := range map[string]*handlers.Sessions{"expired": later, "old password": otherPassword} {
			f.admin.Sessions = s
			if resp, _ := f.get(t, "/admin", cookie, false); resp.StatusCode != fiber.StatusSeeOther {
				t.Errorf("%s: status %d, want 303 to login", name, resp.StatusCode)
			}
		}
		f.admin.Sessions = f.sessions
	})
	t.Run("logout", func(t *testing.T) {
		cookie := f.login(t)
		resp, _ := f.do(t, request{method: "POST", target: "/logout", cookie: cookie})
		if resp.StatusCode != fiber.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Fatalf("status %d to %q, want 303 to /login", resp.StatusCode, resp.Header.Get("Location"))
		}
		var cleared bool
		for _, c := range resp.Cookies() {
			cleared = cleared || (c.Name == "phoenix_admin" && c.Expires.Before(time.Now()))
		}
		if !cleared {
			t.Errorf("logout did not expire the cookie: %q", resp.Header.Get("Set-Cookie"))
		}
	})
}

// TestAdmin_LoginLimit: five wrong passwords from one client, counted in
// PostgreSQL, lock that client out on every replica, and nobody else.
func TestAdmin_LoginLimit(t *testing.T) {
	dbURL := testkit.Postgres(t)
	replicas := []*adminFixture{newAdminOn(t, dbURL), newAdminOn(t, dbURL)}
	from := func(ip, password string) request {
		return request{method: "POST", target: "/login", form: url.Values{"password": {password}}, header: map[string]string{"X-Real-IP": ip}}
	}
	const guesser, admin = "203.0.113.7", "198.51.100.2"
	for i := range 5 { // alternating replicas: the count is shared
		if resp, _ := replicas[i%2].do(t, from(guesser, "guess")); resp.StatusCode != fiber.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401", i+1, resp.StatusCode)
		}
	}
	for i, f := range replicas {
		resp, body := f.do(t, from(guesser, "guess"))
		if resp.StatusCode != fiber.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("replica %d, sixth attempt: status %d, Retry-After %q; want 429 with Retry-After", i+1, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(body, "Too many failed logins") {
			t.Errorf("429 page lacks its message")
		}
		if resp, _ := f.do(t, from(guesser, testPassword)); resp.StatusCode != fiber.StatusTooManyRequests {
			t.Errorf("replica %d, right password while limited: status %d, want 429", i+1, resp.StatusCode)
		}
	}
	t.Run("another client", func(t *testing.T) {
		if resp, _ := replicas[0].do(t, from(admin, "typo")); resp.StatusCode != fiber.StatusUnauthorized {
			t.Errorf("another client's wrong password: status %d, want 401", resp.StatusCode)
		}
		if resp, _ := replicas[1].do(t, from(admin, testPassword)); resp.StatusCode != fiber.StatusSeeOther {
			t.Errorf("another client's right password: status %d, want 303", resp.StatusCode)
		}
	})
}

// TestAdmin_RequiresSession requests every admin URL without a session: no
// statistic may come back.
func TestAdmin_RequiresSession(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	urls := []string{"/", "/admin", "/admin?sort=name", "/admin/stats/totals", "/admin/stats/products", "/admin/stats/categories",
		"/admin/stats/chart", "/admin/stats/chart?product=brake-pads", "/admin/stats/worker", "/admin/export.csv", "/admin/nope", "/nope"}
	for _, u := range urls {
		t.Run(u, func(t *testing.T) {
			resp, body := f.get(t, u, "", false)
			if resp.StatusCode != fiber.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
				t.Errorf("page: status %d to %q, want 303 to /login?next=", resp.StatusCode, resp.Header.Get("Location"))
			}
			if strings.Contains(body, "Brake") {
				t.Errorf("page leaked statistics: %q", body)
			}
			resp, body = f.get(t, u, "", true)
			if resp.StatusCode != fiber.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/login" || body != "Unauthorized" {
				t.Errorf("htmx: status %d, HX-Redirect %q, body %q; want 401, /login, no data", resp.StatusCode, resp.Header.Get("HX-Redirect"), body)
			}
			resp, _ = f.get(t, u, "not-a-session", false)
			if resp.StatusCode != fiber.StatusSeeOther {
				t.Errorf("junk cookie: status %d, want 303", resp.StatusCode)
			}
		})
	}
	t.Run("POST /logout", func(t *testing.T) {
		if resp, _ := f.do(t, request{method: "POST", target: "/logout"}); resp.Header.Get("Location") != "/login" {
			t.Errorf("got %d to %q, want a redirect to /login", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	for _, u := range []string{"/healthz", "/readyz", "/assets/css/phoenix.css", "/login", "/robots.txt"} {
		if resp, _ := f.get(t, u, "", false); resp.StatusCode != 200 {
			t.Errorf("%s without a session: status %d, want 200", u, resp.StatusCode)
		}
	}
}

func TestAdmin_Dashboard(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	cookie := f.login(t)
	t.Run("full page", func(t *testing.T) {
		resp, body := f.get(t, "/admin", cookie, false)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		for _, want := range []string{"<!doctype html>", `id="stats-totals"`, `id="stats-products"`, `id="stats-categories"`,
			`id="stats-chart"`, `id="worker-status"`, `hx-trigger="every 2s"`, `id="product-row-brake-pads"`, "<svg", `action="/logout"`,
			`href="/admin/export.csv"`, "Brake pads", "Disc, &#34;vented&#34; – 280 mm", ">4 events<"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if strings.Contains(body, "style=") || strings.Contains(body, "may be stale") {
			t.Errorf("page has an inline style or a stale notice")
		}
	})
	fragments := map[string][]string{
		"/admin/stats/totals": {`id="stats-totals"`, `id="total-likes"><p class="stat-label">Likes</p><p class="stat-value">11</p>`,
			`id="total-shoppers"><p class="stat-label">Shoppers</p><p class="stat-value">11</p>`},
		"/admin/stats/products?sort=name":         {`id="stats-products"`, `id="product-row-wiper"`, "&#43;3"},
		"/admin/stats/categories":                 {`id="stats-categories"`, "Brakes", "90.9%"},
		"/admin/stats/chart?product=brake-disc":   {`id="stats-chart"`, "<svg", "3 likes, 0 unlikes", `Disc, &#34;vented&#34; – 280 mm: 3 likes`},
		"/admin/stats/worker":                     {`id="worker-status"`, "4 events", "250 ms"},
		"/admin?category=Brakes&q=disc&sort=hour": {`id="dashboard"`, "1 of 4 products"},
	}
	for u, wants := range fragments {
		t.Run(u, func(t *testing.T) {
			resp, body := f.get(t, u, cookie, true)
			if resp.StatusCode != 200 || strings.Contains(body, "<!doctype") {
				t.Fatalf("status %d, want 200 and a fragment without the layout", resp.StatusCode)
			}
			for _, want := range wants {
				if !strings.Contains(body, want) {
					t.Errorf("fragment lacks %q:\n%s", want, body)
				}
			}
			if v := resp.Header.Get("Vary"); !strings.Contains(v, "HX-Request") || !strings.Contains(v, "Cookie") {
				t.Errorf("Vary = %q, want HX-Request and Cookie", v)
			}
		})
	}
}

func TestAdmin_Products(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	cookie := f.login(t)
	order := func(t *testing.T, target string) string {
		t.Helper()
		resp, body := f.get(t, target, cookie, true)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		var ids []string
		for _, part := range strings.Split(body, `id="product-row-`)[1:] {
			ids = append(ids, part[:strings.IndexByte(part, '"')])
		}
		return strings.Join(ids, " ")
	}
	tests := []struct{ name, in, want string }{
		{"ranked", "", "brake-pads brake-disc oil-filter wiper"},
		{"by name", "?sort=name", "oil-filter brake-pads brake-disc wiper"},
		{"by name, descending", "?sort=name&dir=desc", "wiper brake-disc brake-pads oil-filter"},
		{"by change in the last hour", "?sort=hour", "brake-disc brake-pads oil-filter wiper"},
		{"by likes, ascending", "?sort=likes&dir=asc", "wiper oil-filter brake-disc brake-pads"},
		{"category", "?category=Brakes", "brake-pads brake-disc"},
		{"text", "?q=FILTER", "oil-filter"},
		{"category and text", "?category=Brakes&q=nothing", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := order(t, "/admin/stats/products"+tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	junk := []string{"?sort=price", "?sort=name&dir=up", "?category=Tyres", "?category=" + strings.Repeat("x", 61),
		"?q=" + strings.Repeat("x", 101), "?product=NOPE", "?product=not-a-product", "?q=%ff"}
	for _, q := range junk {
		for _, path := range []string{"/admin", "/admin/stats/products", "/admin/stats/chart", "/admin/export.csv"} {
			if path == "/admin/stats/chart" && strings.HasPrefix(q, "?category") {
				continue // the chart does not filter by category
			}
			if resp, _ := f.get(t, path+q, cookie, false); resp.StatusCode != fiber.StatusBadRequest {
				t.Errorf("%s%s: status %d, want 400", path, q, resp.StatusCode)
			}
		}
	}
}

func TestAdmin_ETag(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	cookie := f.login(t)
	for _, u := range []string{"/admin/stats/totals", "/admin/stats/products?sort=name", "/admin/stats/categories", "/admin/stats/chart", "/admin/stats/worker"} {
		t.Run(u, func(t *testing.T) {
			// Compressed or not, the tag brings a 304.
			for _, enc := range []string{"", "br", "gzip"} {
				resp, _ := f.do(t, request{method: "GET", target: u, cookie: cookie, htmx: true, header: map[string]string{"Accept-Encoding": enc}})
				etag := resp.Header.Get("ETag")
				if etag == "" || resp.Header.Get("Cache-Control") != "private, no-cache" {
					t.Fatalf("%q: ETag %q, Cache-Control %q; want an ETag and private, no-cache", enc, etag, resp.Header.Get("Cache-Control"))
				}
				resp, body := f.do(t, request{method: "GET", target: u, cookie: cookie, htmx: true, header: map[string]string{"If-None-Match": etag, "Accept-Encoding": enc}})
				if resp.StatusCode != fiber.StatusNotModified || body != "" {
					t.Errorf("%q: unchanged: status %d with %d bytes, want 304 and no body", enc, resp.StatusCode, len(body))
				}
			}
		})
	}
	t.Run("changed", func(t *testing.T) {
		resp, _ := f.get(t, "/admin/stats/totals", cookie, true)
		etag := resp.Header.Get("ETag")
		testkit.AddLikes(t, f.stats, "wiper", 1, 0, time.Now())
		resp, body := f.do(t, request{method: "GET", target: "/admin/stats/totals", cookie: cookie, htmx: true, header: map[string]string{"If-None-Match": etag}})
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || !strings.Contains(body, `<p class="stat-value">12</p>`) {
			t.Errorf("after a like: status %d, ETag %q (was %q); want 200, a new ETag and 12 likes", resp.StatusCode, resp.Header.Get("ETag"), etag)
		}
	})
}

// TestAdmin_DataETag checks the ETag taken from the data's version: each
// input of a fragment that changes without a Like event (a worker
// heartbeat, a renamed product) still changes it.
func TestAdmin_DataETag(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	cookie := f.login(t)
	tagOf := func(u string) string {
		t.Helper()
		resp, _ := f.get(t, u, cookie, true)
		tag := resp.Header.Get("ETag")
		if !strings.HasPrefix(tag, `W/"d`) {
			t.Fatalf("%s: ETag %q, want a data version tag", u, tag)
		}
		return tag
	}
	for _, tt := range []struct {
		name, target string
		change       func()
	}{
		{"heartbeat", "/admin/stats/worker", func() { testkit.SetWorker(t, f.stats, "worker-1", time.Now().Add(time.Second), 0, 1) }},
		{"renamed product", "/admin/stats/products", func() { testkit.SetProducts(t, f.stats, seedProducts("Rear wiper blade")...) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tag := tagOf(tt.target)
			if other := tagOf("/admin/stats/totals"); other == tag {
				t.Errorf("%s and the totals share the tag %s", tt.target, tag)
			}
			tt.change()
			resp, _ := f.do(t, request{method: "GET", target: tt.target, cookie: cookie, htmx: true, header: map[string]string{"If-None-Match": tag}})
			if resp.StatusCode != fiber.StatusOK || resp.Header.Get("ETag") == tag {
				t.Errorf("after the change: status %d, ETag %q (was %q); want 200 and a new tag", resp.StatusCode, resp.Header.Get("ETag"), tag)
			}
		})
	}
}

// TestAdmin_FlowETag: a shop's heartbeat changes the flow view alone, so
// only the flow fragment's tag moves; the statistics still answer 304.
func TestAdmin_FlowETag(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	cookie := f.login(t)
	tags := map[string]string{}
	for _, u := range []string{"/admin/stats/totals", "/admin/stats/products", "/admin/stats/flow"} {
		resp, _ := f.get(t, u, cookie, true)
		if tags[u] = resp.Header.Get("ETag"); !strings.HasPrefix(tags[u], `W/"d`) {
			t.Fatalf("%s: ETag %q, want a data version tag", u, tags[u])
		}
	}
	beat := store.Beat{Role: store.RoleShop, Name: "shop-7", Version: "v1", At: time.Now()}
	if err := f.stats.RecordBeats(context.Background(), []store.Beat{beat}); err != nil {
		t.Fatal(err)
	}
	for u, tag := range tags {
		resp, _ := f.do(t, request{method: "GET", target: u, cookie: cookie, htmx: true, header: map[string]string{"If-None-Match": tag}})
		want := fiber.StatusNotModified
		if u == "/admin/stats/flow" {
			want = fiber.StatusOK
		}
		if resp.StatusCode != want {
			t.Errorf("%s after a shop's heartbeat: status %d, want %d", u, resp.StatusCode, want)
		}
	}
}

func TestAdmin_Export(t *testing.T) {
	f := newAdmin(t)
	seed(t, f.stats)
	cookie := f.login(t)
	resp, body := f.get(t, "/admin/export.csv?sort=name", cookie, false)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	wantName := `attachment; filename="phoenix-likes-` + time.Now().UTC().Format("2006-01-02") + `.csv"`
	if cd := resp.Header.Get("Content-Disposition"); cd != wantName {
		t.Errorf("Content-Disposition %q, want %q", cd, wantName)
	}
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, body)
	}
	want := [][]string{
		{"rank", "product_id", "product", "category", "likes", "share_percent", "change_last_hour"},
		{"3", "oil-filter", "'=Oil filter", "Filters", "1", "9.09", "1"},
		{"1", "brake-pads", "Brake pads", "Brakes", "7", "63.64", "1"},
		{"2", "brake-disc", `Disc, "vented" – 280 mm`, "Brakes", "3", "27.27", "3"},
		{"4", "wiper", "Wiper blade", "Visibility", "0", "0.00", "0"},
	}
	if len(records) != len(want) {
		t.Fatalf("got %d records, want %d:\n%s", len(records), len(want), body)
	}
	for i := range want {
		if strings.Join(records[i], "|") != strings.Join(want[i], "|") {
			t.Errorf("record %d: got %q, want %q", i, records[i], want[i])
		}
	}
	if !strings.Contains(body, `"Disc, ""vented"" – 280 mm"`) {
		t.Errorf("quotes and commas not quoted: %s", body)
	}
	_, body = f.get(t, "/admin/export.csv?category=Filters", cookie, false)
	if n := strings.Count(body, "\n"); n != 2 {
		t.Errorf("filtered export has %d lines, want 2:\n%s", n, body)
	}
}

func TestAdmin_WorkerStale(t *testing.T) {
	f := newAdmin(t)
	cookie := f.login(t)
	_, body := f.get(t, "/admin/stats/worker", cookie, true)
	if !strings.Contains(body, "no worker has reported yet") {
		t.Errorf("no worker: lacks the notice:\n%s", body)
	}
	old := time.Now().Add(-5 * time.Minute)
	testkit.SetWorker(t, f.stats, "worker-1", old, 7, 0)
	_, body = f.get(t, "/admin/stats/worker", cookie, true)
	if !strings.Contains(body, "Numbers may be stale since") || !strings.Contains(body, old.UTC().Format("15:04:05")) {
		t.Errorf("old heartbeat: lacks the stale notice with its time:\n%s", body)
	}
	testkit.SetWorker(t, f.stats, "worker-1", time.Now(), 0, 0)
	_, body = f.get(t, "/admin", cookie, false)
	if strings.Contains(body, "may be stale") {
		t.Errorf("fresh heartbeat: still a stale notice")
	}
}

// TestAdmin_PostgresDown stops PostgreSQL under a running dashboard: it
// shows the last data with a notice, never a 500, and recovers by itself.
func TestAdmin_PostgresDown(t *testing.T) {
	ctx := context.Background()
	pg := testkit.PostgresServer(t)
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	f := newAdminOn(t, pg.URL("phoenix"))
	seed(t, f.stats)
	cookie := f.login(t)
	urls := []string{"/admin/stats/totals", "/admin/stats/products", "/admin/stats/categories", "/admin/stats/chart", "/admin/stats/worker"}
	for _, u := range urls { // the dashboard has seen every fragment once
		f.get(t, u, cookie, true)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Run("fragments", func(t *testing.T) {
		for _, u := range urls {
			resp, body := f.get(t, u, cookie, true)
			if resp.StatusCode != 200 || !strings.Contains(body, "Numbers may be stale since") || !strings.Contains(body, "database cannot be reached") {
				t.Errorf("%s: status %d, want 200 with the stale notice:\n%s", u, resp.StatusCode, body)
			}
		}
		_, body := f.get(t, "/admin/stats/totals", cookie, true)
		if !strings.Contains(body, `<p class="stat-value">11</p>`) {
			t.Errorf("the last totals are gone:\n%s", body)
		}
	})
	t.Run("page", func(t *testing.T) {
		resp, body := f.get(t, "/admin", cookie, false)
		if resp.StatusCode != 200 || !strings.Contains(body, "Numbers may be stale since") || !strings.Contains(body, "Brake pads") {
			t.Errorf("status %d, want 200 with the last data and the notice", resp.StatusCode)
		}
	})
	t.Run("no data yet", func(t *testing.T) {
		app, _ := adminApp(t, f.stats, slog.New(slog.NewTextHandler(io.Discard, nil)))
		g := &adminFixture{app: app}
		resp, body := g.get(t, "/admin", cookie, false)
		if resp.StatusCode != 200 || !strings.Contains(body, "Statistics are unavailable") {
			t.Errorf("status %d, want 200 saying the statistics are unavailable", resp.StatusCode)
		}
	})
	t.Run("export and readiness", func(t *testing.T) {
		if resp, body := f.get(t, "/admin/export.csv", cookie, false); resp.StatusCode != fiber.StatusServiceUnavailable || !strings.Contains(body, "cannot be reached") {
			t.Errorf("export: status %d, want 503 with a message", resp.StatusCode)
		}
		if resp, _ := f.get(t, "/readyz", "", false); resp.StatusCode != fiber.StatusServiceUnavailable {
			t.Errorf("readyz: status %d, want 503", resp.StatusCode)
		}
	})
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("recovers", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, body := f.get(t, "/admin/stats/totals", cookie, true)
			if resp.StatusCode == 200 && !strings.Contains(body, "stale") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("still stale after PostgreSQL came back:\n%s", body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestAdmin_RepairNotice shows a recent repair of Redis from PostgreSQL on
// the worker strip, in both languages, and an old one no more.
func TestAdmin_RepairNotice(t *testing.T) {
	f := newAdmin(t)
	cookie := f.login(t)
	testkit.SetWorker(t, f.stats, "worker-1", time.Now(), 0, 0)
	worker := func(lang string) string {
		_, body := f.do(t, request{method: "GET", target: "/admin/stats/worker", cookie: cookie, htmx: true,
			header: map[string]string{"Accept-Language": lang}})
		return body
	}
	if body := worker("en"); strings.Contains(body, "repaired from PostgreSQL") {
		t.Fatalf("no repair yet, but a notice:\n%s", body)
	}
	at := time.Now().Add(-time.Minute)
	if _, err := f.db.Exec(`INSERT INTO redis_repairs (shard, reason, repaired_by, shoppers_fixed, products_recounted, started_at, finished_at)
VALUES (0, 'consumer group missing', 'test', 17, 4, $1, $1), (0, 'old', 'test', 99, 9, now() - interval '3 days', now() - interval '3 days')`, at); err != nil {
		t.Fatal(err)
	}
	body := worker("en")
	if !strings.Contains(body, "Redis lost writes on shard 0 and was repaired from PostgreSQL (17 shoppers fixed, 4 products recounted)") ||
		!strings.Contains(body, at.UTC().Format("15:04:05")) || strings.Contains(body, "99 shoppers") {
		t.Errorf("English: lacks the recent repair with its time, or shows the old one:\n%s", body)
	}
	if body := worker("zh-CN"); !strings.Contains(body, "已按 PostgreSQL 的记录修复（修复 17 位顾客，重新计数 4 件商品）") {
		t.Errorf("Chinese: lacks the repair notice:\n%s", body)
	}
}
