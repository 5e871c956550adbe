package store_test

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"phoenix/store"
)

// FuzzParseCatalog feeds ParseCatalog arbitrary documents: it must never
// panic, and whatever it accepts must be a catalog the shop can serve.
func FuzzParseCatalog(f *testing.F) {
	def, err := os.ReadFile("catalog.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	f.Add([]byte(`{"products":[{"id":"a","name":"A","category":"C","price_cents":100,"description":"d","image":"a.svg"}]}`))
	f.Add([]byte(`{"products":[]}`))
	f.Add([]byte(`{"products":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := store.ParseCatalog(data)
		if err != nil {
			if c != nil {
				t.Fatal("catalog returned with an error")
			}
			return
		}
		if len(c.Products()) == 0 {
			t.Fatal("accepted an empty catalog")
		}
		for _, p := range c.Products() {
			if !store.ValidID(p.ID) || p.PriceCents <= 0 || !utf8.ValidString(p.Name+p.Category+p.Description) {
				t.Fatalf("accepted a bad product %+v", p)
			}
			if got, ok := c.Product(p.ID); !ok || !reflect.DeepEqual(got, p) {
				t.Fatalf("product %q not found by id", p.ID)
			}
			if !c.HasCategory(p.Category) {
				t.Fatalf("category %q missing", p.Category)
			}
		}
		// What was accepted survives a round trip unchanged.
		doc, err := json.Marshal(map[string]any{"products": c.Products()})
		if err != nil {
			t.Fatal(err)
		}
		again, err := store.ParseCatalog(doc)
		if err != nil || len(again.Products()) != len(c.Products()) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzValidID checks that an id accepted by ValidID is safe in a URL path
// and a Redis key: short, lower-case letters, digits and inner dashes; and
// that ValidID is the pattern it spells out.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"brake-pads", "a", "", "-a", "a-", "a--b", "A", "a/b", "a\x00", "ä", "a-b-c9", "-", "a-b-", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	pattern := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	f.Fuzz(func(t *testing.T, id string) {
		want := len(id) <= 64 && pattern.MatchString(id)
		if got := store.ValidID(id); got != want {
			t.Fatalf("ValidID(%q) = %v, the pattern says %v", id, got, want)
		}
		if !want {
			return
		}
		if id == "" || len(id) > 64 || id[0] == '-' || id[len(id)-1] == '-' {
			t.Fatalf("accepted %q", id)
		}
		for i := range len(id) {
			ch := id[i]
			if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-') {
				t.Fatalf("accepted %q with byte %q", id, ch)
			}
		}
	})
}
