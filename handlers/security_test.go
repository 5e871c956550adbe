package handlers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"phoenix/handlers"
	"phoenix/store"
	"phoenix/testkit"
)

// send runs req through the app and returns the answer and its body.
func (f *shopFixture) send(tb testing.TB, req *http.Request) (*http.Response, string) {
	tb.Helper()
	return serve(tb, f.app, req)
}

func likeRequest(id string, form url.Values, cookies map[string]string, header map[string]string) *http.Request {
	req := httptest.NewRequest("POST", "/products/"+id+"/like", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return req
}

// TestShop_CSRF checks the shop's tokens: bound to the shopper, refused
// from another site, never taken from the query string.
func TestShop_CSRF(t *testing.T) {
	f := newShop(t)
	p := f.catalog.Products()[2]
	shopper := map[string]string{"phoenix_shopper": f.cookie}
	shoppers, csrf := shopKeys(t)
	other := "fedcba9876543210fedcba9876543210"
	refused := []struct {
		name    string
		form    url.Values
		cookies map[string]string
		header  map[string]string
	}{
		{"cross-site form without token", url.Values{"next": {"/"}}, shopper, map[string]string{"Origin": "http://evil.example"}},
		{"cross-site form with a stolen token", url.Values{"csrf": {f.token}}, shopper, map[string]string{"Origin": "http://evil.example"}},
		{"null origin", url.Values{"csrf": {f.token}}, shopper, map[string]string{"Origin": "null"}},
		{"no token", url.Values{"next": {"/"}}, shopper, nil},
		{"another shopper's token", url.Values{"csrf": {csrf.Token(other)}}, shopper, nil},
		{"token with another shopper's cookie", url.Values{"csrf": {f.token}}, map[string]string{"phoenix_shopper": shoppers.SignedCookie(other)}, nil},
		{"forged token", url.Values{"csrf": {"9999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}, shopper, nil},
		{"empty token", url.Values{"csrf": {""}}, shopper, nil},
		{"htmx without header", nil, shopper, map[string]string{"HX-Request": "true"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := f.streamLen(t)
			resp, body := f.send(t, likeRequest(p.ID, tt.form, tt.cookies, tt.header))
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
			if !strings.Contains(body, "did not come from this site") {
				t.Errorf("body lacks a clear message: %.300s", body)
			}
			if tt.header["HX-Request"] == "true" && resp.Header.Get("HX-Retarget") != "#flash" {
				t.Error("htmx refusal should be retargeted to #flash")
			}
			if got := f.streamLen(t); got != before {
				t.Errorf("stream grew from %d to %d", before, got)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		expired := handlers.ExpiredToken(csrf, testShopper)
		resp, body := f.send(t, likeRequest(p.ID, url.Values{"csrf": {expired}}, shopper, nil))
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "expired") {
			t.Errorf("status %d, want 403 saying it expired: %.300s", resp.StatusCode, body)
		}
	})
	t.Run("same-site form with field", func(t *testing.T) {
		resp, _ := f.send(t, likeRequest(p.ID, url.Values{"csrf": {f.token}, "next": {"/"}}, shopper, nil))
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d, want 303", resp.StatusCode)
		}
	})
	t.Run("htmx header with same origin", func(t *testing.T) {
		resp, _ := f.send(t, likeRequest(p.ID, nil, shopper, map[string]string{"HX-Request": "true", "X-CSRF-Token": f.token, "Origin": "http://example.com"}))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
	})
	t.Run("pages carry a token for their shopper", func(t *testing.T) {
		_, body := f.do(t, "GET", "/products/"+p.ID, nil, false)
		m := csrfField.FindStringSubmatch(body)
		if m == nil || !strings.Contains(body, `hx-headers='{"X-CSRF-Token":"`+m[1]+`"}'`) {
			t.Fatal("page lacks the token in its form or its hx-headers")
		}
		resp, _ := f.send(t, likeRequest(p.ID, url.Values{"csrf": {m[1]}}, shopper, nil))
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("Like with the page's token: status %d, want 303", resp.StatusCode)
		}
	})
}

// TestCSRF_RoleScoped checks that each role's tokens are its own: a shop
// token for the very visitor the admin knows is refused by the admin, and
// an admin token for the shopper is refused by a Like.
func TestCSRF_RoleScoped(t *testing.T) {
	_, shopCSRF := shopKeys(t)
	adminCSRF, err := handlers.NewCSRF([]byte(testSecret), "admin")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("shop token on the admin login", func(t *testing.T) {
		a := newAdmin(t)
		for _, tt := range []struct {
			name  string
			token string
			want  int
		}{{"admin token", adminCSRF.Token(a.nonce), http.StatusSeeOther}, {"shop token", shopCSRF.Token(a.nonce), http.StatusForbidden}} {
			req := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"csrf": {tt.token}, "password": {testPassword}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(&http.Cookie{Name: "phoenix_csrf", Value: a.nonce})
			if resp, body := serve(t, a.app, req); resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d: %.200s", tt.name, resp.StatusCode, tt.want, body)
			}
		}
	})
	t.Run("admin token on a Like", func(t *testing.T) {
		f := newShop(t)
		p := f.catalog.Products()[0]
		for _, tt := range []struct {
			name  string
			token string
			want  int
		}{{"admin token", adminCSRF.Token(testShopper), http.StatusForbidden}, {"shop token", shopCSRF.Token(testShopper), http.StatusSeeOther}} {
			resp, body := f.send(t, likeRequest(p.ID, url.Values{"csrf": {tt.token}}, map[string]string{"phoenix_shopper": f.cookie}, nil))
			if resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d: %.200s", tt.name, resp.StatusCode, tt.want, body)
			}
		}
	})
}

func cookieHeader(resp *http.Response, name string) string {
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, name+"=") {
			return c
		}
	}
	return ""
}

func TestShop_Headers(t *testing.T) {
	t.Run("plain http", func(t *testing.T) {
		f := newShop(t)
		resp, _ := f.do(t, "GET", "/", nil, false)
		want := map[string]string{
			"Content-Security-Policy": "script-src 'self'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
			"X-Frame-Options":         "DENY",
		}
		for k, v := range want {
			if !strings.Contains(resp.Header.Get(k), v) {
				t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("CSP = %q", csp)
		}
		if h := resp.Header.Get("Strict-Transport-Security"); h != "" {
			t.Errorf("HSTS %q over plain HTTP", h)
		}
	})
	t.Run("secure", func(t *testing.T) {
		f := newShop(t, func(s *shopSetup) {
			s.app.Secure = true
			s.shop.SecureCookie = true
		})
		resp, err := f.app.Test(httptest.NewRequest("GET", "/", nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		if h := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(h, "max-age=") {
			t.Errorf("HSTS = %q, want max-age", h)
		}
		for _, name := range []string{"phoenix_shopper"} {
			if c := cookieHeader(resp, name); !strings.Contains(strings.ToLower(c), "; secure") || !strings.Contains(c, "HttpOnly") {
				t.Errorf("%s cookie = %q, want Secure and HttpOnly", name, c)
			}
		}
	})
}

// TestShop_LikeLimit floods two shop replicas that share one Redis: the
// limit holds across both, and the over-limit answers say so.
func TestShop_LikeLimit(t *testing.T) {
	rdb, prefix := testkit.Redis(t)
	const burst = 20
	// One Like a minute after the burst: a flood of a few seconds gets
	// exactly the burst through, whatever the scheduling.
	slow := store.Rate{Interval: time.Minute, Burst: burst}
	shoppers, csrf := shopKeys(t)
	for _, tt := range []struct {
		name     string
		limit    store.LikesOptions
		shoppers int
	}{
		{"per shopper", store.LikesOptions{PerShopper: slow}, 1},
		{"per address", store.LikesOptions{PerIP: slow}, 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := prefix + strings.ReplaceAll(tt.name, " ", "-") + ":"
			limit := func(s *shopSetup) { s.limit = tt.limit }
			replicas := []*shopFixture{newShopOn(t, rdb, p, limit), newShopOn(t, rdb, p, limit)}
			ids := replicas[0].catalog.IDs()
			var accepted, limited atomic.Int64
			var wg sync.WaitGroup
			for r, f := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 60 {
						shopper := fmt.Sprintf("%032x", i%tt.shoppers)
						req := likeRequest(ids[(i*2+r)%len(ids)], nil,
							map[string]string{"phoenix_shopper": shoppers.SignedCookie(shopper)},
							map[string]string{"HX-Request": "true", "X-CSRF-Token": csrf.Token(shopper)})
						resp, body := f.send(t, req)
						switch resp.StatusCode {
						case http.StatusOK:
							accepted.Add(1)
						case http.StatusTooManyRequests:
							limited.Add(1)
							if resp.Header.Get("Retry-After") == "" || resp.Header.Get("HX-Retarget") != "#flash" || !strings.Contains(body, "Too many likes") {
								t.Errorf("429 without Retry-After, #flash or message: %v %.200s", resp.Header, body)
							}
						default:
							t.Errorf("status %d: %.200s", resp.StatusCode, body)
						}
					}
				}()
			}
			wg.Wait()
			if accepted.Load() != burst || limited.Load() != 120-burst {
				t.Errorf("accepted %d, limited %d; want %d and %d", accepted.Load(), limited.Load(), burst, 120-burst)
			}
		})
	}
}
