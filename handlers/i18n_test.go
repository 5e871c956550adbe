package handlers_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"
	"github.com/redis/go-redis/v9"
	"golang.org/x/net/html"

	"phoenix"
	"phoenix/handlers"
	"phoenix/store"
	"phoenix/testkit"
)

// messages are the texts of one message file, by id (a plural message's
// forms under one id).
type messages map[string][]string

func loadMessages(tb testing.TB, name string) messages {
	tb.Helper()
	var raw map[string]any
	if _, err := toml.DecodeFS(phoenix.Locales(), name, &raw); err != nil {
		tb.Fatal(err)
	}
	out := messages{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		plural := true
		for k := range m {
			plural = plural && (k == "one" || k == "other")
		}
		for k, v := range m {
			id := prefix + k
			if plural {
				id = strings.TrimSuffix(prefix, ".")
			}
			switch v := v.(type) {
			case string:
				out[id] = append(out[id], v)
			case map[string]any:
				walk(id+".", v)
			}
		}
	}
	walk("", raw)
	return out
}

// latinInChinese are the only Latin words the Chinese messages may hold:
// names and symbols that Chinese writes as they are.
var latinInChinese = []string{"UTC", "PostgreSQL", "Redis", "CSV", "Cookie", "asc", "desc"}

// action matches a message's template actions ({{.Count}}).
var action = regexp.MustCompile(`\{\{[^}]*\}\}`)

// englishFragments are the English texts that a Chinese page must not
// show: the literal parts of every English message, and the embedded
// catalog's English product data, which has Chinese for everything.
func englishFragments(tb testing.TB, en messages) []string {
	tb.Helper()
	var out []string
	add := func(s string) {
		for _, f := range action.Split(s, -1) {
			f = strings.TrimFunc(f, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsPunct(r) })
			letters := strings.IndexFunc(f, func(r rune) bool { return r < unicode.MaxASCII && unicode.IsLetter(r) }) >= 0
			if letters && len(f) >= 2 && !slices.Contains(latinInChinese, f) && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	for id, texts := range en {
		if id == "lang.name" || strings.HasPrefix(id, "format.") {
			continue // the switcher names English in English; layouts are not shown
		}
		for _, s := range texts {
			add(s)
		}
	}
	catalog, err := store.DefaultCatalog()
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range catalog.Products() {
		add(p.Name)
		add(p.Description)
		add(p.Category)
	}
	return out
}

// visibleText returns what a person (or a screen reader) gets of a page:
// its text, and the attributes that are read out or shown.
func visibleText(tb testing.TB, body string) []string {
	tb.Helper()
	var out []string
	z := html.NewTokenizer(strings.NewReader(body))
	skip := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.TextToken:
			if t := strings.TrimSpace(string(z.Text())); t != "" && !skip {
				out = append(out, t)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			skip = tok.Data == "script" || tok.Data == "style"
			meta := tok.Data == "meta" && slices.Contains(tok.Attr, html.Attribute{Key: "name", Val: "description"})
			for _, a := range tok.Attr {
				switch {
				case a.Key == "alt", a.Key == "title", a.Key == "aria-label", a.Key == "placeholder", a.Key == "content" && meta:
					if a.Val != "" {
						out = append(out, a.Val)
					}
				}
			}
		case html.EndTagToken:
			skip = false
		}
	}
}

// hasWord reports whether text holds f, not as part of a longer word.
func hasWord(text, f string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], f)
		if j < 0 {
			return false
		}
		j += i
		before, after := j == 0 || !isLetter(text[j-1]), j+len(f) == len(text) || !isLetter(text[j+len(f)])
		if before && after {
			return true
		}
		i = j + 1
	}
}

func isLetter(b byte) bool { return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

// uiAnswer is one page or fragment, as a language got it.
type uiAnswer struct {
	name string
	resp *http.Response
	body string
}

// TestI18n_EveryPage renders every page and fragment of both roles, in
// both languages, and checks that each speaks its language: the lang
// attribute, no message id left untranslated, no English UI text (nor
// English product data) on a Chinese page, and no Chinese on an English
// one but the switcher's link to it.
func TestI18n_EveryPage(t *testing.T) {
	en := loadMessages(t, "en.toml")
	english := englishFragments(t, en)
	shop := newShop(t)
	seedHighlights(t, shop)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	down := newShopOn(t, rdb, "down:")
	admin := newAdmin(t)
	seedCatalog(t, admin.stats)
	for _, lang := range []string{"en", "zh-CN"} {
		t.Run(lang, func(t *testing.T) {
			answers := append(shopAnswers(t, shop, down, lang), adminAnswers(t, admin, lang)...)
			for _, a := range answers {
				if strings.Contains(a.body, "<html") && !strings.Contains(a.body, `<html lang="`+lang+`">`) {
					t.Errorf("%s: no <html lang=%q>", a.name, lang)
				}
				if a.resp.StatusCode >= 500 && a.resp.StatusCode != http.StatusServiceUnavailable {
					t.Errorf("%s: status %d", a.name, a.resp.StatusCode)
				}
				for id := range en {
					if hasWord(a.body, id) {
						t.Errorf("%s: message id %q shows", a.name, id)
					}
				}
				for _, text := range visibleText(t, a.body) {
					if lang == "en" {
						if strings.ContainsFunc(text, isHan) && text != "中文" && !strings.HasSuffix(text, ": 中文") {
							t.Errorf("%s: Chinese on an English page: %q", a.name, text)
						}
						continue
					}
					if text == "English" || strings.HasSuffix(text, "：English") || strings.HasSuffix(text, ": English") {
						continue // the switcher's link back, in its own language
					}
					for _, f := range english {
						if hasWord(text, f) {
							t.Errorf("%s: English %q in %q", a.name, f, text)
						}
					}
				}
			}
			if len(answers) < 30 {
				t.Errorf("only %d answers checked", len(answers))
			}
		})
	}
}

// TestI18n_ChineseMessages checks that no Chinese message was left in
// English: Latin words are names that Chinese keeps (latinInChinese).
func TestI18n_ChineseMessages(t *testing.T) {
	word := regexp.MustCompile(`[A-Za-z]+`)
	for id, texts := range loadMessages(t, "zh-CN.toml") {
		if id == "format.clock" {
			continue // a Go time layout
		}
		for _, s := range texts {
			for _, w := range word.FindAllString(action.ReplaceAllString(s, ""), -1) {
				if !slices.Contains(latinInChinese, w) {
					t.Errorf("%s: %q holds the Latin word %q", id, s, w)
				}
			}
		}
	}
}

func isHan(r rune) bool { return unicode.Is(unicode.Han, r) }

// seedCatalog writes the embedded catalog as the worker would, with likes
// now and an hour ago, and a worker that just reported.
func seedCatalog(tb testing.TB, s *store.Stats) {
	tb.Helper()
	catalog, err := store.DefaultCatalog()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.SyncProducts(context.Background(), catalog.Products()); err != nil {
		tb.Fatal(err)
	}
	testkit.AddLikes(tb, s, "ceramic-brake-pads-front", 1200, 3, time.Now())
	testkit.AddLikes(tb, s, "spin-on-oil-filter", 1, 1, time.Now().Add(-30*time.Minute))
	testkit.SetWorker(tb, s, "worker-1", time.Now(), 1, 1)
}

func acceptLanguage(lang string) map[string]string {
	return map[string]string{"Accept-Language": lang}
}

// shopAnswers are the shop's pages, fragments and refusals in lang; down
// is a shop whose Redis is down.
func shopAnswers(t *testing.T, f, down *shopFixture, lang string) []uiAnswer {
	t.Helper()
	p := f.catalog.Products()[0]
	var out []uiAnswer
	get := func(f *shopFixture, name, method, target string, form url.Values, htmx bool, header map[string]string) {
		req := f.request(method, target, form, htmx)
		req.Header.Set("Accept-Language", lang)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		if name == "no shopper cookie" {
			req.Header.Del("Cookie")
		}
		resp, body := serve(t, f.app, req)
		out = append(out, uiAnswer{name: name, resp: resp, body: body})
	}
	grid := map[string]string{"HX-Target": "product-grid"}
	get(f, "catalog", "GET", "/", nil, false, nil)
	get(f, "catalog, htmx", "GET", "/", nil, true, nil)
	get(f, "catalog grid", "GET", "/?q=brake", nil, true, grid)
	get(f, "category", "GET", "/?category="+url.QueryEscape(p.Category), nil, false, nil)
	get(f, "no match", "GET", "/?q=zzzz", nil, false, nil)
	get(f, "no match in category", "GET", "/?q=zzzz&category="+url.QueryEscape(p.Category), nil, false, nil)
	get(f, "product", "GET", "/products/"+p.ID, nil, false, nil)
	get(f, "product without also liked", "GET", "/products/"+f.catalog.Products()[1].ID, nil, false, nil)
	get(f, "like, htmx", "POST", "/products/"+p.ID+"/like", url.Values{}, true, nil)
	get(f, "my likes", "GET", "/likes", nil, false, nil)
	get(f, "unlike, htmx", "POST", "/products/"+p.ID+"/unlike", url.Values{}, true, nil)
	get(f, "my likes, empty", "GET", "/likes", nil, false, nil)
	get(f, "404 page", "GET", "/nope", nil, false, nil)
	get(f, "404 part", "GET", "/products/no-such-part", nil, false, nil)
	get(f, "404 part, htmx", "POST", "/products/no-such-part/like", url.Values{}, true, nil)
	get(f, "unknown category", "GET", "/?category=Nope", nil, false, nil)
	get(f, "long query", "GET", "/?q="+strings.Repeat("a", 101), nil, false, nil)
	get(f, "control in query", "GET", "/?q=%01", nil, false, nil)
	get(f, "no CSRF token", "POST", "/products/"+p.ID+"/like", nil, false, map[string]string{"X-CSRF-Token": "forged"})
	get(f, "no shopper cookie", "POST", "/products/"+p.ID+"/like", url.Values{}, false, nil)
	get(f, "wrong method", "DELETE", "/products/"+p.ID+"/like", nil, false, nil)
	get(f, "unknown language", "GET", "/lang/xx", nil, false, nil)
	get(down, "catalog, redis down", "GET", "/", nil, false, nil)
	get(down, "product, redis down", "GET", "/products/"+p.ID, nil, false, nil)
	get(down, "my likes, redis down", "GET", "/likes", nil, false, nil)
	get(down, "like, redis down", "POST", "/products/"+p.ID+"/like", nil, true, nil)
	get(down, "like, redis down, no JS", "POST", "/products/"+p.ID+"/like", url.Values{}, false, nil)
	return out
}

// adminAnswers are the admin's pages, fragments and refusals in lang.
func adminAnswers(t *testing.T, f *adminFixture, lang string) []uiAnswer {
	t.Helper()
	cookie := f.login(t)
	var out []uiAnswer
	do := func(name string, r request) {
		r.header = acceptLanguage(lang)
		resp, body := f.do(t, r)
		out = append(out, uiAnswer{name: name, resp: resp, body: body})
	}
	get := func(name, target string, htmx bool) {
		do(name, request{method: "GET", target: target, cookie: cookie, htmx: htmx})
	}
	do("login", request{method: "GET", target: "/login"})
	do("wrong password", request{method: "POST", target: "/login", form: url.Values{"password": {"nope"}}})
	get("dashboard", "/admin", false)
	get("dashboard, htmx", "/admin?category=Brakes&q=pads&product=ceramic-brake-pads-front", true)
	get("dashboard, no match", "/admin?q=zzzz", false)
	for _, frag := range []string{"totals", "products", "categories", "chart", "worker"} {
		get(frag, "/admin/stats/"+frag, true)
	}
	get("chart of one product", "/admin/stats/chart?product=ceramic-brake-pads-front", true)
	get("bad sort", "/admin?sort=nope", false)
	get("bad direction", "/admin?dir=up", false)
	get("unknown category", "/admin?category=Nope", false)
	get("unknown product", "/admin?product=nope", false)
	get("long filter", "/admin?q="+strings.Repeat("a", 101), false)
	get("bad request, htmx", "/admin/stats/products?sort=nope", true)
	get("404", "/admin/nope", false)
	testkit.SetWorker(t, f.stats, "worker-1", time.Now().Add(-48*time.Hour), 1, 1)
	get("worker behind", "/admin/stats/worker", true)
	testkit.SetWorker(t, f.stats, "worker-1", time.Now(), 1, 1)
	return out
}

// TestI18n_StaleNotices renders the admin's notices in Chinese while
// PostgreSQL is down: the last data marked stale, and no data at all.
func TestI18n_StaleNotices(t *testing.T) {
	ctx := context.Background()
	pg := testkit.PostgresServer(t)
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	f := newAdminOn(t, pg.URL("phoenix"))
	seedCatalog(t, f.stats)
	cookie := f.login(t)
	zh := request{method: "GET", target: "/admin/stats/totals", cookie: cookie, htmx: true, header: acceptLanguage("zh-CN")}
	f.do(t, zh)
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	_, body := f.do(t, zh)
	if !strings.Contains(body, "起，数据可能已过时：无法连接统计数据库。") {
		t.Errorf("stale totals, in Chinese: lacks the notice:\n%s", body)
	}
	// A new admin has no last data to show.
	app, _ := adminApp(t, f.stats, f.admin.Log)
	fresh := &adminFixture{app: app}
	zh.target = "/admin"
	zh.htmx = false
	if _, body := fresh.do(t, zh); !strings.Contains(body, "统计数据不可用") || strings.Contains(body, "Statistics are unavailable") {
		t.Errorf("no data, in Chinese: lacks the notice:\n%s", body)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestI18n_Language checks how a request's language is chosen: the
// switcher's cookie, else Accept-Language, else English; and that answers
// say they vary by both.
func TestI18n_Language(t *testing.T) {
	f := newShop(t)
	tests := []struct {
		name, accept, cookie, want string
	}{
		{"no preference", "", "", "en"},
		{"chinese", "zh-CN", "", "zh-CN"},
		{"chinese, any region", "zh;q=0.9, en;q=0.5", "", "zh-CN"},
		{"english first", "en-GB,en;q=0.9,zh-CN;q=0.8", "", "en"},
		{"unspoken language", "fr-FR", "", "en"},
		{"junk header", "@@@;;;", "", "en"},
		{"cookie wins", "en", "zh-CN", "zh-CN"},
		{"cookie wins back", "zh-CN", "en", "en"},
		{"unknown cookie", "zh-CN", "xx", "zh-CN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := f.request("GET", "/", nil, false)
			if tt.accept != "" {
				req.Header.Set("Accept-Language", tt.accept)
			}
			if tt.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "phoenix_lang", Value: tt.cookie})
			}
			resp, body := serve(t, f.app, req)
			if !strings.Contains(body, `<html lang="`+tt.want+`">`) {
				t.Errorf("got %s, want lang %q", body[:min(len(body), 80)], tt.want)
			}
			if want := map[string]string{"en": "Auto parts", "zh-CN": "汽车配件"}[tt.want]; !strings.Contains(body, "<h1>"+want+"</h1>") {
				t.Errorf("no heading %q", want)
			}
			if vary := strings.Join(resp.Header.Values("Vary"), ","); !strings.Contains(vary, "Accept-Language") || !strings.Contains(vary, "Cookie") {
				t.Errorf("Vary = %q, want Accept-Language and Cookie", vary)
			}
		})
	}
	t.Run("prices and counts", func(t *testing.T) {
		p, _ := f.catalog.Product("vented-brake-disc-pair-280mm")
		for lang, want := range map[string]string{"en": `<p class="price">$119.00</p>`, "zh-CN": `<p class="price">US$119.00</p>`} {
			req := f.request("GET", "/products/"+p.ID, nil, false)
			req.Header.Set("Accept-Language", lang)
			if _, body := serve(t, f.app, req); !strings.Contains(body, want) {
				t.Errorf("%s: no %s", lang, want)
			}
		}
	})
}

// TestI18n_Switcher follows the switcher's plain link, as a browser
// without JavaScript does: it remembers the language in a cookie and goes
// back to the page, on this site only; in the shop and on the admin's
// login page, before any session.
func TestI18n_Switcher(t *testing.T) {
	shop, admin := newShop(t), newAdmin(t)
	_, body := shop.do(t, "GET", "/products/spin-on-oil-filter?x=1", nil, false)
	link := `href="/lang/zh-CN?next=%2Fproducts%2Fspin-on-oil-filter%3Fx%3D1"`
	if !strings.Contains(body, link) || !strings.Contains(body, `hreflang="zh-CN"`) {
		t.Fatalf("no switcher link %s in the page", link)
	}
	tests := []struct {
		name, target, location string
		status                 int
	}{
		{"to chinese", "/lang/zh-CN?next=%2Fproducts%2Fspin-on-oil-filter%3Fx%3D1", "/products/spin-on-oil-filter?x=1", http.StatusSeeOther},
		{"back to english", "/lang/en?next=/likes", "/likes", http.StatusSeeOther},
		{"no next", "/lang/zh-CN", "/", http.StatusSeeOther},
		{"elsewhere", "/lang/zh-CN?next=//evil.example/", "/", http.StatusSeeOther},
		{"unknown language", "/lang/xx?next=/", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := shop.do(t, "GET", tt.target, nil, false)
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Fatalf("status %d to %q, want %d to %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
			}
			var set *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == "phoenix_lang" {
					set = c
				}
			}
			if tt.status != http.StatusSeeOther {
				if set != nil {
					t.Errorf("refused switch set a cookie %v", set)
				}
				return
			}
			if set == nil || set.Value != strings.TrimPrefix(strings.SplitN(tt.target, "?", 2)[0], "/lang/") || set.MaxAge < 30*24*3600 || !set.HttpOnly {
				t.Fatalf("cookie %v, want a lasting HttpOnly phoenix_lang", set)
			}
			req := shop.request("GET", resp.Header.Get("Location"), nil, false)
			req.Header.Set("Accept-Language", "en") // the cookie wins
			req.AddCookie(set)
			if _, body := serve(t, shop.app, req); !strings.Contains(body, `<html lang="`+set.Value+`">`) {
				t.Errorf("the next page is not in %s", set.Value)
			}
		})
	}
	t.Run("admin login", func(t *testing.T) {
		resp, _ := admin.get(t, "/lang/zh-CN?next=/login", "", false)
		var set *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "phoenix_lang" {
				set = c
			}
		}
		if resp.StatusCode != http.StatusSeeOther || set == nil || set.Value != "zh-CN" {
			t.Fatalf("status %d, cookie %v", resp.StatusCode, set)
		}
		resp, body := admin.do(t, request{method: "GET", target: "/login", header: map[string]string{"Cookie": "phoenix_lang=zh-CN"}})
		if resp.StatusCode != 200 || !strings.Contains(body, "<h1>管理员登录</h1>") {
			t.Errorf("login after switching: status %d, not in Chinese", resp.StatusCode)
		}
		cookie := admin.login(t)
		_, body = admin.do(t, request{method: "GET", target: "/admin", cookie: cookie, header: map[string]string{"Cookie": "phoenix_lang=zh-CN; phoenix_admin=" + cookie}})
		if !strings.Contains(body, "<h1>点赞统计</h1>") {
			t.Error("dashboard with the session and language cookies: not in Chinese")
		}
	})
}

// TestI18n_ETag checks that an admin fragment's tag depends on the
// language: a browser that switched must not get a 304 for the old one.
func TestI18n_ETag(t *testing.T) {
	f := newAdmin(t)
	seedCatalog(t, f.stats)
	cookie := f.login(t)
	get := func(lang, tag string) *http.Response {
		h := acceptLanguage(lang)
		if tag != "" {
			h["If-None-Match"] = tag
		}
		resp, _ := f.do(t, request{method: "GET", target: "/admin/stats/products", cookie: cookie, htmx: true, header: h})
		return resp
	}
	tag := get("en", "").Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag")
	}
	if resp := get("en", tag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("same language: status %d, want 304", resp.StatusCode)
	}
	if resp := get("zh-CN", tag); resp.StatusCode != http.StatusOK {
		t.Errorf("other language: status %d, want 200", resp.StatusCode)
	}
}

// TestNewLocales refuses message files that differ from English in their
// ids, so that no page can fall back to English or show a key.
func TestNewLocales(t *testing.T) {
	en := `[a]
x = "X"
[b]
one = "{{.Count}} b"
other = "{{.Count}} bs"
[lang]
name = "English"
switcher = "Language"
[format]
clock = "Jan 2"
`
	zh := `[a]
x = "甲"
[b]
other = "{{.Count}} 乙"
[lang]
name = "中文"
switcher = "语言"
[format]
clock = "1月2日"
`
	tests := []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"ok", map[string]string{"en.toml": en, "zh-CN.toml": zh}, ""},
		{"missing in chinese", map[string]string{"en.toml": en + "[c]\ny = \"Y\"\n", "zh-CN.toml": zh}, `"c.y" missing`},
		{"only in chinese", map[string]string{"en.toml": en, "zh-CN.toml": zh + "[c]\ny = \"乙\"\n"}, `"c.y" not in en.toml`},
		{"no english", map[string]string{"zh-CN.toml": zh}, "no en.toml"},
		{"malformed", map[string]string{"en.toml": "[a\n"}, "en.toml"},
		{"none", map[string]string{}, "no message files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, s := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(s)}
			}
			ls, err := handlers.NewLocales(fsys)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			case err != nil:
				return
			}
			zh, ok := ls.Lookup("zh-CN")
			if !ok {
				t.Fatal("no zh-CN")
			}
			if got, err := zh.T("b", 3); err != nil || got != "3 乙" {
				t.Errorf("zh b 3 = %q, %v", got, err)
			}
			if got, err := ls.Default().T("b", 1); err != nil || got != "1 b" {
				t.Errorf("en b 1 = %q, %v", got, err)
			}
			if _, err := zh.T("nope"); err == nil {
				t.Error("an unknown id rendered")
			}
		})
	}
	if _, err := fs.Stat(phoenix.Locales(), "zh-CN.toml"); err != nil {
		t.Fatal(err)
	}
	if _, err := handlers.NewLocales(phoenix.Locales()); err != nil {
		t.Fatalf("the embedded message files: %v", err)
	}
}
