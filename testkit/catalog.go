package testkit

import (
	"encoding/json"
	"fmt"

	"phoenix/store"
)

// CatalogPart is the name suffix of part i in a generated catalog: a query
// for it finds that part alone.
func CatalogPart(i int) string { return fmt.Sprintf("part %05d", i) }

// GenerateCatalog returns a catalog document of n parts made from the
// embedded catalog's products, each with its own id and a name ending in
// CatalogPart(i): the 10,000-part catalog of the benchmarks, which is
// generated rather than committed. It returns the document too, for a
// process that reads it from PHOENIX_CATALOG.
func GenerateCatalog(n int) (*store.Catalog, []byte, error) {
	base, err := store.DefaultCatalog()
	if err != nil {
		return nil, nil, err
	}
	products := make([]store.Product, n)
	for i := range products {
		p := base.Products()[i%len(base.Products())]
		p.ID = fmt.Sprintf("%s-%05d", p.ID, i)
		p.Name = p.Name + ", " + CatalogPart(i)
		products[i] = p
	}
	doc, err := json.Marshal(map[string]any{"products": products})
	if err != nil {
		return nil, nil, err
	}
	c, err := store.ParseCatalog(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("generated catalog: %w", err)
	}
	return c, doc, nil
}
