package handlers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"phoenix/handlers"
	"phoenix/store"
)

// visitAnew views path as a browser without cookies and returns the answer,
// its shopper cookie ("" if none) and its page's CSRF token.
func (f *shopFixture) visitAnew(tb testing.TB, path string) (*http.Response, string, string, string) {
	tb.Helper()
	resp, body := serve(tb, f.app, httptest.NewRequest("GET", path, nil))
	cookie, token := "", ""
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_shopper" {
			cookie = c.Value
		}
	}
	if m := csrfField.FindStringSubmatch(body); m != nil {
		token = m[1]
	}
	return resp, body, cookie, token
}

// keys counts the Redis keys of the shop.
func (f *shopFixture) keys(tb testing.TB) int {
	tb.Helper()
	keys, err := f.rdb.Keys(context.Background(), f.prefix+"*").Result()
	if err != nil {
		tb.Fatal(err)
	}
	return len(keys)
}

// TestShop_NewShopperLimit is one address creating shoppers in a loop, each
// liking a part: it is cut off at the limit, its pages still render with a
// notice, and Redis stops growing.
func TestShop_NewShopperLimit(t *testing.T) {
	const burst = 5
	f := newShop(t, func(s *shopSetup) {
		s.limit.NewShoppersPerIP = store.Rate{Interval: time.Minute, Burst: burst}
	})
	p := f.catalog.Products()[0]
	admitted, keysAtLimit := 0, 0
	for i := range 4 * burst {
		resp, body, cookie, token := f.visitAnew(t, "/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("visit %d: status %d", i+1, resp.StatusCode)
		}
		if cookie == "" {
			if !strings.Contains(body, "Too many new visitors") || token != "" {
				t.Errorf("visit %d: no shopper id, but no notice (or a token anyway)", i+1)
			}
		} else {
			admitted++
		}
		req := likeRequest(p.ID, url.Values{"csrf": {token}}, map[string]string{"phoenix_shopper": cookie}, nil)
		resp, _ = f.send(t, req)
		if want := map[bool]int{true: http.StatusSeeOther, false: http.StatusBadRequest}[cookie != ""]; resp.StatusCode != want {
			t.Errorf("visit %d: Like status %d, want %d", i+1, resp.StatusCode, want)
		}
		if i == burst-1 {
			keysAtLimit = f.keys(t)
		}
	}
	if admitted != burst {
		t.Errorf("%d shoppers admitted, want %d", admitted, burst)
	}
	// Rate-limit keys may expire meanwhile: fewer is fine, more is not.
	if n := f.keys(t); n > keysAtLimit {
		t.Errorf("Redis keys grew from %d at the limit to %d", keysAtLimit, n)
	}
	counts, _, err := f.likes.View(context.Background(), "", []string{p.ID})
	if err != nil || counts[p.ID] != burst {
		t.Errorf("count %d (%v), want %d", counts[p.ID], err, burst)
	}
}

// TestShop_LegacyShopper checks unsigned ids from before signing: one with
// likes in Redis keeps them under a signed cookie, an unknown one gets a
// new id, and neither can Like before the page view that signs it.
func TestShop_LegacyShopper(t *testing.T) {
	f := newShop(t)
	shoppers, _ := shopKeys(t)
	p := f.catalog.Products()[3]
	const known, unknown = "00000000000000000000000000000abc", "00000000000000000000000000000def"
	if _, err := f.likes.Like(context.Background(), known, p.ID); err != nil {
		t.Fatal(err)
	}
	visit := func(id string) (string, string) {
		req := httptest.NewRequest("GET", "/products/"+p.ID, nil)
		req.AddCookie(&http.Cookie{Name: "phoenix_shopper", Value: id})
		resp, body := serve(t, f.app, req)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		return cookieValue(resp, "phoenix_shopper"), body
	}
	t.Run("known", func(t *testing.T) {
		if resp, _ := f.send(t, likeRequest(p.ID, nil, map[string]string{"phoenix_shopper": known}, nil)); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Like with the unsigned id: status %d, want 400", resp.StatusCode)
		}
		cookie, body := visit(known)
		if cookie != shoppers.SignedCookie(known) {
			t.Errorf("cookie %q, want the signed form of %s", cookie, known)
		}
		if !strings.Contains(body, `aria-pressed="true"`) {
			t.Error("the upgraded shopper lost their like")
		}
	})
	t.Run("unknown", func(t *testing.T) {
		cookie, body := visit(unknown)
		if id, _, _ := strings.Cut(cookie, "."); cookie == "" || id == unknown {
			t.Errorf("cookie %q, want a new id", cookie)
		}
		if strings.Contains(body, `aria-pressed="true"`) {
			t.Error("a new shopper likes something")
		}
	})
}

func cookieValue(resp *http.Response, name string) string {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// TestShop_Busy checks back-pressure: at the backlog bound a Like answers
// 503 "busy" with Retry-After, changes nothing, and is counted as busy.
func TestShop_Busy(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newShop(t, func(s *shopSetup) {
		s.limit.MaxBacklog = 2
		s.shop.Metrics = handlers.NewMetrics(reg, "shop")
	})
	ids := f.catalog.IDs()
	for _, id := range ids[:2] {
		if resp, _ := f.do(t, "POST", "/products/"+id+"/like", nil, true); resp.StatusCode != http.StatusOK {
			t.Fatalf("Like under the bound: status %d", resp.StatusCode)
		}
	}
	for _, htmx := range []bool{true, false} {
		resp, body := f.do(t, "POST", "/products/"+ids[2]+"/like", url.Values{"next": {"/"}}, htmx)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "busy, please retry") {
			t.Errorf("htmx %v at the bound: status %d, Retry-After %q: %.200s", htmx, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if n := f.streamLen(t); n != 2 {
		t.Errorf("stream has %d events, want 2", n)
	}
	_, liked, err := f.likes.View(context.Background(), testShopper, nil)
	if err != nil || liked[ids[2]] {
		t.Errorf("the refused Like was saved (%v)", err)
	}
	if got := likesCounted(t, reg, "busy"); got != 2 {
		t.Errorf("phoenix_likes_total{outcome=busy} = %v, want 2", got)
	}
}

// likesCounted reads phoenix_likes_total{outcome} from reg.
func likesCounted(tb testing.TB, reg *prometheus.Registry, outcome string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	for _, mf := range families {
		if mf.GetName() != "phoenix_likes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// TestShop_Private checks that no cache keeps a personal answer.
func TestShop_Private(t *testing.T) {
	f := newShop(t)
	p := f.catalog.Products()[0]
	for _, tt := range []struct {
		method, target string
		htmx           bool
	}{
		{"GET", "/", false}, {"GET", "/", true}, {"GET", "/products/" + p.ID, false}, {"GET", "/likes", false},
		{"POST", "/products/" + p.ID + "/like", true}, {"POST", "/products/" + p.ID + "/unlike", false},
		{"GET", "/products/no-such-part", false},
	} {
		resp, _ := f.do(t, tt.method, tt.target, nil, tt.htmx)
		if got := resp.Header.Get("Cache-Control"); got != "private, no-store" {
			t.Errorf("%s %s (htmx %v): Cache-Control %q, want private, no-store", tt.method, tt.target, tt.htmx, got)
		}
	}
}
