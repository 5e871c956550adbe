package handlers

import (
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

// FuzzLocalPath checks that the redirect after a no-JS Like can only go to
// a path on this site, whatever next holds: browsers drop tabs and newlines
// from URLs and read a backslash as a slash, so neither may sneak in a
// second leading slash ("//evil.example" is another site).
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "/?category=Brakes", "//evil.example/", "/\\evil", "https://evil.example/", "javascript:alert(1)",
		"/\t/evil.example", "/%2F/evil", "/\r\nSet-Cookie: x=1", "/a?b=c#d", "", "\x00", "/" + strings.Repeat("a", 3000)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := localPath(next, "/fallback")
		if got == "/fallback" {
			return
		}
		if got != next {
			t.Fatalf("localPath(%q) = %q, neither next nor the fallback", next, got)
		}
		if strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("accepted control characters in %q", got)
		}
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(got)
		if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("accepted %q, which a browser reads as %q", got, browser)
		}
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" {
			t.Fatalf("accepted %q, which parses to host %q scheme %q (%v)", got, u.Host, u.Scheme, err)
		}
	})
}

// FuzzCurrentURL checks the HX-Current-URL header the same way: only the
// path and query of this site come out.
func FuzzCurrentURL(f *testing.F) {
	for _, s := range []string{"http://localhost:8080/?q=pads", "https://evil.example//evil", "http://x/\\evil", "::", "", "http://[::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got := currentURL(raw, "/fallback")
		if got != "/fallback" && localPath(got, "/x") != got {
			t.Fatalf("currentURL(%q) = %q, not a local path", raw, got)
		}
	})
}

// FuzzShopperID checks the shopper cookie check: only cookies the shop
// signed pass, and their ids are 128-bit lower-case hex, so a cookie cannot
// smuggle anything into a Redis key or a stream entry.
func FuzzShopperID(f *testing.F) {
	shoppers, err := NewShoppers([]byte("a-fuzz-secret-that-is-at-least-32-bytes"))
	if err != nil {
		f.Fatal(err)
	}
	id := "0123456789abcdef0123456789abcdef"
	for _, s := range []string{id, shoppers.cookie(id), strings.ToUpper(shoppers.cookie(id)), "", "zz", id + ".", "." + id,
		shoppers.cookie(id) + "\n", shoppers.cookie(id)[:54], "0123456789abcdef:123456789abcdef"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cookie string) {
		id, ok := shoppers.verify(cookie)
		if !ok {
			return
		}
		b, err := hex.DecodeString(id)
		if err != nil || len(b) != 16 || hex.EncodeToString(b) != id || shoppers.cookie(id) != cookie {
			t.Fatalf("accepted %q", cookie)
		}
	})
}
