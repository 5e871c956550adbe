package handlers_test

import (
	"context"
	"html/template"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"phoenix"
	"phoenix/handlers"
	"phoenix/store"
	"phoenix/testkit"
)

func TestMain(m *testing.M) { os.Exit(testkit.Run(m)) }

// shopFixture is a shop app on real Redis, with the Redis client and the
// stream key so tests can check what was written.
type shopFixture struct {
	app     *fiber.App
	rdb     *redis.Client
	prefix  string // of every key this shop writes
	likes   *store.Likes
	catalog *store.Catalog
	cookie  string // testShopper's signed cookie, sent with every request
	token   string // testShopper's CSRF token, sent with every unsafe request
}

func newShop(tb testing.TB, opts ...func(*shopSetup)) *shopFixture {
	tb.Helper()
	rdb, prefix := testkit.Redis(tb)
	return newShopOn(tb, rdb, prefix, opts...)
}

// shopSetup is what newShopOn builds the shop from; options change it.
type shopSetup struct {
	app   handlers.AppConfig
	shop  *handlers.Shop
	limit store.LikesOptions // the shop's Likes are opened with these
	// tracer, when set, traces the app and the Like's script, as phoenix
	// shop does with tracing on.
	tracer trace.TracerProvider
}

// newShopOn builds a shop with production-like protections (signed shopper
// ids and CSRF tokens, rate limits in Redis); opts change the setup before
// the app is built.
func newShopOn(tb testing.TB, rdb *redis.Client, prefix string, opts ...func(*shopSetup)) *shopFixture {
	tb.Helper()
	catalog, err := store.DefaultCatalog()
	if err != nil {
		tb.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shoppers, csrf := shopKeys(tb)
	s := shopSetup{
		app:   handlers.AppConfig{Name: "shop", Views: phoenix.Views(), Assets: phoenix.Assets(), Locales: phoenix.Locales(), Log: log, Instance: "test-1", Section: "shop"},
		shop:  &handlers.Shop{Catalog: catalog, Shoppers: shoppers, CSRF: csrf, Log: log, Instance: "test-1"},
		limit: store.LikesOptions{PerShopper: store.PerSecond(10)},
	}
	for _, o := range opts {
		o(&s)
	}
	likes := store.NewLikes(rdb, prefix, s.limit)
	s.shop.Likes = likes
	if s.tracer != nil {
		s.app.Tracer = s.tracer
		if err := likes.Trace(s.tracer); err != nil {
			tb.Fatal(err)
		}
	}
	app, err := handlers.NewApp(s.app)
	if err != nil {
		tb.Fatal(err)
	}
	s.shop.Routes(app)
	f := &shopFixture{app: app, rdb: rdb, prefix: prefix, likes: likes, catalog: s.shop.Catalog, cookie: shoppers.SignedCookie(testShopper)}
	f.token = f.csrfToken(tb)
	return f
}

// shopKeys returns the shop's shopper ids and CSRF tokens under testSecret.
func shopKeys(tb testing.TB) (*handlers.Shoppers, *handlers.CSRF) {
	tb.Helper()
	shoppers, err := handlers.NewShoppers([]byte(testSecret))
	if err != nil {
		tb.Fatal(err)
	}
	csrf, err := handlers.NewCSRF([]byte(testSecret), "shop")
	if err != nil {
		tb.Fatal(err)
	}
	return shoppers, csrf
}

// serve runs req through app and returns the answer and its whole body.
func serve(tb testing.TB, app *fiber.App, req *http.Request) (*http.Response, string) {
	tb.Helper()
	resp, err := app.Test(req, -1)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(b)
}

// csrfToken fetches a page as testShopper and returns the CSRF token of
// its forms, as a page would hold it.
func (f *shopFixture) csrfToken(tb testing.TB) string {
	tb.Helper()
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: "phoenix_shopper", Value: f.cookie})
	_, body := serve(tb, f.app, req)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		tb.Fatalf("GET /: no CSRF token in the page")
	}
	return m[1]
}

// csrfField finds the CSRF token in a page's forms.
var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

const testShopper = "0123456789abcdef0123456789abcdef"

// do sends a request as testShopper; htmx adds the HX-Request header. An
// unsafe request carries the shopper's CSRF token as a page would: in the
// X-CSRF-Token header for htmx, in the csrf form field for a plain form.
func (f *shopFixture) do(tb testing.TB, method, target string, form url.Values, htmx bool) (*http.Response, string) {
	tb.Helper()
	return serve(tb, f.app, f.request(method, target, form, htmx))
}

// request is the request that do sends.
func (f *shopFixture) request(method, target string, form url.Values, htmx bool) *http.Request {
	unsafe := method != "GET" && f.token != ""
	if unsafe && !htmx && form != nil {
		form = maps.Clone(form)
		form.Set("csrf", f.token)
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.AddCookie(&http.Cookie{Name: "phoenix_shopper", Value: f.cookie})
	if htmx {
		req.Header.Set("HX-Request", "true")
	}
	if unsafe && (htmx || form == nil) {
		req.Header.Set("X-CSRF-Token", f.token)
	}
	return req
}

func (f *shopFixture) streamLen(tb testing.TB) int64 {
	tb.Helper()
	n, err := f.rdb.XLen(context.Background(), f.likes.StreamKey()).Result()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestShop_Browse(t *testing.T) {
	f := newShop(t)
	first := f.catalog.Products()[0]
	t.Run("full page", func(t *testing.T) {
		resp, body := f.do(t, "GET", "/", nil, false)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		for _, want := range []string{"<!doctype html>", `id="product-grid"`, `id="like-` + first.ID + `"`, `aria-pressed="false"`, "test-1"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		if n, want := strings.Count(body, `class="product-card"`), min(24, len(f.catalog.Products())); n != want {
			t.Errorf("got %d cards, want %d (one page)", n, want)
		}
		if v := resp.Header.Get("Vary"); !strings.Contains(v, "HX-Request") {
			t.Errorf("Vary = %q, want HX-Request", v)
		}
	})
	t.Run("grid fragment", func(t *testing.T) {
		req := httptest.NewRequest("GET", "/?category="+url.QueryEscape(first.Category), nil)
		req.Header.Set("HX-Request", "true")
		req.Header.Set("HX-Target", "product-grid")
		_, body := serve(t, f.app, req)
		if strings.Contains(body, "<html") || !strings.HasPrefix(strings.TrimSpace(body), `<section id="product-grid"`) {
			t.Fatalf("want only the grid, got %.200s", body)
		}
		for _, p := range f.catalog.Products() {
			if in := strings.Contains(body, `id="product-`+p.ID+`"`); in != (p.Category == first.Category) {
				t.Errorf("product %s in grid = %v", p.ID, in)
			}
		}
	})
	t.Run("category filter", func(t *testing.T) {
		// Twice each: the second answer comes from the filter cache.
		for range 2 {
			for _, cat := range append([]string{""}, f.catalog.Categories()...) {
				_, body := f.do(t, "GET", "/?category="+url.QueryEscape(cat), nil, false)
				want := `hx-push-url="true" aria-current="page">All</a>`
				if cat != "" {
					want = `hx-push-url="true" aria-current="page">` + template.HTMLEscapeString(cat) + `</a>`
				}
				// Two: the site nav's Catalog link, and the filter's.
				if strings.Count(body, `aria-current="page"`) != 2 || !strings.Contains(body, want) {
					t.Errorf("category %q: the filter does not mark it alone as current", cat)
				}
			}
		}
		_, body := f.do(t, "GET", "/?q=pads&category="+url.QueryEscape(first.Category), nil, false)
		if !strings.Contains(body, "&amp;q=pads") {
			t.Errorf("with a search, the filter's links lose it")
		}
	})
	t.Run("search", func(t *testing.T) {
		_, body := f.do(t, "GET", "/?q="+url.QueryEscape(strings.ToUpper(first.Name)), nil, false)
		if !strings.Contains(body, `id="product-`+first.ID+`"`) {
			t.Errorf("search for %q misses it", first.Name)
		}
		_, body = f.do(t, "GET", "/?q=zzzznothing", nil, false)
		if strings.Contains(body, `class="product-card"`) || !strings.Contains(body, "No parts match") {
			t.Error("search for nonsense should find nothing and say so")
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, target := range []string{"/?category=Nope", "/?q=" + strings.Repeat("a", 101), "/products/NOPE", "/products/no-such-part", "/products/" + strings.Repeat("a", 65)} {
			resp, _ := f.do(t, "GET", target, nil, false)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("GET %s: status %d, want 4xx", target, resp.StatusCode)
			}
		}
	})
}

func TestShop_Like(t *testing.T) {
	f := newShop(t)
	p := f.catalog.Products()[1]
	t.Run("first click", func(t *testing.T) {
		resp, body := f.do(t, "POST", "/products/"+p.ID+"/like", url.Values{"next": {"/"}}, true)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
		}
		if !strings.Contains(body, `aria-pressed="true"`) || !strings.Contains(body, `<span class="like-count" title="likes">1</span>`) {
			t.Errorf("fragment does not show a pressed button with 1 like: %s", body)
		}
		if strings.Contains(body, "<html") {
			t.Error("htmx answer should be the fragment only")
		}
		if got := f.streamLen(t); got != 1 {
			t.Errorf("stream has %d events, want 1", got)
		}
	})
	t.Run("double click", func(t *testing.T) {
		f.do(t, "POST", "/products/"+p.ID+"/like", nil, true)
		if got := f.streamLen(t); got != 1 {
			t.Errorf("stream has %d events after a repeated like, want 1", got)
		}
	})
	t.Run("no js", func(t *testing.T) {
		resp, _ := f.do(t, "POST", "/products/"+p.ID+"/unlike", url.Values{"next": {"/?category=Brakes"}}, false)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?category=Brakes" {
			t.Fatalf("got %d to %q, want 303 to /?category=Brakes", resp.StatusCode, resp.Header.Get("Location"))
		}
		_, body := f.do(t, "GET", "/products/"+p.ID, nil, false)
		if !strings.Contains(body, `aria-pressed="false"`) {
			t.Error("product page still shows the like after unlike")
		}
		if got := f.streamLen(t); got != 2 {
			t.Errorf("stream has %d events, want 2", got)
		}
	})
	t.Run("open redirect refused", func(t *testing.T) {
		for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil", "javascript:alert(1)"} {
			resp, _ := f.do(t, "POST", "/products/"+p.ID+"/like", url.Values{"next": {next}}, false)
			if loc := resp.Header.Get("Location"); loc != "/products/"+p.ID {
				t.Errorf("next=%q redirected to %q", next, loc)
			}
		}
	})
	t.Run("unknown product", func(t *testing.T) {
		before := f.streamLen(t)
		resp, _ := f.do(t, "POST", "/products/no-such-part/like", nil, true)
		if resp.StatusCode != 404 {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
		if resp.Header.Get("HX-Retarget") != "#flash" {
			t.Error("htmx error should be retargeted to #flash")
		}
		if f.streamLen(t) != before {
			t.Error("unknown product changed the stream")
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		resp, _ := f.do(t, "GET", "/products/"+p.ID+"/like", nil, false)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("status %d, want 405", resp.StatusCode)
		}
	})
	t.Run("new shopper gets a cookie", func(t *testing.T) {
		resp, err := f.app.Test(httptest.NewRequest("GET", "/", nil), -1)
		if err != nil {
			t.Fatal(err)
		}
		c := resp.Header.Get("Set-Cookie")
		if !strings.Contains(c, "phoenix_shopper=") || !strings.Contains(c, "HttpOnly") || !strings.Contains(strings.ToLower(c), "samesite=lax") {
			t.Errorf("Set-Cookie = %q", c)
		}
	})
}

func TestShop_RedisDown(t *testing.T) {
	// A client pointed at a closed port behaves like Redis being down.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	f := newShopOn(t, rdb, "down:")
	p := f.catalog.Products()[0]
	resp, body := f.do(t, "GET", "/", nil, false)
	if resp.StatusCode != 200 || !strings.Contains(body, "unavailable") || !strings.Contains(body, `id="product-`+p.ID+`"`) {
		t.Errorf("catalog without Redis: status %d, want 200 with products and an unavailable notice", resp.StatusCode)
	}
	// A first visit still gets an id, so its Like says "try again" too.
	if resp, _, cookie, token := f.visitAnew(t, "/"); resp.StatusCode != 200 || cookie == "" || token == "" {
		t.Errorf("first visit without Redis: status %d, cookie %q, token %q; want 200 with both", resp.StatusCode, cookie, token)
	}
	resp, body = f.do(t, "POST", "/products/"+p.ID+"/like", nil, true)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "Could not save your like") {
		t.Errorf("like without Redis: status %d body %q, want 503 with a retry message", resp.StatusCode, body)
	}
	resp, _ = f.do(t, "POST", "/products/"+p.ID+"/like", nil, false)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("no-JS like without Redis: status %d, want 503", resp.StatusCode)
	}
}
