package store_test

import (
	"strings"
	"testing"

	"phoenix/store"
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

func TestCatalog_Search(t *testing.T) {
	c, err := store.ParseCatalog([]byte(`{"products":[
		{"id":"pads","name":"Ceramic Brake Pads","category":"Brakes","price_cents":1,"description":"quiet"},
		{"id":"disc","name":"Brake Disc","category":"Brakes","price_cents":1,"description":"vented"},
		{"id":"plug","name":"Spark Plug","category":"Engine","price_cents":1,"description":"iridium"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, category, query string
		want                  []string
	}{
		{"all", "", "", []string{"pads", "disc", "plug"}},
		{"category", "Brakes", "", []string{"pads", "disc"}},
		{"word any case", "", "BRAKE", []string{"pads", "disc"}},
		{"all words", "", "brake quiet", []string{"pads"}},
		{"description", "", "iridium", []string{"plug"}},
		{"category and query", "Engine", "brake", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range c.Search(tt.category, tt.query) {
				got = append(got, p.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %v, want %v", got, tt.want)
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
