package store

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

//go:embed catalog.json
var defaultCatalog []byte

// Product is one auto part in the catalog.
type Product struct {
	ID          string `json:"id" db:"id"`
	Name        string `json:"name" db:"name"`
	Category    string `json:"category" db:"category"`
	PriceCents  int64  `json:"price_cents" db:"price_cents"`
	Description string `json:"description" db:"description"`
	Image       string `json:"image" db:"image"`
	// NameI18n and DescriptionI18n are the name and description in other
	// languages; where one is missing, the English field stands.
	NameI18n        Names `json:"name_i18n,omitempty" db:"-"`
	DescriptionI18n Names `json:"description_i18n,omitempty" db:"-"`
	// CategoryI18n names the category in other languages; the catalog
	// gives it once per category (category_i18n), ParseCatalog copies it here.
	CategoryI18n Names `json:"-" db:"-"`
}

// Price formats the price for people, e.g. "$49.99".
func (p Product) Price() string {
	return fmt.Sprintf("$%d.%02d", p.PriceCents/100, p.PriceCents%100)
}

// Catalog is an immutable, validated list of products, safe for concurrent use.
type Catalog struct {
	products      []Product
	byID          map[string]int
	categories    []string
	categoryNames map[string]Names
	index         *searchIndex
}

var imagePattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*\.svg$`)

// Limits on catalog fields, so an operator's file cannot bloat every page.
const (
	maxIDLen          = 64
	maxNameLen        = 120
	maxCategoryLen    = 60
	maxDescriptionLen = 500
	maxProducts       = 10000
	maxPriceCents     = 100_000_000
)

// ValidID reports whether id has the shape of a product id. Handlers use it to
// reject junk before touching any store.
// It is ^[a-z0-9]+(-[a-z0-9]+)*$ of at most maxIDLen bytes, written out
// because the worker checks every event's id: the regexp was 3 % of its
// CPU (FuzzValidID compares the two).
func ValidID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	dash := true // no dash first, none after a dash
	for i := range len(id) {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			dash = false
		case c == '-' && !dash:
			dash = true
		default:
			return false
		}
	}
	return !dash // and none last
}

// DefaultCatalog returns the embedded catalog.
func DefaultCatalog() (*Catalog, error) {
	c, err := ParseCatalog(defaultCatalog)
	if err != nil {
		return nil, fmt.Errorf("embedded catalog: %w", err)
	}
	return c, nil
}

// LoadCatalog reads an operator's catalog file; an empty path means the
// embedded default.
func LoadCatalog(path string) (*Catalog, error) {
	if path == "" {
		return DefaultCatalog()
	}
	data, err := os.ReadFile(path) // #nosec G304 -- the operator names their own catalog file (PHOENIX_CATALOG)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	c, err := ParseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

// ParseCatalog decodes and validates a catalog document of the form
// {"products": [...]}. Unknown fields, duplicate ids and missing or oversized
// fields are refused with a message naming the product and field.
func ParseCatalog(data []byte) (*Catalog, error) {
	var doc struct {
		// Categories names each category in other languages.
		Categories map[string]Names `json:"category_i18n"`
		Products   []Product        `json:"products"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("malformed catalog: %w", err)
	}
	if dec.More() {
		return nil, errors.New("malformed catalog: trailing data after the document")
	}
	if len(doc.Products) == 0 {
		return nil, errors.New("catalog has no products")
	}
	if len(doc.Products) > maxProducts {
		return nil, fmt.Errorf("catalog has %d products, more than %d", len(doc.Products), maxProducts)
	}
	c := &Catalog{products: doc.Products, byID: make(map[string]int, len(doc.Products)), categoryNames: doc.Categories}
	for i, p := range doc.Products {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("product %d (%q): %w", i+1, p.ID, err)
		}
		if j, dup := c.byID[p.ID]; dup {
			return nil, fmt.Errorf("product %d: duplicate id %q (also product %d)", i+1, p.ID, j+1)
		}
		c.byID[p.ID] = i
		if !slices.Contains(c.categories, p.Category) {
			c.categories = append(c.categories, p.Category)
		}
	}
	for cat, names := range doc.Categories {
		if !slices.Contains(c.categories, cat) {
			return nil, fmt.Errorf("category_i18n: %q is no product's category", cat)
		}
		if err := names.validate(maxCategoryLen); err != nil {
			return nil, fmt.Errorf("category_i18n %q: %w", cat, err)
		}
	}
	for i := range c.products {
		c.products[i].CategoryI18n = doc.Categories[c.products[i].Category]
	}
	c.index = newSearchIndex(c.products)
	return c, nil
}

func (p Product) validate() error {
	text := []struct {
		field, value string
		max          int
	}{
		{"name", p.Name, maxNameLen},
		{"category", p.Category, maxCategoryLen},
		{"description", p.Description, maxDescriptionLen},
	}
	switch {
	case p.ID == "":
		return errors.New("missing field id")
	case !ValidID(p.ID):
		return fmt.Errorf("bad id %q: want lower-case letters, digits and single dashes, at most %d characters", p.ID, maxIDLen)
	case p.PriceCents <= 0 || p.PriceCents > maxPriceCents:
		return fmt.Errorf("bad or missing field price_cents %d", p.PriceCents)
	case p.Image != "" && !imagePattern.MatchString(p.Image):
		return fmt.Errorf("bad image %q: want a file name like brake-pads.svg", p.Image)
	}
	for _, f := range text {
		if err := checkText(f.field, f.value, f.max); err != nil {
			return err
		}
	}
	if err := p.NameI18n.validate(maxNameLen); err != nil {
		return fmt.Errorf("name_i18n: %w", err)
	}
	if err := p.DescriptionI18n.validate(maxDescriptionLen); err != nil {
		return fmt.Errorf("description_i18n: %w", err)
	}
	return nil
}

// checkText checks one text field: present, UTF-8, at most limit characters.
func checkText(field, value string, limit int) error {
	switch {
	case strings.TrimSpace(value) == "":
		return fmt.Errorf("missing field %s", field)
	case !utf8.ValidString(value):
		return fmt.Errorf("field %s is not valid UTF-8", field)
	case utf8.RuneCountInString(value) > limit:
		return fmt.Errorf("field %s longer than %d characters", field, limit)
	}
	return nil
}

// CategoryI18n returns the categories' names in other languages, by
// category. The map must not be modified.
func (c *Catalog) CategoryI18n() map[string]Names { return c.categoryNames }

// Products returns all products in catalog order. The slice must not be modified.
func (c *Catalog) Products() []Product { return c.products }

// Categories returns the categories in order of first appearance.
func (c *Catalog) Categories() []string { return c.categories }

// Product returns the product with the given id.
func (c *Catalog) Product(id string) (Product, bool) {
	i, ok := c.byID[id]
	if !ok {
		return Product{}, false
	}
	return c.products[i], true
}

// InOrder returns the catalog's products among ids, in catalog order,
// at a cost that grows with ids, not with the catalog.
func (c *Catalog) InOrder(ids []string) []Product {
	at := make([]int, 0, len(ids))
	for _, id := range ids {
		if i, ok := c.byID[id]; ok {
			at = append(at, i)
		}
	}
	slices.Sort(at)
	out := make([]Product, len(at))
	for j, i := range at {
		out[j] = c.products[i]
	}
	return out
}

// IDs returns every product id in catalog order.
func (c *Catalog) IDs() []string {
	ids := make([]string, len(c.products))
	for i, p := range c.products {
		ids[i] = p.ID
	}
	return ids
}

// HasCategory reports whether some product is in category.
func (c *Catalog) HasCategory(category string) bool {
	return slices.Contains(c.categories, category)
}
