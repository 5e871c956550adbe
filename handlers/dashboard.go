package handlers

import (
	"cmp"
	"encoding/csv"
	"fmt"
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
	bad := func(msg string) (dashboardQuery, error) {
		return dashboardQuery{}, fiber.NewError(fiber.StatusBadRequest, msg)
	}
	switch {
	case sortColumns[q.Sort] == "":
		return bad("Unknown sort column.")
	case q.Dir != "" && q.Dir != "asc" && q.Dir != "desc":
		return bad("Sort direction must be asc or desc.")
	case len(q.Category) > maxCategoryLen || !utf8.ValidString(q.Category):
		return bad("Unknown category.")
	case utf8.RuneCountInString(q.Text) > maxQueryLen || !utf8.ValidString(q.Text):
		return bad(fmt.Sprintf("Search text is limited to %d characters.", maxQueryLen))
	case q.Product != "" && (len(q.Product) > maxProductLen || !store.ValidID(q.Product)):
		return bad("Unknown product.")
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

// SinceText formats Since for people.
func (n staleNotice) SinceText() string { return clock(n.Since) }

// SinceISO formats Since for <time datetime>.
func (n staleNotice) SinceISO() string { return n.Since.UTC().Format(time.RFC3339) }

// clock formats a time as the dashboard shows it: UTC, with the date only
// when it is not today.
func clock(t time.Time) string {
	t = t.UTC()
	if t.Format(time.DateOnly) != time.Now().UTC().Format(time.DateOnly) {
		return t.Format("Jan 2, 15:04:05 UTC")
	}
	return t.Format("15:04:05 UTC")
}

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

// SharePercent formats the share for people.
func (r productRow) SharePercent() string { return percent(r.Share) }

type productsView struct {
	fragment
	Query   dashboardQuery
	Rows    []productRow
	Total   int // products before filtering
	Options []store.ProductStats
}

type categoryRow struct {
	store.CategoryStats
	Share, Bar float64 // as in productRow
}

// Name is the category's label; products missing from the catalog table
// have none.
func (r categoryRow) Name() string { return cmp.Or(r.Category, "Not in catalog") }

// SharePercent formats the share for people.
func (r categoryRow) SharePercent() string { return percent(r.Share) }

type categoriesView struct {
	fragment
	Rows []categoryRow
}

type chartView struct {
	fragment
	chart
	Product, ProductName string
}

type workerView struct {
	fragment
	Workers   []store.WorkerStatus
	Heartbeat time.Time // the latest heartbeat of any consumer
	Latest    store.WorkerStatus
	Behind    staleNotice // the worker has not synced for too long
}

// HeartbeatText formats the heartbeat for people.
func (w workerView) HeartbeatText() string { return clock(w.Heartbeat) }

// LastBatchText formats the latest consumer's last batch time.
func (w workerView) LastBatchText() string {
	if !w.Latest.LastBatchAt.Valid {
		return "never"
	}
	return clock(w.Latest.LastBatchAt.Time)
}

// adminPage is pages/admin: every fragment, plus what the controls need.
type adminPage struct {
	layoutData
	Query      dashboardQuery
	Categories []string
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

// categoriesOf lists the categories of rows, sorted, without the empty one.
func categoriesOf(rows []store.ProductStats) []string {
	var out []string
	for _, r := range rows {
		if r.Category != "" && !slices.Contains(out, r.Category) {
			out = append(out, r.Category)
		}
	}
	slices.Sort(out)
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
		return fiber.NewError(fiber.StatusBadRequest, "Unknown category.")
	}
	if q.Product != "" && !slices.ContainsFunc(rows, func(r store.ProductStats) bool { return r.ID == q.Product }) {
		return fiber.NewError(fiber.StatusBadRequest, "Unknown product.")
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

// formatCount writes n with thousands separators: 1,234,567.
func formatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "−" + b.String()
	}
	return b.String()
}

// formatChange writes a change with its sign: +3, −2, 0.
func formatChange(n int64) string {
	if n > 0 {
		return "+" + formatCount(n)
	}
	return formatCount(n)
}

func share(part, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(part) / float64(total)
}

func percent(f float64) string {
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}
