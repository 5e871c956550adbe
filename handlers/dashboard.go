package handlers

import (
	"cmp"
	"encoding/csv"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"phoenix/store"
)

// The dashboard's view models and the pure code behind them: query
// parsing, ranking, filtering, sorting and the CSV export.

// Limits on the dashboard's query string; anything else is a 400.
const (
	maxCategoryLen = 60
	maxProductLen  = 64
)

// sortColumns are the columns the products table sorts by, with the
// direction a first click gives.
var sortColumns = map[string]string{
	"rank": "asc", "name": "asc", "category": "asc", "likes": "desc", "share": "desc", "hour": "desc",
}

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
	case sortColumns[q.Sort] == "":
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
		q.Dir = sortColumns[q.Sort]
	}
	return q, nil
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
	set("dir", cmp.Or(q.Dir, sortColumns[sort]), sortColumns[sort])
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
	dir := sortColumns[col]
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

// productRow is one line of the products table.
type productRow struct {
	store.ProductStats
	Rank  int
	Share float64 // of all likes, 0..1
	Bar   float64 // likes relative to the most liked product, 0..1, for the bar
}

type productsView struct {
	fragment
	Query        dashboardQuery
	CategoryI18n store.Names // the names of Query.Category in other languages
	Rows         []productRow
	Total        int // products before filtering
	Options      []store.ProductStats
}

type categoryRow struct {
	store.CategoryStats
	Share, Bar float64 // as in productRow
}

type categoriesView struct {
	fragment
	Rows []categoryRow
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
	Categories []categoryOption
	Totals     totalsView
	Chart      chartView
	Summary    categoriesView
	Table      productsView
	Worker     workerView
	Flow       flowView
	ExportURL  string
	Live       string // the live stream's URL; "" without one
}

// productTable ranks rows by likes, works out each share, then filters and
// sorts them as q says. It costs O(products).
func productTable(rows []store.ProductStats, q dashboardQuery) []productRow {
	var total, top int64
	for _, r := range rows {
		total, top = total+r.Likes, max(top, r.Likes)
	}
	text := strings.ToLower(q.Text)
	out := make([]productRow, 0, len(rows))
	for i, r := range rows { // rows come most liked first
		if q.Category != "" && r.Category != q.Category {
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(r.Name+" "+r.ID), text) {
			continue
		}
		out = append(out, productRow{ProductStats: r, Rank: i + 1, Share: share(r.Likes, total), Bar: share(r.Likes, top)})
	}
	by := map[string]func(a, b productRow) int{
		"rank":     func(a, b productRow) int { return cmp.Compare(a.Rank, b.Rank) },
		"name":     func(a, b productRow) int { return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) },
		"category": func(a, b productRow) int { return cmp.Compare(a.Category, b.Category) },
		"likes":    func(a, b productRow) int { return cmp.Compare(a.Likes, b.Likes) },
		"share":    func(a, b productRow) int { return cmp.Compare(a.Likes, b.Likes) },
		"hour":     func(a, b productRow) int { return cmp.Compare(a.LastHour, b.LastHour) },
	}[q.Sort]
	slices.SortStableFunc(out, func(a, b productRow) int {
		c := by(a, b)
		if q.Dir == "desc" {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.Rank, b.Rank))
	})
	return out
}

// categoryTable adds each category's share of all likes.
func categoryTable(rows []store.CategoryStats) []categoryRow {
	var total, top int64
	for _, r := range rows {
		total, top = total+r.Likes, max(top, r.Likes)
	}
	out := make([]categoryRow, len(rows))
	for i, r := range rows {
		out[i] = categoryRow{CategoryStats: r, Share: share(r.Likes, total), Bar: share(r.Likes, top)}
	}
	return out
}

// categoryOption is one category of the filter: its key (the English
// name) and its names in other languages.
type categoryOption struct {
	Category     string
	CategoryI18n store.Names
}

// categoriesOf lists the categories of rows, sorted, without the empty one.
func categoriesOf(rows []store.ProductStats) []categoryOption {
	var out []categoryOption
	for _, r := range rows {
		if r.Category != "" && !slices.ContainsFunc(out, func(o categoryOption) bool { return o.Category == r.Category }) {
			out = append(out, categoryOption{Category: r.Category, CategoryI18n: r.CategoryI18n})
		}
	}
	slices.SortFunc(out, func(a, b categoryOption) int { return cmp.Compare(a.Category, b.Category) })
	return out
}

// checkKnown refuses a category or product that the data does not have.
// Without data (PostgreSQL down since start) there is nothing to check
// against, and the fragment says so anyway.
func checkKnown(rows []store.ProductStats, q dashboardQuery) error {
	if len(rows) == 0 {
		return nil
	}
	if q.Category != "" && !slices.ContainsFunc(rows, func(r store.ProductStats) bool { return r.Category == q.Category }) {
		return refuse(fiber.StatusBadRequest, "error.unknown_category")
	}
	if q.Product != "" && !slices.ContainsFunc(rows, func(r store.ProductStats) bool { return r.ID == q.Product }) {
		return refuse(fiber.StatusBadRequest, "error.unknown_product")
	}
	return nil
}

// writeCSV writes the products table with a header line. encoding/csv does
// the quoting; text cells that a spreadsheet would run as a formula get a
// leading apostrophe (OWASP's advice against CSV injection).
func writeCSV(w io.Writer, rows []productRow) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"rank", "product_id", "product", "category", "likes", "share_percent", "change_last_hour"})
	for _, r := range rows {
		_ = cw.Write([]string{
			strconv.Itoa(r.Rank), cell(r.ID), cell(r.Name), cell(r.Category), strconv.FormatInt(r.Likes, 10),
			strconv.FormatFloat(r.Share*100, 'f', 2, 64), strconv.FormatInt(r.LastHour, 10),
		})
	}
	cw.Flush()
	return cw.Error()
}

func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func share(part, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(part) / float64(total)
}
