package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"phoenix/store"
	"phoenix/testkit"
)

// likeState is what a Like button shows.
type likeState struct {
	Pressed string `json:"pressed"` // aria-pressed
	Count   string `json:"count"`   // the count as shown ("–" when unknown)
	Action  string `json:"action"`  // the form's action
}

// likeSelector selects the Like button of a product.
func likeSelector(id string) string { return "#like-" + id + " button" }

// readLike reads a product's Like button from the DOM.
func readLike(b *browser, ctx context.Context, id string) likeState {
	b.tb.Helper()
	return eval[likeState](b, ctx, fmt.Sprintf(`(() => {
		const f = document.getElementById(%q);
		if (!f) return {pressed: 'missing', count: '', action: ''};
		return {pressed: f.querySelector('button').getAttribute('aria-pressed'),
			count: f.querySelector('.like-count').textContent.trim(), action: f.getAttribute('action')};
	})()`, "like-"+id))
}

// waitPressed waits until a product's Like button shows pressed.
func waitPressed(b *browser, ctx context.Context, id string, pressed bool) {
	b.tb.Helper()
	b.waitFor(ctx, fmt.Sprintf("%s aria-pressed=%v", id, pressed),
		fmt.Sprintf(`document.querySelector(%q)?.getAttribute('aria-pressed') === %q`, likeSelector(id), strconv.FormatBool(pressed)),
		fmt.Sprintf(`document.getElementById(%q)?.outerHTML + document.getElementById('flash')?.outerHTML`, "like-"+id))
}

// wantLike fails unless the button shows the given state and count.
func wantLike(t *testing.T, got likeState, id string, pressed bool, count int) {
	t.Helper()
	verb := "like"
	if pressed {
		verb = "unlike"
	}
	want := likeState{Pressed: strconv.FormatBool(pressed), Count: strconv.Itoa(count), Action: "/products/" + id + "/" + verb}
	if got != want {
		t.Fatalf("button of %s = %+v, want %+v", id, got, want)
	}
}

// wantEvents fails unless the stream holds exactly the given actions on
// product, all by one shopper.
func wantEvents(t *testing.T, likes *store.Likes, product string, actions ...string) {
	t.Helper()
	entries, err := likes.Client().XRange(context.Background(), likes.StreamKey(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	shoppers := map[any]bool{}
	for _, e := range entries {
		if e.Values["product"] != product {
			t.Errorf("event for %v, want %s: %v", e.Values["product"], product, e.Values)
		}
		shoppers[e.Values["shopper"]] = true
		got = append(got, fmt.Sprint(e.Values["action"]))
	}
	if !slices.Equal(got, actions) || len(shoppers) > 1 {
		t.Errorf("stream holds %v by %d shoppers, want %v by one", got, len(shoppers), actions)
	}
}

func defaultCatalog(t *testing.T) *store.Catalog {
	t.Helper()
	c, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestShopBrowser_LikeWithHTMX(t *testing.T) {
	vars, likes := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	b := newBrowser(t)
	ctx := b.timeout()
	id := defaultCatalog(t).Products()[0].ID

	b.open(ctx, p.url("shop", "/"), true)
	b.screenshot(ctx, "catalog")
	b.axe(ctx, "catalog")
	wantLike(t, readLike(b, ctx, id), id, false, 0)
	// A full page load would drop this; an htmx swap keeps it.
	b.do(ctx, "mark page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))

	b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(id))))
	waitPressed(b, ctx, id, true)
	wantLike(t, readLike(b, ctx, id), id, true, 1)
	if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
		t.Error("Like reloaded the page; want an htmx swap")
	}
	b.axe(ctx, "catalog after a Like")

	b.do(ctx, "reload", chromedp.Reload())
	wantLike(t, readLike(b, ctx, id), id, true, 1)

	b.waitFor(ctx, "htmx after reload", `window.htmx !== undefined`, "typeof window.htmx")
	b.do(ctx, "click Unlike", chromedp.Click(chromedp.CSS(likeSelector(id))))
	waitPressed(b, ctx, id, false)
	wantLike(t, readLike(b, ctx, id), id, false, 0)

	wantEvents(t, likes, id, "like", "unlike")

	// A worker brings the Likes into PostgreSQL and the highlights from
	// there back to Redis: a Like in the browser shows in "Most liked" and
	// "Trending now", and its Unlike takes it out again.
	vars["PHOENIX_DATABASE_URL"] = testkit.Postgres(t)
	vars["PHOENIX_WORKER_BLOCK"] = "50ms"
	startPhoenix(t, "worker", vars)
	name := defaultCatalog(t).Products()[0].Name
	waitHighlights(t, b, ctx, p.url("shop", "/"), "no likes yet", "[empty] [empty]")
	b.axe(ctx, "catalog with empty highlights")
	b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(id))))
	waitPressed(b, ctx, id, true)
	waitHighlights(t, b, ctx, p.url("shop", "/"), "the Like in the highlights",
		fmt.Sprintf("[%s 1 like] [%s 1 like this hour]", name, name))
	b.axe(ctx, "catalog with highlights")
	b.do(ctx, "click Unlike", chromedp.Click(chromedp.CSS(likeSelector(id))))
	waitPressed(b, ctx, id, false)
	waitHighlights(t, b, ctx, p.url("shop", "/"), "the Unlike in the highlights", "[empty] [empty]")
}

// highlightsJS reads the catalog's two highlight lists as "[item; item]
// [item]", each item its text with the spaces folded; "[empty]" is a
// list's empty state, "missing" a list the page does not have.
const highlightsJS = `['#most-liked', '#trending'].map(s => {
	const el = document.querySelector(s);
	if (!el) return 'missing';
	const items = [...el.querySelectorAll('li')].map(li => li.textContent.replace(/\s+/g, ' ').trim());
	return '[' + (items.length ? items.join('; ') : el.querySelector('.highlight-empty') ? 'empty' : '') + ']';
}).join(' ')`

// waitHighlights reloads the catalog at url until its highlight lists
// read want (see highlightsJS): the worker rewrites them every couple of
// seconds, and they belong to the full page, which htmx does not refresh.
func waitHighlights(t *testing.T, b *browser, ctx context.Context, url, what, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.open(ctx, url, true)
		got := eval[string](b, ctx, highlightsJS)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: the catalog shows %s, want %s", what, got, want)
		}
		time.Sleep(250 * time.Millisecond) // between page loads, not instead of a check
	}
}

func TestShopBrowser_LikeWithoutJS(t *testing.T) {
	vars, likes := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	b := newBrowser(t)
	ctx := b.timeout()
	b.disableJS(ctx)
	id := defaultCatalog(t).Products()[0].ID
	start := p.url("shop", "/?category=Brakes")

	b.open(ctx, start, false)
	if eval[bool](b, ctx, `window.htmx !== undefined`) {
		t.Fatal("htmx ran with JS disabled")
	}
	b.axe(ctx, "category page without JS")
	wantLike(t, readLike(b, ctx, id), id, false, 0)

	b.do(ctx, "submit Like", chromedp.Click(chromedp.CSS(likeSelector(id))))
	b.do(ctx, "wait for redirect", chromedp.WaitVisible(chromedp.CSS(likeSelector(id)+`[aria-pressed="true"]`)))
	wantLike(t, readLike(b, ctx, id), id, true, 1)
	if loc := eval[string](b, ctx, "location.href"); loc != start {
		t.Errorf("landed on %s, want %s", loc, start)
	}

	b.do(ctx, "submit Unlike", chromedp.Click(chromedp.CSS(likeSelector(id))))
	b.do(ctx, "wait for redirect", chromedp.WaitVisible(chromedp.CSS(likeSelector(id)+`[aria-pressed="false"]`)))
	wantLike(t, readLike(b, ctx, id), id, false, 0)
	if loc := eval[string](b, ctx, "location.href"); loc != start {
		t.Errorf("landed on %s, want %s", loc, start)
	}

	wantEvents(t, likes, id, "like", "unlike")
}

// gridState is what the catalog shows.
type gridState struct {
	Heading    string   `json:"heading"`
	Categories []string `json:"categories"` // of the cards, in order
	Current    string   `json:"current"`    // the category link marked current
	Search     string   `json:"search"`     // location.search
	Marked     bool     `json:"marked"`     // the page was not reloaded
}

const readGrid = `({
	heading: document.querySelector('#catalog h1')?.textContent.trim(),
	categories: [...document.querySelectorAll('#product-grid .product-card .category')].map(e => e.textContent.trim()),
	current: document.querySelector('.category-filter a[aria-current="page"]')?.textContent.trim() ?? '',
	search: location.search,
	marked: window.phoenixMark === 1,
})`

// wantGrid fails unless the grid shows exactly the products of category
// matching query.
func wantGrid(t *testing.T, got gridState, c *store.Catalog, category, query string) {
	t.Helper()
	var want []string
	r := c.Search(category, query)
	for _, p := range r.Slice(0, r.Len()) {
		want = append(want, p.Category)
	}
	if !slices.Equal(got.Categories, want) {
		t.Errorf("grid shows categories %v, want %v", got.Categories, want)
	}
	u, err := url.ParseQuery(strings.TrimPrefix(got.Search, "?"))
	if err != nil || u.Get("category") != category || u.Get("q") != query {
		t.Errorf("URL query %q, want category=%q q=%q", got.Search, category, query)
	}
}

func TestShopBrowser_FilterAndSearch(t *testing.T) {
	vars, _ := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	b := newBrowser(t)
	ctx := b.timeout()
	c := defaultCatalog(t)
	const category, query = "Wheels & Tyres", "alloy"
	if n := c.Search(category, query).Len(); n == 0 || n == c.Search(category, "").Len() || c.Search(category, "").Len() > catalogPageSize {
		t.Fatalf("catalog changed: pick a query that finds some, not all, of %s", category)
	}

	b.open(ctx, p.url("shop", "/"), true)
	b.do(ctx, "mark page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))

	b.do(ctx, "click category", chromedp.Click(chromedp.Search(`//nav[@aria-label="Categories"]//a[text()="`+category+`"]`)))
	b.waitFor(ctx, "category grid", fmt.Sprintf(`document.querySelector('#catalog h1')?.textContent === %q`, category), readGrid+".heading")
	got := eval[gridState](b, ctx, readGrid)
	wantGrid(t, got, c, category, "")
	if got.Current != category || !got.Marked {
		t.Errorf("current link %q, kept page %v; want %q and an htmx swap", got.Current, got.Marked, category)
	}
	categoryURL := eval[string](b, ctx, "location.href")
	// Without JS the links go where htmx goes.
	if bad := eval[[]string](b, ctx, `[...document.querySelectorAll('a[hx-get]')].filter(a => a.getAttribute('href') !== a.getAttribute('hx-get')).map(a => a.outerHTML)`); len(bad) > 0 {
		t.Errorf("links whose href differs from hx-get: %v", bad)
	}

	b.do(ctx, "search", chromedp.SendKeys(chromedp.CSS(`input[type=search]`), query+"\r"))
	b.waitFor(ctx, "search grid", fmt.Sprintf(`new URLSearchParams(location.search).get('q') === %q && document.querySelectorAll('#product-grid .product-card').length === %d`,
		query, c.Search(category, query).Len()), "location.search")
	got = eval[gridState](b, ctx, readGrid)
	wantGrid(t, got, c, category, query)
	if !got.Marked {
		t.Error("search reloaded the page; want an htmx swap")
	}
	b.axe(ctx, "search results")
	searchURL := eval[string](b, ctx, "location.href")

	// Back restores the category grid (htmx asks for the whole page).
	b.do(ctx, "back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	b.waitFor(ctx, "grid after back", fmt.Sprintf(`!location.search.includes('q=') && document.querySelectorAll('#product-grid .product-card').length === %d`,
		c.Search(category, "").Len()), "location.search")

	// The pushed URLs are plain links too.
	for _, tc := range []struct {
		url             string
		category, query string
	}{{categoryURL, category, ""}, {searchURL, category, query}} {
		b.open(ctx, tc.url, true)
		got = eval[gridState](b, ctx, readGrid)
		wantGrid(t, got, c, tc.category, tc.query)
		if got.Heading != category {
			t.Errorf("%s: heading %q, want %q", tc.url, got.Heading, category)
		}
	}
}

// waitStatus polls url until it answers status.
func waitStatus(t *testing.T, url string, status int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == status {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 30s (last: %v, %v)", url, status, resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestShopBrowser_RedisDown(t *testing.T) {
	r := testkit.RedisServer(t)
	p := startPhoenix(t, "shop", map[string]string{"PHOENIX_REDIS_URL": r.URL(), "PHOENIX_REDIS_PREFIX": "e2e:"})
	b := newBrowser(t)
	ctx := b.timeout()
	id := defaultCatalog(t).Products()[0].ID

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.url("shop", "/readyz"), http.StatusServiceUnavailable)
	b.open(ctx, p.url("shop", "/"), true)
	b.screenshot(ctx, "catalog-redis-down")
	if got := readLike(b, ctx, id); got.Count != "–" || got.Pressed != "false" {
		t.Errorf("button with Redis down = %+v, want count – and not pressed", got)
	}
	notice := eval[string](b, ctx, `document.querySelector('#product-grid .notice')?.textContent ?? ''`)
	if !strings.Contains(notice, "unavailable") {
		t.Errorf("catalog notice %q, want counts unavailable", notice)
	}
	b.axe(ctx, "catalog with Redis down")

	// The failed POST shows up in the console as a 503.
	b.expectErrors("503")
	b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(id))))
	b.waitFor(ctx, "flash notice", `document.getElementById('flash').textContent.includes('Could not save your like')`,
		`document.getElementById('flash').outerHTML`)
	b.screenshot(ctx, "like-redis-down")
	b.axe(ctx, "catalog after a failed Like")
	if got := readLike(b, ctx, id); got.Pressed != "false" {
		t.Errorf("button after failed Like = %+v, want not pressed", got)
	}

	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, p.url("shop", "/readyz"), http.StatusOK)
	b.waitFor(ctx, "button enabled", fmt.Sprintf(`!document.querySelector(%q).disabled`, likeSelector(id)), "'disabled'")
	b.do(ctx, "click Like again", chromedp.Click(chromedp.CSS(likeSelector(id))))
	waitPressed(b, ctx, id, true)
	wantLike(t, readLike(b, ctx, id), id, true, 1)
	if flash := eval[string](b, ctx, `document.getElementById('flash').textContent.trim()`); flash != "" {
		t.Errorf("#flash still says %q after a saved Like", flash)
	}
}

func TestShopBrowser_MyLikesAndPhone(t *testing.T) {
	vars, likes := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	b := newBrowser(t)
	ctx := b.timeout()
	products := defaultCatalog(t).Products()
	liked := []string{products[1].ID, products[len(products)-1].ID}
	// A worker's highlights, so that the pages below are checked with them
	// (the longest names the catalog has, on the phone too).
	var ranked []store.Ranked
	for i, pr := range slices.SortedFunc(slices.Values(products), func(a, b store.Product) int { return len(b.Name) - len(a.Name) })[:5] {
		ranked = append(ranked, store.Ranked{ID: pr.ID, Count: int64(12345 - i)})
	}
	if err := likes.PublishHighlights(context.Background(), store.Highlights{At: time.Now(), MostLiked: ranked, Trending: ranked}, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := likes.PublishAlsoLiked(context.Background(), map[string][]store.Ranked{liked[0]: ranked}, store.AlsoCursor{}, 10*time.Minute); err != nil {
		t.Fatal(err)
	}

	b.open(ctx, p.url("shop", "/likes"), true)
	if txt := eval[string](b, ctx, `document.querySelector('main').textContent`); !strings.Contains(txt, "not liked any parts yet") {
		t.Errorf("empty My likes page says %q", txt)
	}
	b.axe(ctx, "empty My likes")
	// The last part is on the last page.
	for i, path := range []string{"/", "/?page=" + strconv.Itoa((len(products)+catalogPageSize-1)/catalogPageSize)} {
		b.open(ctx, p.url("shop", path), true)
		b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(liked[i]))))
		waitPressed(b, ctx, liked[i], true)
	}
	b.open(ctx, p.url("shop", "/likes"), true)
	got := eval[[]string](b, ctx, `[...document.querySelectorAll('main .product-card')].map(e => e.id.replace('product-', ''))`)
	if !slices.Equal(got, liked) {
		t.Errorf("My likes lists %v, want %v", got, liked)
	}
	b.screenshot(ctx, "likes")
	b.axe(ctx, "My likes")
	b.open(ctx, p.url("shop", "/products/"+liked[0]), true)
	b.screenshot(ctx, "product")
	b.axe(ctx, "product")
	missing := p.url("shop", "/no-such-page")
	b.expectErrors("404 (Not Found) " + missing)
	b.open(ctx, missing, false)
	b.screenshot(ctx, "error")
	b.axe(ctx, "404")

	pages := []string{"/", "/?q=brake", "/products/" + liked[0], "/likes", "/no-such-page"}
	b.do(ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	for _, path := range pages {
		b.open(ctx, p.url("shop", path), path != "/no-such-page")
		w := eval[[2]int](b, ctx, `[document.documentElement.scrollWidth, window.innerWidth]`)
		if w[0] > w[1] {
			t.Errorf("%s at 390px: scrollWidth %d > innerWidth %d", path, w[0], w[1])
		}
		b.screenshot(ctx, "phone"+strings.ReplaceAll(path, "/", "_"))
		b.axe(ctx, path+" at 390px")
	}

	// The same pages in Chinese, on the phone and on the desktop.
	acceptLanguage(b, ctx, "zh-CN,zh;q=0.9")
	for _, width := range []int64{390, 1280} {
		var mobile []chromedp.EmulateViewportOption
		if width == 390 {
			mobile = append(mobile, chromedp.EmulateMobile)
		}
		b.do(ctx, "viewport", chromedp.EmulateViewport(width, 844, mobile...))
		for _, path := range pages {
			b.open(ctx, p.url("shop", path), path != "/no-such-page")
			if lang := eval[string](b, ctx, `document.documentElement.lang`); lang != "zh-CN" {
				t.Fatalf("%s: lang %q, want zh-CN", path, lang)
			}
			b.axe(ctx, fmt.Sprintf("%s in Chinese at %dpx", path, width))
		}
	}
}

// acceptLanguage makes the browser send this Accept-Language from now on.
func acceptLanguage(b *browser, ctx context.Context, value string) {
	b.tb.Helper()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		b.tb.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": value},
	}); err != nil {
		b.tb.Fatal(err)
	}
}

// catalogPageSize is how many parts a catalog page shows.
const catalogPageSize = 24

// cardIDs reads the ids of the grid's cards, in order.
const cardIDs = `[...document.querySelectorAll('#product-cards .product-card')].map(e => e.id.replace('product-', ''))`

func TestShopBrowser_LoadMore(t *testing.T) {
	vars, _ := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	ids := defaultCatalog(t).IDs()
	if len(ids) <= catalogPageSize || len(ids) > 2*catalogPageSize {
		t.Fatalf("catalog of %d parts: this test wants two pages", len(ids))
	}
	t.Run("htmx", func(t *testing.T) {
		b := newBrowser(t)
		ctx := b.timeout()
		b.open(ctx, p.url("shop", "/"), true)
		if got := eval[[]string](b, ctx, cardIDs); !slices.Equal(got, ids[:catalogPageSize]) {
			t.Fatalf("first page shows %v, want %v", got, ids[:catalogPageSize])
		}
		b.do(ctx, "mark page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))
		b.do(ctx, "click More parts", chromedp.Click(chromedp.CSS(`a.load-more`)))
		b.waitFor(ctx, "appended cards", fmt.Sprintf(`document.querySelectorAll('#product-cards .product-card').length === %d`, len(ids)),
			`document.querySelectorAll('#product-cards .product-card').length`)
		if got := eval[[]string](b, ctx, cardIDs); !slices.Equal(got, ids) {
			t.Errorf("after load more: %v, want %v", got, ids)
		}
		got := eval[struct {
			Marked bool   `json:"marked"`
			Search string `json:"search"`
			More   int    `json:"more"`
			Pagers int    `json:"pagers"`
		}](b, ctx, `({marked: window.phoenixMark === 1, search: location.search,
			more: document.querySelectorAll('a.load-more').length, pagers: document.querySelectorAll('#pager').length})`)
		if !got.Marked || got.Search != "" || got.More != 0 || got.Pagers != 1 {
			t.Errorf("after load more: %+v; want the same page and URL, one pager without a More link (last page)", got)
		}
		// A card that came by load more is a working card.
		last := ids[len(ids)-1]
		b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(last))))
		waitPressed(b, ctx, last, true)
		b.screenshot(ctx, "load-more")
		b.axe(ctx, "catalog after load more")
	})
	t.Run("no js", func(t *testing.T) {
		b := newBrowser(t)
		ctx := b.timeout()
		b.disableJS(ctx)
		b.open(ctx, p.url("shop", "/"), false)
		b.do(ctx, "follow More parts", chromedp.Click(chromedp.CSS(`a.load-more`)))
		b.do(ctx, "wait for page 2", chromedp.WaitVisible(chromedp.CSS(`a[rel="prev"]`)))
		if got := eval[[]string](b, ctx, cardIDs); !slices.Equal(got, ids[catalogPageSize:]) {
			t.Errorf("page 2 shows %v, want %v", got, ids[catalogPageSize:])
		}
		if loc := eval[string](b, ctx, "location.search"); loc != "?page=2" {
			t.Errorf("landed on %q, want ?page=2", loc)
		}
	})
}

// TestShopBrowser_Language switches the language with JavaScript off, as
// a plain link: the same page comes back in Chinese, and the choice stays
// for the next page. A browser that asks for Chinese gets it at once.
func TestShopBrowser_Language(t *testing.T) {
	vars, _ := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	c := defaultCatalog(t)
	product := c.Products()[0]
	read := `({lang: document.documentElement.lang, h1: document.querySelector('h1')?.textContent.trim(),
		price: document.querySelector('.price')?.textContent.trim() ?? '', href: location.href})`
	type state struct {
		Lang  string `json:"lang"`
		H1    string `json:"h1"`
		Price string `json:"price"`
		Href  string `json:"href"`
	}
	t.Run("switcher without JS", func(t *testing.T) {
		b := newBrowser(t)
		ctx := b.timeout()
		b.disableJS(ctx)
		start := p.url("shop", "/products/"+product.ID)
		b.open(ctx, start, false)
		if got := eval[state](b, ctx, read); got.Lang != "en" || got.H1 != product.Name || got.Price != "$49.99" {
			t.Fatalf("before switching: %+v, want English", got)
		}
		b.do(ctx, "click 中文", chromedp.Click(chromedp.CSS("#lang-zh-CN")))
		b.do(ctx, "wait for Chinese", chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] h1`)))
		if got := eval[state](b, ctx, read); got.H1 != product.NameI18n["zh-CN"] || got.Price != "US$49.99" || got.Href != start {
			t.Errorf("after switching: %+v, want %q at US$49.99 on %s", got, product.NameI18n["zh-CN"], start)
		}
		b.axe(ctx, "product in Chinese without JS")
		b.open(ctx, p.url("shop", "/"), false)
		if got := eval[state](b, ctx, read); got.Lang != "zh-CN" || got.H1 != "汽车配件" {
			t.Errorf("next page: %+v, want the catalog in Chinese", got)
		}
		b.do(ctx, "click English", chromedp.Click(chromedp.CSS("#lang-en")))
		b.do(ctx, "wait for English", chromedp.WaitVisible(chromedp.CSS(`html[lang="en"] h1`)))
		if got := eval[state](b, ctx, read); got.H1 != "Auto parts" {
			t.Errorf("back to English: %+v", got)
		}
	})
	t.Run("Accept-Language", func(t *testing.T) {
		b := newBrowser(t)
		ctx := b.timeout()
		acceptLanguage(b, ctx, "zh-CN,zh;q=0.9")
		b.open(ctx, p.url("shop", "/"), true)
		if got := eval[state](b, ctx, read); got.Lang != "zh-CN" || got.H1 != "汽车配件" {
			t.Errorf("got %+v, want the catalog in Chinese", got)
		}
		b.axe(ctx, "catalog in Chinese")
	})
}
