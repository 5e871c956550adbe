package store_test

import (
	"slices"
	"strings"
	"testing"

	"phoenix/store"
	"phoenix/testkit"
)

func TestDefaultCatalog(t *testing.T) {
	c, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Products()); n < 40 {
		t.Errorf("got %d products, want at least 40", n)
	}
	if n := len(c.Categories()); n < 8 {
		t.Errorf("got %d categories, want at least 8", n)
	}
}

func TestParseCatalog(t *testing.T) {
	const ok = `{"id":"a","name":"A","category":"C","price_cents":100,"description":"d","image":"a.svg"}`
	tests := []struct {
		name, in, wantErr string
	}{
		{"ok", `{"products":[` + ok + `]}`, ""},
		{"malformed", `{"products":[`, "malformed"},
		{"trailing", `{"products":[` + ok + `]} {}`, "trailing"},
		{"unknown field", `{"products":[{"id":"a","nope":1}]}`, "unknown field"},
		{"empty", `{"products":[]}`, "no products"},
		{"duplicate", `{"products":[` + ok + `,` + ok + `]}`, `duplicate id "a"`},
		{"missing id", `{"products":[{"name":"A","category":"C","price_cents":1,"description":"d"}]}`, "missing field id"},
		{"bad id", `{"products":[{"id":"A B","name":"A","category":"C","price_cents":1,"description":"d"}]}`, "bad id"},
		{"missing name", `{"products":[{"id":"a","category":"C","price_cents":1,"description":"d"}]}`, "missing field name"},
		{"blank category", `{"products":[{"id":"a","name":"A","category":"  ","price_cents":1,"description":"d"}]}`, "missing field category"},
		{"no price", `{"products":[{"id":"a","name":"A","category":"C","description":"d"}]}`, "price_cents"},
		{"negative price", `{"products":[{"id":"a","name":"A","category":"C","price_cents":-5,"description":"d"}]}`, "price_cents"},
		{"bad image", `{"products":[{"id":"a","name":"A","category":"C","price_cents":1,"description":"d","image":"../x.svg"}]}`, "bad image"},
		{"long name", `{"products":[{"id":"a","name":"` + strings.Repeat("n", 121) + `","category":"C","price_cents":1,"description":"d"}]}`, "longer than"},
		{"translated", `{"category_i18n":{"C":{"zh-CN":"丙"}},"products":[{"id":"a","name":"A","category":"C","price_cents":1,"description":"d","name_i18n":{"zh-CN":"甲"},"description_i18n":{"zh-CN":"丁"}}]}`, ""},
		{"blank translation", `{"products":[{"id":"a","name":"A","category":"C","price_cents":1,"description":"d","name_i18n":{"zh-CN":" "}}]}`, "name_i18n: missing field zh-CN"},
		{"long translation", `{"products":[{"id":"a","name":"A","category":"C","price_cents":1,"description":"d","description_i18n":{"zh-CN":"` + strings.Repeat("长", 501) + `"}}]}`, "description_i18n: field zh-CN longer than 500"},
		{"bad language", `{"products":[{"id":"a","name":"A","category":"C","price_cents":1,"description":"d","name_i18n":{"chinese":"甲"}}]}`, "bad language code"},
		{"uncanonical language", `{"products":[{"id":"a","name":"A","category":"C","price_cents":1,"description":"d","name_i18n":{"zh-cn":"甲"}}]}`, "bad language code"},
		{"unknown category name", `{"category_i18n":{"X":{"zh-CN":"丙"}},"products":[` + ok + `]}`, `"X" is no product's category`},
		{"blank category name", `{"category_i18n":{"C":{"zh-CN":""}},"products":[` + ok + `]}`, `category_i18n "C": missing field zh-CN`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.ParseCatalog([]byte(tt.in))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// resultIDs returns the ids of every result.
func resultIDs(r store.Results) []string {
	var out []string
	for _, p := range r.Slice(0, r.Len()) {
		out = append(out, p.ID)
	}
	return out
}

func TestCatalog_Search(t *testing.T) {
	c, err := store.ParseCatalog([]byte(`{"products":[
		{"id":"quiet","name":"Spark Plug","category":"Engine","price_cents":1,"description":"quiet brake-friendly iridium tip"},
		{"id":"pads","name":"Ceramic Brake Pads","category":"Brakes","price_cents":1,"description":"quiet"},
		{"id":"disc","name":"Brake Disc","category":"Brakes","price_cents":1,"description":"vented"},
		{"id":"belag","name":"Bremsbeläge vorne","category":"Bremsen","price_cents":1,"description":"Keramik, leise"},
		{"id":"zh","name":"陶瓷刹车片（前轴）","category":"制动系统","price_cents":1,"description":"低粉尘陶瓷配方"},
		{"id":"wide","name":"ＨＥＡＤＬＡＭＰ Ｈ７","category":"Lighting","price_cents":1,"description":"full-width letters"},
		{"id":"cafe","name":"Café Racer Mirror","category":"Body","price_cents":1,"description":"chrome, for a cafe racer"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, category, query string
		want                  []string
	}{
		{"all", "", "", []string{"quiet", "pads", "disc", "belag", "zh", "wide", "cafe"}},
		{"category", "Brakes", "", []string{"pads", "disc"}},
		{"name before description", "", "brake", []string{"pads", "disc", "quiet"}},
		{"any case", "", "BRAKE", []string{"pads", "disc", "quiet"}},
		{"all words", "", "brake quiet", []string{"pads", "quiet"}},
		{"more words in the name first", "", "ceramic pads quiet", []string{"pads"}},
		{"name words rank", "", "brake plug", []string{"quiet"}},
		{"words across fields", "", "plug iridium", []string{"quiet"}},
		{"description", "", "iridium", []string{"quiet"}},
		{"category and query", "Brakes", "quiet", []string{"pads"}},
		{"query outside category", "Engine", "disc", nil},
		{"no match", "", "turbocharger", nil},
		{"accent-free query", "", "Bremsbelage", []string{"belag"}},
		{"accented query", "", "BREMSBELÄGE", []string{"belag"}},
		{"accented text, plain query", "", "cafe", []string{"cafe"}},
		{"plain text, accented query", "", "café racer", []string{"cafe"}},
		{"chinese substring", "", "刹车", []string{"zh"}},
		{"chinese one character", "", "瓷", []string{"zh"}},
		{"chinese description", "", "粉尘", []string{"zh"}},
		{"chinese category", "制动系统", "刹车片", []string{"zh"}},
		{"full-width text, plain query", "", "headlamp h7", []string{"wide"}},
		{"plain text, full-width query", "", "ＢＲＡＫＥ", []string{"pads", "disc", "quiet"}},
		{"short word", "", "h7", []string{"wide"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resultIDs(c.Search(tt.category, tt.query))
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Search(%q, %q) = %v, want %v", tt.category, tt.query, got, tt.want)
			}
		})
	}
}

func TestResults_Slice(t *testing.T) {
	c, _, err := testkit.GenerateCatalog(100)
	if err != nil {
		t.Fatal(err)
	}
	r := c.Search("", "")
	tests := []struct {
		name     string
		from, to int
		want     int
	}{{"first page", 0, 24, 24}, {"last page", 96, 120, 4}, {"beyond", 200, 224, 0}, {"negative", -5, 2, 2}, {"reversed", 10, 5, 0}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.Slice(tt.from, tt.to)
			if len(got) != tt.want {
				t.Fatalf("got %d products, want %d", len(got), tt.want)
			}
			if len(got) > 0 && got[0].ID != c.Products()[max(tt.from, 0)].ID {
				t.Errorf("first %s, want %s", got[0].ID, c.Products()[max(tt.from, 0)].ID)
			}
		})
	}
}

// TestCatalog_SearchIndex checks the trigram index against a plain scan of
// every product, on a generated catalog, for words of every length.
func TestCatalog_SearchIndex(t *testing.T) {
	c, _, err := testkit.GenerateCatalog(2000)
	if err != nil {
		t.Fatal(err)
	}
	queries := []string{"brake", "pads front", "o", "oil filter", testkit.CatalogPart(1234), "1234", "vented disc pair", "zzz", "mm", "spark plug iridium"}
	for _, cat := range append([]string{""}, c.Categories()...) {
		for _, q := range queries {
			words := strings.Fields(store.Fold(q))
			ranks := make([][]string, len(words)+1)
			for _, p := range c.Products() {
				name, text := store.Fold(p.Name), store.Fold(p.Name+"\n"+p.Category+"\n"+p.Description)
				if (cat != "" && p.Category != cat) || !containsAll(text, words) {
					continue
				}
				inName := 0
				for _, w := range words {
					if strings.Contains(name, w) {
						inName++
					}
				}
				ranks[len(words)-inName] = append(ranks[len(words)-inName], p.ID)
			}
			want := slices.Concat(ranks...)
			if got := resultIDs(c.Search(cat, q)); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("Search(%q, %q): got %d results, want %d", cat, q, len(got), len(want))
			}
		}
	}
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// BenchmarkCatalog_Search measures one search in a 10,000-part catalog:
// a word the trigram index narrows to one part, a common word, and a word
// too short for the index (a scan of every product).
func BenchmarkCatalog_Search(b *testing.B) {
	c, _, err := testkit.GenerateCatalog(10000)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{testkit.CatalogPart(4242), "brake", "mm"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				if r := c.Search("", q); r.Len() == 0 {
					b.Fatal("nothing found")
				}
			}
		})
	}
}

// TestDefaultCatalog_Chinese checks that the embedded catalog names every
// product and category in Chinese, and that English stands in for a
// missing translation.
func TestDefaultCatalog_Chinese(t *testing.T) {
	c, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Products() {
		if p.NameI18n["zh-CN"] == "" || p.DescriptionI18n["zh-CN"] == "" || p.CategoryI18n["zh-CN"] == "" {
			t.Errorf("%s: no Chinese name, description or category", p.ID)
		}
	}
	for _, cat := range c.Categories() {
		if c.CategoryI18n()[cat]["zh-CN"] == "" {
			t.Errorf("category %q has no Chinese name", cat)
		}
	}
	if got := (store.Names{"zh-CN": "甲"}).In("fr", "A"); got != "A" {
		t.Errorf("missing language: got %q, want the English A", got)
	}
	if got := store.Names(nil).In("zh-CN", "A"); got != "A" {
		t.Errorf("no translations: got %q, want the English A", got)
	}
}

func TestProduct_Price(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{1, "$0.01"}, {4999, "$49.99"}, {100000, "$1000.00"}}
	for _, tt := range tests {
		if got := (store.Product{PriceCents: tt.in}).Price(); got != tt.want {
			t.Errorf("Price(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
