package handlers

import (
	"strings"
	"testing"

	"phoenix"
	"phoenix/store"
)

// TestCards_MatchTemplate checks that the cut-up cards and Like answers are
// byte for byte what their templates render, for every form and for hostile
// values in every per-request slot, including a product whose name contains
// a marker (which must fall back to the template).
func TestCards_MatchTemplate(t *testing.T) {
	assets, err := NewAssets(phoenix.Assets())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range testLocales(t).List() {
		for _, name := range []string{cardTemplate, likeResultTemplate} {
			t.Run(l.Code+" "+name, func(t *testing.T) { testCardsMatch(t, assets, l, name) })
		}
	}
}

func testCardsMatch(t *testing.T, assets *Assets, l *Locale, name string) {
	views, err := NewEngine(phoenix.Views(), assets, l)
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := store.ParseCatalog([]byte(`{"products": [
		{"id": "plain", "name": "Brake pads", "category": "Brakes", "price_cents": 4999, "description": "d", "image": "brake-pads.svg"},
		{"id": "hostile", "name": "<script>alert(\"x\")</script> & 'quotes' +plus", "category": "A&B <i>", "price_cents": 1, "description": "d"},
		{"id": "marker", "name": "Kit ` + markCSRF + ` 7305991246118213", "category": "Kits", "price_cents": 100, "description": "d"}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	nexts := []string{"/", "/?q=brake+pads&category=A%26B", `/?q="><script>alert(1)</script>`, "/x?a='b'&c=<d>\x00"}
	csrfs := []string{"", "token.123.abc", `"><b>`}
	counts := []int64{0, 7, -1, 1 << 62, markCount}
	k := cards{name: name, num: l.Count}
	for _, p := range catalog.Products() {
		for _, liked := range []bool{false, true} {
			for _, known := range []bool{false, true} {
				for i, next := range nexts {
					for _, csrf := range csrfs {
						v := productView{Product: p, Count: counts[i%len(counts)], CountKnown: known, Liked: liked, Next: next, CSRF: csrf}
						var want strings.Builder
						if err := views.Render(&want, name, v); err != nil {
							t.Fatal(err)
						}
						got, err := k.render(views, []productView{v, v})
						if err != nil {
							t.Fatal(err)
						}
						if string(got) != want.String()+want.String() {
							t.Errorf("product %s liked=%v known=%v next=%q csrf=%q:\n got %s\nwant %s", p.ID, liked, known, next, csrf, got, want.String())
						}
					}
				}
			}
		}
	}
	forms := func(id string) *productCards {
		pc, ok := k.products.Load(id)
		if !ok {
			t.Fatalf("no cards of %s", id)
		}
		return pc.(*productCards)
	}
	if forms("plain").forms[cardFormIndex(true, true, true)].form == nil {
		t.Error("plain product was not cut up: the fast path is not used")
	}
	if forms("marker").forms[cardFormIndex(false, true, true)].form != nil {
		t.Error("a product whose name contains a marker was cut up")
	}
}
