package handlers_test

import (
	"net/http"
	"strings"
	"testing"

	"phoenix/store"
)

// headerSafe drops what net/http would refuse to send in a header, so the
// fuzzer spends its time on what reaches the server.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// FuzzShop_Like sends random Like requests (product id, next, shopper
// cookie, CSRF token, body) through the shop on real Redis. No answer may
// be a 5xx other than 503, nothing may panic (the recover middleware would
// make it a 500), and the stream grows, by one at most, only when a known
// product was liked.
func FuzzShop_Like(f *testing.F) {
	fx := newShop(f, func(s *shopSetup) { s.limit = store.LikesOptions{} })
	valid := fx.catalog.IDs()[0]
	f.Add(valid, "/", fx.cookie, uint8(0), "")
	f.Add(valid, "//evil.example", fx.cookie, uint8(1), "")
	f.Add(valid, "/", testShopper, uint8(0), "")
	f.Add("no-such-part", "/", fx.cookie, uint8(0), "")
	f.Add("../../etc/passwd", "/", "", uint8(2), "csrf=x")
	f.Add(valid, "/\r\nSet-Cookie: a=b", "ZZ", uint8(1), "next=%0d%0a")
	f.Add(strings.Repeat("a", 70), "/", fx.cookie, uint8(0), strings.Repeat("x", 20000))
	f.Add("%ff%fe", "/\xff", fx.cookie+"\xff", uint8(3), "csrf=\xff&next=\xfe")
	f.Fuzz(func(t *testing.T, id, next, shopper string, mode uint8, body string) {
		form := "next=" + next
		if mode%4 == 1 {
			form += "&csrf=" + fx.token
		}
		if body != "" {
			form = body + "&" + form
		}
		req, err := http.NewRequest("POST", "http://example.com/products/"+id+"/like", strings.NewReader(form))
		if err != nil {
			return // not a request a client could send
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Cookie", headerSafe("phoenix_shopper="+shopper))
		switch mode % 4 {
		case 0:
			req.Header.Set("X-CSRF-Token", fx.token)
			req.Header.Set("HX-Request", "true")
		case 2:
			req.Header.Set("X-CSRF-Token", headerSafe(body))
		}
		before := fx.streamLen(t)
		resp, err := fx.app.Test(req, 10000) // a hang is a failure too
		if err != nil && (strings.Contains(err.Error(), "body size exceeds") || strings.Contains(err.Error(), "small read buffer")) {
			return // refused by the server's limits (413 or 431 on a real connection)
		}
		if err != nil {
			t.Fatalf("app.Test: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d for id %q next %q", resp.StatusCode, id, next)
		}
		grew := fx.streamLen(t) - before
		_, known := fx.catalog.Product(id)
		ok := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusSeeOther
		if grew < 0 || grew > 1 || (grew == 1 && !(known && ok)) {
			t.Fatalf("stream grew by %d for id %q (known %v) with status %d", grew, id, known, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "" && (!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//")) {
			t.Fatalf("redirect to %q", loc)
		}
	})
}

// FuzzShop_Browse sends random catalog queries: the answer is the page
// (200) or a clear refusal (400), never a server error.
func FuzzShop_Browse(f *testing.F) {
	fx := newShop(f)
	for _, q := range []string{"", "category=Brakes", "q=pads", "q=" + strings.Repeat("a", 101), "category=%ff", "q=%00", "category=Brakes&category=Engine", "q=<script>"} {
		f.Add(q, false)
	}
	f.Fuzz(func(t *testing.T, query string, htmx bool) {
		req, err := http.NewRequest("GET", "http://example.com/?"+query, nil)
		if err != nil {
			return
		}
		if htmx {
			req.Header.Set("HX-Request", "true")
			req.Header.Set("HX-Target", "product-grid")
		}
		resp, err := fx.app.Test(req, -1)
		if err != nil {
			t.Fatalf("app.Test: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("GET /?%s: status %d", query, resp.StatusCode)
		}
	})
}
