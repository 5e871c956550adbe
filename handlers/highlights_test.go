package handlers_test

import (
	"context"
	"html"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
)

// section returns the element of body with id, up to its closing tag
// (the highlight sections hold no element of their own kind).
func section(body, tag, id string) string {
	re := regexp.MustCompile(`(?s)<` + tag + `[^>]* id="` + id + `"[^>]*>.*?</` + tag + `>`)
	return re.FindString(body)
}

var highlightItem = regexp.MustCompile(`<li><a href="/products/([a-z0-9-]+)">([^<]+)</a> <span class="highlight-count">([^<]+)</span></li>`)

// highlightItems returns the items of a highlight list as "id name|count".
func highlightItems(s string) []string {
	var out []string
	for _, m := range highlightItem.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1]+" "+html.UnescapeString(m[2])+"|"+m[3])
	}
	return out
}

func (f *shopFixture) page(tb testing.TB, target, lang string, header map[string]string) string {
	tb.Helper()
	req := f.request("GET", target, nil, header != nil)
	req.Header.Set("Accept-Language", lang)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, body := serve(tb, f.app, req)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: status %d", target, resp.StatusCode)
	}
	return body
}

func TestShop_Highlights(t *testing.T) {
	ctx := context.Background()
	f := newShop(t)
	ps := f.catalog.Products()
	a, b, c := ps[0], ps[1], ps[2]
	t.Run("no round yet", func(t *testing.T) {
		// Before a worker's first round (or once every worker has been
		// gone long enough for the key to expire) there is nothing to say.
		if body := f.page(t, "/", "en", nil); strings.Contains(body, `id="highlights"`) {
			t.Error("catalog shows highlights before any round")
		}
		if body := f.page(t, "/products/"+a.ID, "en", nil); strings.Contains(body, `id="also-liked"`) {
			t.Error("product page shows also liked before any round")
		}
	})
	// A round over a record without likes.
	if err := f.likes.PublishHighlights(ctx, store.Highlights{At: time.Now()}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := f.likes.PublishAlsoLiked(ctx, nil, store.AlsoCursor{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Run("nothing yet", func(t *testing.T) {
		for lang, want := range map[string][]string{
			"en":    {"Most liked", "No likes yet: be the first to like a part.", "Trending now", "Nothing has been liked in the last hour."},
			"zh-CN": {"最受欢迎", "还没有人点赞，快来为配件点第一个赞吧。", "当前热门", "最近一小时还没有人点赞。"},
		} {
			body := f.page(t, "/", lang, nil)
			for _, w := range want {
				if !strings.Contains(body, w) {
					t.Errorf("%s catalog: no %q", lang, w)
				}
			}
			if n := strings.Count(body, `class="highlight-list"`); n != 0 {
				t.Errorf("%s catalog: %d highlight lists, want none", lang, n)
			}
		}
		body := f.page(t, "/products/"+a.ID, "en", nil)
		if s := section(body, "section", "also-liked"); !strings.Contains(s, "Shoppers who liked this also liked") ||
			!strings.Contains(s, "Not enough likes yet to suggest other parts.") {
			t.Errorf("product page: also-liked section %q, want its empty state", s)
		}
	})

	// What a worker's round writes (store.RefreshHighlights): a ranked
	// product no longer in the catalog is left out.
	h := store.Highlights{At: time.Now(),
		MostLiked: []store.Ranked{{ID: b.ID, Count: 1200}, {ID: "gone-part", Count: 5}, {ID: a.ID, Count: 1}},
		Trending:  []store.Ranked{{ID: c.ID, Count: 2}}}
	if err := f.likes.PublishHighlights(ctx, h, time.Minute); err != nil {
		t.Fatal(err)
	}
	also := map[string][]store.Ranked{a.ID: {{ID: c.ID, Count: 3}, {ID: b.ID, Count: 1}}}
	if err := f.likes.PublishAlsoLiked(ctx, also, store.AlsoCursor{}, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Run("ranked", func(t *testing.T) {
		for _, tt := range []struct {
			lang           string
			most, trending []string
			also           []string
		}{
			{"en", []string{b.ID + " " + b.Name + "|1,200 likes", a.ID + " " + a.Name + "|1 like"},
				[]string{c.ID + " " + c.Name + "|2 likes this hour"},
				[]string{c.ID + " " + c.Name + "|liked by 3 of them", b.ID + " " + b.Name + "|liked by 1 of them"}},
			{"zh-CN", []string{b.ID + " " + b.NameI18n["zh-CN"] + "|1,200 个赞", a.ID + " " + a.NameI18n["zh-CN"] + "|1 个赞"},
				[]string{c.ID + " " + c.NameI18n["zh-CN"] + "|本小时 2 个赞"},
				[]string{c.ID + " " + c.NameI18n["zh-CN"] + "|其中 3 位也喜欢", b.ID + " " + b.NameI18n["zh-CN"] + "|其中 1 位也喜欢"}},
		} {
			body := f.page(t, "/", tt.lang, nil)
			if got := highlightItems(section(body, "div", "most-liked")); strings.Join(got, "\n") != strings.Join(tt.most, "\n") {
				t.Errorf("%s most liked: got %q, want %q", tt.lang, got, tt.most)
			}
			if got := highlightItems(section(body, "div", "trending")); strings.Join(got, "\n") != strings.Join(tt.trending, "\n") {
				t.Errorf("%s trending: got %q, want %q", tt.lang, got, tt.trending)
			}
			body = f.page(t, "/products/"+a.ID, tt.lang, nil)
			if got := highlightItems(section(body, "section", "also-liked")); strings.Join(got, "\n") != strings.Join(tt.also, "\n") {
				t.Errorf("%s also liked %s: got %q, want %q", tt.lang, a.ID, got, tt.also)
			}
		}
		// A product with no list of its own shows the empty state.
		if body := f.page(t, "/products/"+c.ID, "en", nil); !strings.Contains(section(body, "section", "also-liked"), "Not enough likes yet") {
			t.Errorf("also liked %s: no empty state", c.ID)
		}
	})
	t.Run("one round trip", func(t *testing.T) {
		// The highlights ride in the pipeline that reads the page's
		// counts: a page view is still one round trip to Redis.
		for _, target := range []string{"/", "/products/" + a.ID} {
			hook := &roundTrips{}
			f.rdb.AddHook(hook)
			f.page(t, target, "en", nil)
			hook.off.Store(true)
			if got := hook.calls.Load(); got != 1 {
				t.Errorf("GET %s: %d round trips to Redis, want 1", target, got)
			}
		}
	})
	t.Run("fragments", func(t *testing.T) {
		// The highlights belong to the page: a search's grid and "load
		// more" leave them out; an htmx request for the page keeps them.
		for _, tt := range []struct {
			name   string
			target string
			header map[string]string
			want   bool
		}{
			{"full page", "/", nil, true},
			{"htmx page", "/", map[string]string{}, true},
			{"grid", "/?q=brake", map[string]string{"HX-Target": "product-grid"}, false},
			{"load more", "/?page=2", map[string]string{"HX-Target": "product-cards"}, false},
		} {
			body := f.page(t, tt.target, "en", tt.header)
			if got := strings.Contains(body, `id="highlights"`); got != tt.want {
				t.Errorf("%s: highlights shown %v, want %v", tt.name, got, tt.want)
			}
		}
	})
	t.Run("redis down", func(t *testing.T) {
		// No list then, and no empty state that would say nobody likes
		// anything: the counts' notice says what is wrong.
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		down := newShopOn(t, rdb, "down:")
		for _, target := range []string{"/", "/products/" + a.ID} {
			body := down.page(t, target, "en", nil)
			if strings.Contains(body, `class="highlight`) {
				t.Errorf("GET %s with redis down: highlights shown", target)
			}
		}
	})
}

// seedHighlights writes a worker's round for f's catalog: every list
// filled for the first product, empty for the others.
func seedHighlights(tb testing.TB, f *shopFixture) {
	tb.Helper()
	ctx := context.Background()
	ps := f.catalog.Products()
	ranked := []store.Ranked{{ID: ps[1].ID, Count: 2}, {ID: ps[2].ID, Count: 1}}
	if err := f.likes.PublishHighlights(ctx, store.Highlights{At: time.Now(), MostLiked: ranked, Trending: ranked}, time.Minute); err != nil {
		tb.Fatal(err)
	}
	if err := f.likes.PublishAlsoLiked(ctx, map[string][]store.Ranked{ps[0].ID: ranked}, store.AlsoCursor{}, time.Minute); err != nil {
		tb.Fatal(err)
	}
}

// roundTrips counts the commands and pipelines sent to Redis (a pipeline
// is one round trip), until off.
type roundTrips struct {
	calls atomic.Int64
	off   atomic.Bool
}

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !h.off.Load() {
			h.calls.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !h.off.Load() {
			h.calls.Add(1)
		}
		return next(ctx, cmds)
	}
}
