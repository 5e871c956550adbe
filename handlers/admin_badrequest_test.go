package handlers_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"phoenix/testkit"
)

var csrfFieldRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// startLiveAdmin serves an admin on a real 127.0.0.1 listener, on a seeded
// PostgreSQL database, with signed CSRF tokens as phoenix admin has them.
func startLiveAdmin(tb testing.TB) (*liveShop, *sqlx.DB) {
	tb.Helper()
	url := testkit.Postgres(tb)
	stats := testkit.StatsAt(tb, url)
	seed(tb, stats)
	log, logs := testkit.Logger()
	app, _ := adminApp(tb, stats, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln) }()
	tb.Cleanup(func() {
		if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
			tb.Error(err)
		}
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return &liveShop{addr: ln.Addr().String(), logs: logs}, testkit.DB(tb, url)
}

// pgState fingerprints every table, so that any change shows.
func pgState(tb testing.TB, db *sqlx.DB) string {
	tb.Helper()
	var out strings.Builder
	for _, table := range []string{"products", "like_events", "product_counters", "like_buckets", "totals", "worker_status"} {
		var n int64
		var sum string
		err := db.QueryRowContext(context.Background(),
			fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM %s t`, table)).Scan(&n, &sum)
		if err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&out, "%s:%d:%s ", table, n, sum)
	}
	return out.String()
}

// TestAdmin_BadRequests sends hostile and malformed requests to a running
// admin: each gets its intended 4xx, none starts or ends a session,
// PostgreSQL does not change, and nothing fails at Error level or panics.
func TestAdmin_BadRequests(t *testing.T) {
	a, db := startLiveAdmin(t)
	// A CSRF token as the login form gives it, and a session as a login does.
	resp, body := a.raw(t, "GET /login HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
	m := csrfFieldRe.FindStringSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("GET /login: status %d, CSRF field found %v", resp.StatusCode, m != nil)
	}
	token, nonce := m[1], ""
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_csrf" {
			nonce = c.Value
		}
	}
	form := func(password string) string {
		return url.Values{"csrf": {token}, "password": {password}}.Encode()
	}
	post, get := rawRequests("admin").post, rawRequests("admin").get
	withToken := "Cookie: phoenix_csrf=" + nonce + "\r\n"
	resp, _ = a.raw(t, post("/login", withToken, form(testPassword)))
	var session string
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_admin" {
			session = c.Value
		}
	}
	if resp.StatusCode != 303 || session == "" {
		t.Fatalf("login: status %d, session cookie %q", resp.StatusCode, session)
	}
	withSession := "Cookie: phoenix_admin=" + session + "\r\n"
	both := "Cookie: phoenix_admin=" + session + "; phoenix_csrf=" + nonce + "\r\n"
	tampered := session[:len(session)/2] + strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, session[len(session)/2:len(session)/2+1]) + session[len(session)/2+1:]
	huge := strings.Repeat("a", 20<<10)
	forged := strings.Repeat("A", len(token))

	tests := []struct {
		name, req string
		want      int
	}{
		// No session, or a bad one.
		{"totals without session", get("/admin/stats/totals", ""), 303},
		{"products without session, htmx", get("/admin/stats/products", "HX-Request: true\r\n"), 401},
		{"chart without session", get("/admin/stats/chart?product=brake-pads", ""), 303},
		{"export without session", get("/admin/export.csv", ""), 303},
		{"tampered session cookie", get("/admin/stats/totals", "Cookie: phoenix_admin="+tampered+"\r\n"), 303},
		{"plaintext forged session", get("/admin", "Cookie: phoenix_admin=v1|9999999999|00000000000000000000000000000000\r\n"), 303},
		{"session cookie of junk", get("/admin/stats/worker", "Cookie: phoenix_admin=%00%ff\r\n"), 303},
		{"oversized cookie", get("/admin", "Cookie: phoenix_admin="+huge+"\r\n"), 431},
		// Junk parameters, with a session.
		{"unknown sort", get("/admin/stats/products?sort=password", withSession), 400},
		{"unknown direction", get("/admin?sort=name&dir=sideways", withSession), 400},
		{"unknown category", get("/admin/stats/products?category=Nope", withSession), 400},
		{"unknown chart product", get("/admin/stats/chart?product=../../etc/passwd", withSession), 400},
		{"invalid UTF-8 filter", get("/admin?q=%ff%fe", withSession), 400},
		{"export with junk sort", get("/admin/export.csv?sort=%27%3BDROP%20TABLE%20totals", withSession), 400},
		{"huge query string", get("/admin/stats/products?q="+huge, withSession), 431},
		{"control character in the filter", get("/admin?q=a%01b", withSession), 400},
		{"control character in next", get("/login?next=/admin%0d%0aX:1", ""), 400},
		// Wrong methods.
		{"DELETE dashboard", "DELETE /admin HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n" + withSession + "\r\n", 405},
		{"POST on a statistic", post("/admin/stats/totals", both+"X-CSRF-Token: "+token+"\r\n", ""), 405},
		{"PUT login", strings.Replace(post("/login", both, form(testPassword)), "POST", "PUT", 1), 405},
		{"PUT login without session", strings.Replace(post("/login", withToken, form(testPassword)), "POST", "PUT", 1), 303},
		{"GET logout", get("/logout", withSession), 405},
		// CSRF on login and logout.
		{"login without token", post("/login", "", "password="+url.QueryEscape(testPassword)), 403},
		{"login token without its cookie", post("/login", "", form(testPassword)), 403},
		{"login token of another visitor", post("/login", "Cookie: phoenix_csrf="+flip(nonce, 0)+"\r\n", form(testPassword)), 403},
		{"login forged token", post("/login", "Cookie: phoenix_csrf="+forged+"\r\n", url.Values{"csrf": {forged}, "password": {testPassword}}.Encode()), 403},
		{"login token in query string", post("/login?csrf="+token, withToken, "password="+url.QueryEscape(testPassword)), 403},
		{"login from another site", post("/login", withToken+"Origin: http://evil.example\r\n", form(testPassword)), 403},
		{"logout without token", post("/logout", withSession, ""), 403},
		{"logout with another token", post("/logout", both, "csrf="+forged), 403},
		// Passwords.
		{"wrong password", post("/login", withToken, form("guess")), 401},
		{"empty password", post("/login", withToken, form("")), 401},
		{"password with NUL", post("/login", withToken, form(testPassword+"\x00")), 401},
		{"oversized password", post("/login", withToken, form(huge)), 413},
		// Malformed.
		{"garbage request line", "GARBAGE\r\n\r\n", 400},
		{"made-up method", "BREW /admin HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n", 400},
	}
	before := pgState(t, db)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := a.raw(t, tt.req)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %.300s", resp.StatusCode, tt.want, body)
			}
			if resp.StatusCode >= 500 {
				t.Errorf("server error %d", resp.StatusCode)
			}
			for _, c := range resp.Cookies() {
				if c.Name == "phoenix_admin" {
					t.Errorf("session cookie set or cleared: %q", c.String())
				}
			}
			if strings.Contains(body, "stat-value") || strings.Contains(body, "product-row-") {
				t.Errorf("statistics in the answer")
			}
			if after := pgState(t, db); after != before {
				t.Errorf("postgres changed:\n%s\n->\n%s", before, after)
			}
		})
	}
	if len(tests) < 15 {
		t.Errorf("only %d hostile requests", len(tests))
	}
	// The session still works: no refusal ended it.
	if resp, _ := a.raw(t, get("/admin/stats/totals", withSession+"HX-Request: true\r\n")); resp.StatusCode != 200 {
		t.Errorf("session after the table: status %d, want 200", resp.StatusCode)
	}
	// A fragment's address opened in the browser shows the dashboard.
	resp, _ = a.raw(t, get("/admin/stats/products?sort=name", withSession))
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/admin?sort=name" {
		t.Errorf("fragment without htmx: %d to %q, want 303 to /admin?sort=name", resp.StatusCode, resp.Header.Get("Location"))
	}
	logs := a.logs.String()
	if strings.Contains(logs, "level=ERROR") || strings.Contains(strings.ToLower(logs), "panic") {
		t.Errorf("server logged errors:\n%s", logs)
	}
}
