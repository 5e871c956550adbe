package handlers

import (
	"cmp"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"phoenix/store"
)

// The dashboard's view models and its query (parsing, URLs); the ranking,
// sorting and CSV are the read model's (store.Dashboard).

// Limits on the dashboard's query string; anything else is a 400.
const (
	maxCategoryLen = 60
	maxProductLen  = 64
)

// dashboardQuery is the dashboard's state, carried in its URL: the table's
// filter and order, and the product the chart shows ("" for all).
type dashboardQuery struct {
	Category, Text, Sort, Dir, Product string
}

// parseDashboardQuery reads and validates the query string. Whether the
// category and product exist is checked later, against the data.
func parseDashboardQuery(c *fiber.Ctx) (dashboardQuery, error) {
	q := dashboardQuery{
		Category: utils.CopyString(c.Query("category")),
		Text:     utils.CopyString(strings.TrimSpace(c.Query("q"))),
		Sort:     utils.CopyString(c.Query("sort", "rank")),
		Dir:      utils.CopyString(c.Query("dir")),
		Product:  utils.CopyString(c.Query("product")),
	}
	bad := func(id string, args ...any) (dashboardQuery, error) {
		return dashboardQuery{}, refuse(fiber.StatusBadRequest, id, args...)
	}
	switch {
	case store.SortDir(q.Sort) == "":
		return bad("error.sort_column")
	case q.Dir != "" && q.Dir != "asc" && q.Dir != "desc":
		return bad("error.sort_dir")
	case len(q.Category) > maxCategoryLen || !utf8.ValidString(q.Category):
		return bad("error.unknown_category")
	case utf8.RuneCountInString(q.Text) > maxQueryLen || !utf8.ValidString(q.Text):
		return bad("error.query_too_long", maxQueryLen)
	case q.Product != "" && (len(q.Product) > maxProductLen || !store.ValidID(q.Product)):
		return bad("error.unknown_product")
	}
	if q.Dir == "" {
		q.Dir = store.SortDir(q.Sort)
	}
	return q, nil
}

// filter is the products table's part of the query.
func (q dashboardQuery) filter() store.ProductFilter {
	return store.ProductFilter{Category: q.Category, Text: q.Text, Sort: q.Sort, Dir: q.Dir}
}

// values encodes the query, leaving out defaults so URLs stay short.
func (q dashboardQuery) values() url.Values {
	v := url.Values{}
	set := func(k, val, def string) {
		if val != def {
			v.Set(k, val)
		}
	}
	set("category", q.Category, "")
	set("q", q.Text, "")
	sort := cmp.Or(q.Sort, "rank")
	set("sort", sort, "rank")
	set("dir", cmp.Or(q.Dir, store.SortDir(sort)), store.SortDir(sort))
	set("product", q.Product, "")
	return v
}

// URL returns path with the query string of q.
func (q dashboardQuery) URL(path string) string {
	if enc := q.values().Encode(); enc != "" {
		return path + "?" + enc
	}
	return path
}

// SortURL is the dashboard URL that sorts by col: its first direction, or
// the other one when already sorted by col.
func (q dashboardQuery) SortURL(col string) string {
	dir := store.SortDir(col)
	if q.Sort == col {
		dir = map[string]string{"asc": "desc", "desc": "asc"}[q.Dir]
	}
	q.Sort, q.Dir = col, dir
	return q.URL("/admin")
}

// ChartURL is the dashboard URL that charts product id.
func (q dashboardQuery) ChartURL(id string) string {
	q.Product = id
	return q.URL("/admin")
}

// AriaSort is the aria-sort value of col's header.
func (q dashboardQuery) AriaSort(col string) string {
	switch {
	case q.Sort != col:
		return "none"
	case q.Dir == "asc":
		return "ascending"
	}
	return "descending"
}

// staleNotice is what partials/stale-notice shows; zero shows nothing.
type staleNotice struct {
	Since   time.Time // the data shown is as of then
	Reason  string    // why it may be stale
	Missing bool      // there is no data at all yet
}

// Stale reports whether there is anything to show.
func (n staleNotice) Stale() bool { return n.Missing || !n.Since.IsZero() }

// SinceISO formats Since for <time datetime>.
func (n staleNotice) SinceISO() string { return n.Since.UTC().Format(time.RFC3339) }

// fragment is what every polled part of the dashboard has.
type fragment struct {
	Poll   string // the URL that refreshes it
	Every  string // how often, for hx-trigger
	Notice staleNotice
}

type totalsView struct {
	fragment
	store.Totals
}

type productsView struct {
	fragment
	Query        dashboardQuery
	CategoryI18n store.Names // the names of Query.Category in other languages
	Rows         []store.ProductRow
	Total        int // products before filtering
	Options      []store.ProductStats
}

type categoriesView struct {
	fragment
	Rows []store.CategoryRow
}

type chartView struct {
	fragment
	chart
	Product, ProductName string
	ProductI18n          store.Names // the product's name in other languages
}

type workerView struct {
	fragment
	Workers   []store.WorkerStatus
	Heartbeat time.Time // the latest heartbeat of any consumer
	Latest    store.WorkerStatus
	Behind    staleNotice // the worker has not synced for too long
}

// adminPage is pages/admin: every fragment, plus what the controls need.
type adminPage struct {
	layoutData
	Query      dashboardQuery
	Categories []store.CategoryOption
	Totals     totalsView
	Chart      chartView
	Summary    categoriesView
	Table      productsView
	Worker     workerView
	Flow       flowView
	ExportURL  string
	Live       string // the live stream's URL; "" without one
}

// checkKnown refuses a category or product that the data does not have.
// Without data (PostgreSQL down since start) there is nothing to check
// against, and the fragment says so anyway.
func checkKnown(rows []store.ProductStats, q dashboardQuery) error {
	if len(rows) == 0 {
		return nil
	}
	if q.Category != "" && !store.HasCategory(rows, q.Category) {
		return refuse(fiber.StatusBadRequest, "error.unknown_category")
	}
	if q.Product != "" && !store.HasProduct(rows, q.Product) {
		return refuse(fiber.StatusBadRequest, "error.unknown_product")
	}
	return nil
}
