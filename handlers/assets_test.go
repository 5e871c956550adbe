package handlers_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"

	"phoenix"
	"phoenix/handlers"
)

// decode undoes a Content-Encoding.
func decode(tb testing.TB, encoding string, body []byte) []byte {
	tb.Helper()
	var r io.Reader
	switch encoding {
	case "":
		return body
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			tb.Fatal(err)
		}
		r = zr
	default:
		tb.Fatalf("unknown Content-Encoding %q", encoding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("decode %s: %v", encoding, err)
	}
	return out
}

// TestAssets_Precompressed checks that every text asset has .br and .gz
// forms in the repository and that they decode to the asset as it is now.
func TestAssets_Precompressed(t *testing.T) {
	assets := phoenix.Assets()
	n := 0
	err := fs.WalkDir(assets, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !handlers.Precompressible(path) {
			return err
		}
		n++
		want, err := fs.ReadFile(assets, path)
		if err != nil {
			return err
		}
		for ext, enc := range map[string]string{".br": "br", ".gz": "gzip"} {
			b, err := fs.ReadFile(assets, path+ext)
			if err != nil || !bytes.Equal(decode(t, enc, b), want) {
				t.Errorf("assets/%s%s is missing or stale: run go generate . (%v)", path, ext, err)
			}
		}
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("walked %d text assets: %v", n, err)
	}
}

// get sends a GET with the given Accept-Encoding ("" sends none) and
// returns the answer with its raw body.
func get(tb testing.TB, f *shopFixture, target, acceptEncoding string, header map[string]string) (*http.Response, []byte) {
	tb.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.AddCookie(&http.Cookie{Name: "phoenix_shopper", Value: f.cookie})
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, body := serve(tb, f.app, req)
	return resp, []byte(body)
}

func TestShop_Compression(t *testing.T) {
	f := newShop(t)
	// A CSRF token (expiry.mac) moves with the clock's second, so two
	// renders of one page may differ in it alone.
	token := regexp.MustCompile(`[0-9]{10}\.[A-Za-z0-9_-]{43}`)
	tests := []struct{ accept, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"gzip, deflate, br, zstd", "br"},
		{"identity", ""},
		{"gzip;q=0", ""},
	}
	t.Run("html", func(t *testing.T) {
		_, plain := get(t, f, "/?q=brake", "", nil)
		if !token.Match(plain) {
			t.Fatal("the page carries no CSRF token to set aside")
		}
		plain = token.ReplaceAll(plain, nil)
		for _, tt := range tests {
			resp, body := get(t, f, "/?q=brake", tt.accept, nil)
			if got := resp.Header.Get("Content-Encoding"); got != tt.want {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want %q", tt.accept, got, tt.want)
				continue
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Accept-Encoding %q: Vary = %q, want Accept-Encoding in it", tt.accept, resp.Header.Get("Vary"))
			}
			if got := decode(t, tt.want, body); !bytes.Equal(token.ReplaceAll(got, nil), plain) {
				t.Errorf("Accept-Encoding %q: the decoded page differs from the plain one", tt.accept)
			}
			if tt.want != "" && len(body) >= len(plain)/2 {
				t.Errorf("Accept-Encoding %q: %d bytes for a %d-byte page", tt.accept, len(body), len(plain))
			}
		}
	})
	t.Run("precompressed asset", func(t *testing.T) {
		const name = "css/pico-2.1.1.custom.min.css"
		want, err := fs.ReadFile(phoenix.Assets(), name)
		if err != nil {
			t.Fatal(err)
		}
		tags := map[string]bool{}
		for _, tt := range tests {
			resp, body := get(t, f, "/assets/"+name+"?v=x", tt.accept, nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != tt.want {
				t.Errorf("Accept-Encoding %q: status %d, Content-Encoding %q, want 200 %q", tt.accept, resp.StatusCode, resp.Header.Get("Content-Encoding"), tt.want)
				continue
			}
			if !bytes.Equal(decode(t, tt.want, body), want) {
				t.Errorf("Accept-Encoding %q: the decoded asset differs from %s", tt.accept, name)
			}
			if stored, _ := fs.ReadFile(phoenix.Assets(), name+map[string]string{"br": ".br", "gzip": ".gz"}[tt.want]); tt.want != "" && !bytes.Equal(body, stored) {
				t.Errorf("Accept-Encoding %q: not the precompressed file", tt.accept)
			}
			h := resp.Header
			if !strings.Contains(h.Get("Vary"), "Accept-Encoding") || !strings.HasPrefix(h.Get("Content-Type"), "text/css") ||
				!strings.Contains(h.Get("Cache-Control"), "max-age=31536000") {
				t.Errorf("Accept-Encoding %q: headers %v", tt.accept, h)
			}
			tag := h.Get("ETag")
			tags[tag+tt.want] = true
			resp, body = get(t, f, "/assets/"+name, tt.accept, map[string]string{"If-None-Match": tag})
			if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
				t.Errorf("Accept-Encoding %q: If-None-Match %s gave %d, want 304", tt.accept, tag, resp.StatusCode)
			}
		}
		if len(tags) != 3 {
			t.Errorf("ETags %v: want one per form (identity, br, gzip)", tags)
		}
	})
	t.Run("HEAD and unknown", func(t *testing.T) {
		req := httptest.NewRequest("HEAD", "/assets/js/htmx-2.0.11.min.js", nil)
		req.Header.Set("Accept-Encoding", "br")
		resp, body := serve(t, f.app, req)
		if resp.StatusCode != 200 || body != "" || resp.Header.Get("Content-Encoding") != "br" {
			t.Errorf("HEAD: status %d, %d bytes, Content-Encoding %q", resp.StatusCode, len(body), resp.Header.Get("Content-Encoding"))
		}
		resp, _ = get(t, f, "/assets/css/phoenix.css.br", "br", nil)
		if resp.StatusCode != 404 {
			t.Errorf("a .br form by name: status %d, want 404", resp.StatusCode)
		}
	})
}

// Crawlers (and Lighthouse's SEO audit) read /robots.txt as plain text, one
// "field: value" per line; an HTML page there counts as a broken file.
func TestShop_RobotsTxt(t *testing.T) {
	f := newShop(t)
	resp, body := get(t, f, "/robots.txt", "", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, type %q, want 200 text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	for _, l := range lines {
		if k, _, ok := strings.Cut(l, ":"); !ok || (k != "User-agent" && k != "Allow" && k != "Disallow") {
			t.Errorf("line %q is not a robots.txt rule", l)
		}
	}
	if lines[0] != "User-agent: *" {
		t.Errorf("first line %q, want User-agent: *", lines[0])
	}
}
