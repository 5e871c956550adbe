package store

import (
	"maps"
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
	"golang.org/x/text/width"
)

// Fold returns s as search compares text: full-width forms made narrow,
// accents removed ("Bremsbeläge" → "bremsbelage") and case folded. Chinese
// text passes through unchanged, so its substrings still match.
func Fold(s string) string {
	// A chain holds state: one per call, so Fold is safe for concurrent use.
	t := transform.Chain(width.Fold, norm.NFD, runes.Remove(runes.In(unicode.Mn)), cases.Fold(), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		return strings.ToLower(s) // only on invalid UTF-8, which the catalog and handlers refuse
	}
	return out
}

// searchIndex is built once when the catalog is loaded, so that a search
// costs the products it finds, not a scan of every description.
type searchIndex struct {
	names []string // per product, its folded name
	texts []string // per product, its folded name, category and description
	// grams maps each three-byte sequence of the texts to the products
	// whose text holds it, in catalog order. A query word of three bytes or
	// more (one Chinese character is three) can only match a product on
	// the list of each of its trigrams.
	grams      map[uint32][]int32
	all        []int32            // every product, in catalog order
	byCategory map[string][]int32 // the products of each category, in catalog order
}

func newSearchIndex(products []Product) *searchIndex {
	x := &searchIndex{
		names:      make([]string, len(products)),
		texts:      make([]string, len(products)),
		grams:      map[uint32][]int32{},
		all:        make([]int32, len(products)),
		byCategory: map[string][]int32{},
	}
	for i, p := range products {
		n := int32(i) // #nosec G115 -- at most maxProducts
		x.names[i] = Fold(p.searchName())
		x.texts[i] = Fold(p.searchText())
		x.all[i] = n
		x.byCategory[p.Category] = append(x.byCategory[p.Category], n)
		t := x.texts[i]
		for j := 0; j+3 <= len(t); j++ {
			g := trigram(t[j:])
			// Products come in order, so a repeat is always the last entry.
			if l := x.grams[g]; len(l) == 0 || l[len(l)-1] != n {
				x.grams[g] = append(l, n)
			}
		}
	}
	for g, l := range x.grams {
		x.grams[g] = slices.Clip(l)
	}
	return x
}

// searchName is what ranks a product in a search: its name, in every
// language the catalog gives, so a search works whatever the shopper's
// language.
func (p Product) searchName() string { return joinNames(p.Name, p.NameI18n) }

// searchText is what a search looks in: the names, categories and
// descriptions, joined by newlines, which no query word contains, so that a
// word cannot match across two fields.
func (p Product) searchText() string {
	return p.searchName() + "\n" + joinNames(p.Category, p.CategoryI18n) + "\n" + joinNames(p.Description, p.DescriptionI18n)
}

// joinNames joins a text with its translations, in a fixed order, by
// newlines.
func joinNames(en string, other Names) string {
	parts := []string{en}
	for _, k := range slices.Sorted(maps.Keys(other)) {
		parts = append(parts, other[k])
	}
	return strings.Join(parts, "\n")
}

func trigram(s string) uint32 { return uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2]) }

// candidates returns the shortest trigram list among words (nil, true when
// some trigram occurs nowhere), or ok false when no word is long enough
// to have a trigram.
func (x *searchIndex) candidates(words []string) (list []int32, ok bool) {
	for _, w := range words {
		for j := 0; j+3 <= len(w); j++ {
			l := x.grams[trigram(w[j:])]
			if !ok || len(l) < len(list) {
				list, ok = l, true
			}
			if len(l) == 0 {
				return nil, true
			}
		}
	}
	return list, ok
}

// search returns the positions of the products in scope (a category's
// list or all) whose text holds every word, ranked by how many of the
// words their name holds (name matches before description matches), then
// in catalog order.
func (x *searchIndex) search(scope []int32, words []string) []int32 {
	list, ok := x.candidates(words)
	if !ok {
		list = scope // only short words: check every product in scope
	} else if len(scope) != len(x.all) {
		list = intersect(list, scope)
	}
	ranks := make([][]int32, len(words)+1) // by words in the name, most first
	for _, i := range list {
		if !containsAll(x.texts[i], words) {
			continue
		}
		inName := 0
		for _, w := range words {
			if strings.Contains(x.names[i], w) {
				inName++
			}
		}
		ranks[len(words)-inName] = append(ranks[len(words)-inName], i)
	}
	return slices.Concat(ranks...)
}

// intersect returns the entries of a that are also in b; both ascending.
func intersect(a, b []int32) []int32 {
	var out []int32
	for _, v := range a {
		if _, found := slices.BinarySearch(b, v); found {
			out = append(out, v)
		}
	}
	return out
}

func containsAll(text string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(text, w) {
			return false
		}
	}
	return true
}

// Results are the products a search found, best first. The zero value is
// an empty result.
type Results struct {
	products []Product
	hits     []int32 // positions in products
}

// Len returns how many products were found.
func (r Results) Len() int { return len(r.hits) }

// Slice returns the found products from index from up to (not including)
// to, clamped to the results; it costs to-from, whatever the catalog's size.
func (r Results) Slice(from, to int) []Product {
	from, to = max(0, min(from, len(r.hits))), max(0, min(to, len(r.hits)))
	out := make([]Product, 0, max(0, to-from))
	for _, i := range r.hits[from:max(from, to)] {
		out = append(out, r.products[i])
	}
	return out
}

// Search returns the products in category (all when empty) whose name,
// category or description contains every word of query, ignoring case,
// accents and width; those whose name alone contains every word come first.
func (c *Catalog) Search(category, query string) Results {
	scope := c.index.all
	if category != "" {
		scope = c.index.byCategory[category]
	}
	words := strings.Fields(Fold(query))
	if len(words) == 0 {
		return Results{products: c.products, hits: scope}
	}
	return Results{products: c.products, hits: c.index.search(scope, words)}
}
