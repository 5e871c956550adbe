package handlers_test

import (
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"phoenix/store"
	"phoenix/testkit"
)

// withCatalog makes the shop serve c.
func withCatalog(c *store.Catalog) func(*shopSetup) {
	return func(s *shopSetup) { s.shop.Catalog = c }
}

var cardID = regexp.MustCompile(`<article class="product-card" id="product-([a-z0-9-]+)"`)

// cardIDs returns the ids of the product cards in body, in order.
func cardIDs(body string) []string {
	var out []string
	for _, m := range cardID.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func idsOf(ps []store.Product) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func TestShop_Pages(t *testing.T) {
	c, _, err := testkit.GenerateCatalog(300)
	if err != nil {
		t.Fatal(err)
	}
	f := newShop(t, withCatalog(c))
	all := c.Search("", "")
	const size = 24
	lastPage := (all.Len() + size - 1) / size // 13, with 12 parts
	type link struct{ rel, href string }
	links := func(body string) []link {
		var out []link
		for _, m := range regexp.MustCompile(`<a href="([^"]*)" rel="(prev|next)"`).FindAllStringSubmatch(body, -1) {
			out = append(out, link{m[2], strings.ReplaceAll(m[1], "&amp;", "&")})
		}
		return out
	}
	for _, tt := range []struct {
		name   string
		target string
		page   int
		links  []link
	}{
		{"first", "/", 1, []link{{"next", "/?page=2"}}},
		{"second", "/?page=2", 2, []link{{"prev", "/"}, {"next", "/?page=3"}}},
		{"last", "/?page=13", lastPage, []link{{"prev", "/?page=12"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(t, "GET", tt.target, nil, false)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %.300s", resp.StatusCode, body)
			}
			want := idsOf(all.Slice((tt.page-1)*size, tt.page*size))
			if got := cardIDs(body); !slices.Equal(got, want) {
				t.Errorf("cards %v, want %v", got, want)
			}
			if got := links(body); !slices.Equal(got, tt.links) {
				t.Errorf("links %v, want %v", got, tt.links)
			}
			if want := "300 parts · page " + strings.TrimPrefix(tt.target, "/?page="); tt.page > 1 && !strings.Contains(body, want) {
				t.Errorf("pager lacks %q", want)
			}
			if tt.page < lastPage && !strings.Contains(body, `hx-target="#product-cards" hx-swap="beforeend"`) {
				t.Error("the next link is not a load-more for htmx")
			}
		})
	}
	t.Run("load more", func(t *testing.T) {
		for _, page := range []int{2, lastPage} {
			req := httptest.NewRequest("GET", "/?page="+itoa(page), nil)
			req.Header.Set("HX-Request", "true")
			req.Header.Set("HX-Target", "product-cards")
			req.Header.Set("HX-Current-URL", "http://shop.example/")
			resp, body := serve(t, f.app, req)
			if resp.StatusCode != 200 || !strings.HasPrefix(strings.TrimSpace(body), `<article class="product-card"`) ||
				strings.Contains(body, "<html") || strings.Contains(body, `id="product-grid"`) {
				t.Fatalf("page %d: status %d, want only the cards and the pager: %.300s", page, resp.StatusCode, body)
			}
			if got, want := cardIDs(body), idsOf(all.Slice((page-1)*size, page*size)); !slices.Equal(got, want) {
				t.Errorf("page %d: cards %v, want %v", page, got, want)
			}
			if !strings.Contains(body, `id="pager" aria-label="More parts" hx-swap-oob="true"`) {
				t.Errorf("page %d: no out-of-band pager", page)
			}
			wantLinks := []link{{"next", "/?page=" + itoa(page+1)}}
			if page == lastPage {
				wantLinks = nil
			}
			if got := links(body); !slices.Equal(got, wantLinks) {
				t.Errorf("page %d: links %v, want %v", page, got, wantLinks)
			}
			if !strings.Contains(body, `name="next" value="/"`) {
				t.Errorf("page %d: Like forms do not return to the shopper's page", page)
			}
			if v := resp.Header.Get("Vary"); !strings.Contains(v, "HX-Target") {
				t.Errorf("Vary = %q, want HX-Target in it", v)
			}
		}
	})
	t.Run("category and query kept", func(t *testing.T) {
		const category, query = "Brakes", "brake"
		if c.Search(category, query).Len() <= size {
			t.Fatal("catalog changed: want more than a page of brake parts")
		}
		_, body := f.do(t, "GET", "/?category="+category+"&q="+query, nil, false)
		want := []link{{"next", "/?category=Brakes&page=2&q=brake"}}
		if got := links(body); !slices.Equal(got, want) {
			t.Errorf("links %v, want %v", got, want)
		}
		if !strings.Contains(body, `<input type="hidden" name="category" value="Brakes">`) {
			t.Error("the search form drops the category")
		}
		if !strings.Contains(body, `/?category=Engine&amp;q=brake`) {
			t.Error("the category filter drops the query")
		}
		_, body = f.do(t, "GET", "/?category="+category+"&q="+query+"&page=2", nil, false)
		if got, want := cardIDs(body), idsOf(c.Search(category, query).Slice(size, 2*size)); !slices.Equal(got, want) {
			t.Errorf("page 2 of the search: cards %v, want %v", got, want)
		}
	})
	t.Run("one part", func(t *testing.T) {
		_, body := f.do(t, "GET", "/?q="+url.QueryEscape(testkit.CatalogPart(123)), nil, false)
		if got := cardIDs(body); len(got) != 1 || got[0] != c.Products()[123].ID {
			t.Errorf("cards %v, want only %s", got, c.Products()[123].ID)
		}
		if len(links(body)) != 0 || !strings.Contains(body, "1 part · page 1 of 1") {
			t.Errorf("one result: want no page links and \"1 part\"")
		}
	})
	t.Run("bad page", func(t *testing.T) {
		for _, tt := range []struct {
			page   string
			status int
			msg    string
		}{
			{"14", 404, "There is no page 14: these parts end at page 13."},
			{"999999", 404, "There is no page 999999"},
			{"0", 400, "The page must be a whole number from 1"},
			{"-1", 400, "whole number"},
			{"abc", 400, "whole number"},
			{"1.5", 400, "whole number"},
			{"+2", 400, "whole number"},
			{"1e3", 400, "whole number"},
			{"9999999999999999999999", 400, "whole number"},
			{" 2", 400, "whole number"},
		} {
			resp, body := f.do(t, "GET", "/?page="+url.QueryEscape(tt.page), nil, false)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.msg) {
				t.Errorf("page=%q: status %d, want %d with %q", tt.page, resp.StatusCode, tt.status, tt.msg)
			}
		}
		resp, _ := f.do(t, "GET", "/?q=zzznothing&page=2", nil, false)
		if resp.StatusCode != 404 {
			t.Errorf("page 2 of no results: status %d, want 404", resp.StatusCode)
		}
		resp, body := f.do(t, "GET", "/?q=zzznothing", nil, false)
		if resp.StatusCode != 200 || !strings.Contains(body, "No parts match") {
			t.Errorf("page 1 of no results: status %d, want 200 saying so", resp.StatusCode)
		}
	})
}

func TestShop_SearchRanking(t *testing.T) {
	c, err := store.ParseCatalog([]byte(`{"products":[
		{"id":"plug","name":"Spark Plug","category":"Engine","price_cents":100,"description":"for brake-light wiring too"},
		{"id":"pads","name":"Ceramic Brake Pads","category":"Brakes","price_cents":100,"description":"quiet"},
		{"id":"belag","name":"Bremsbeläge vorne","category":"Bremsen","price_cents":100,"description":"Keramik"},
		{"id":"zh","name":"陶瓷刹车片（前轴）","category":"制动系统","price_cents":100,"description":"低粉尘"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	f := newShop(t, withCatalog(c))
	for _, tt := range []struct{ query, want string }{
		{"brake", "pads,plug"},
		{"BREMSBELAGE", "belag"},
		{"bremsbeläge", "belag"},
		{"刹车", "zh"},
	} {
		_, body := f.do(t, "GET", "/?q="+url.QueryEscape(tt.query), nil, false)
		if got := strings.Join(cardIDs(body), ","); got != tt.want {
			t.Errorf("q=%q: cards %s, want %s", tt.query, got, tt.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
