package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The admin's read model over Stats: the data version its ETags and live
// stream follow, the last good answers it shows while PostgreSQL is down,
// and the ranked, filtered, sorted rows of its tables and CSV export. The
// handlers only parse requests and render.

// Dashboard defaults, used when the fields are zero.
const (
	DefaultStaleAfter = 30 * time.Second
	dashboardTimeout  = 2 * time.Second
	// maxSnapshots bounds the last good answers, should many products be charted.
	maxSnapshots = 1000
)

// Dashboard is the admin's read model. Its clock is Stats.Now.
type Dashboard struct {
	Stats      *Stats
	Log        *slog.Logger
	StaleAfter time.Duration // a worker heartbeat older than this makes the numbers "may be stale"

	mu   sync.Mutex
	data map[string]snapshot
	down bool // the last read failed; log changes only, not every poll
}

type snapshot struct {
	value any
	at    time.Time
}

// Stale says how old an answer is: zero for a fresh one, Since for the
// last good one, Missing when there is none.
type Stale struct {
	Since   time.Time
	Missing bool
}

// Now is the dashboard's one clock.
func (d *Dashboard) Now() time.Time { return d.Stats.Now() }

// Down reports whether the last statistics query failed.
func (d *Dashboard) Down() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.down
}

// Overdue reports whether a worker heartbeat at hb is too old.
func (d *Dashboard) Overdue(hb time.Time) bool {
	return d.Now().Sub(hb) > cmp.Or(d.StaleAfter, DefaultStaleAfter)
}

// Load runs query with a short timeout. On success it remembers the answer
// under key; on failure it returns the last answer for key and since when
// it is stale (or Missing when there is none).
func Load[T any](ctx context.Context, d *Dashboard, key string, query func(context.Context) (T, error)) (T, Stale) {
	ctx, cancel := context.WithTimeout(ctx, dashboardTimeout)
	defer cancel()
	v, err := query(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		if d.down {
			d.Log.Info("statistics database reachable again")
		}
		if d.data == nil || len(d.data) >= maxSnapshots {
			d.data = map[string]snapshot{}
		}
		d.data[key], d.down = snapshot{value: v, at: d.Now()}, false
		return v, Stale{}
	}
	if !d.down {
		d.Log.Warn("statistics database unreachable, showing the last data", "query", key, "err", err)
	}
	d.down = true
	if s, ok := d.data[key]; ok {
		return s.value.(T), Stale{Since: s.at}
	}
	var zero T
	return zero, Stale{Missing: true}
}

// Version names the version of what the statistics fragments show: the
// data's version (Stats.Version), the minute (the time windows move by
// the minute) and whether the worker is overdue. Equal names, equal
// fragments.
func (d *Dashboard) Version(ctx context.Context) (string, error) {
	vctx, cancel := context.WithTimeout(ctx, dashboardTimeout)
	v, err := d.Stats.Version(vctx)
	cancel()
	if err != nil {
		return "", err
	}
	overdue := !v.Heartbeat.IsZero() && d.Overdue(v.Heartbeat)
	return Hash("%d %d %d %d %s %d %v", v.Totals.Likes, v.Totals.Shoppers,
		v.Totals.Events, v.Heartbeat.UnixNano(), v.Products, d.Now().Unix()/60, overdue), nil
}

// Hash is a short hex digest of the formatted values, for versions and ETags.
func Hash(format string, args ...any) string {
	sum := sha256.Sum256(fmt.Appendf(nil, format, args...))
	return hex.EncodeToString(sum[:12])
}

// ProductStats reads every product's line, with its change over the last hour.
func (d *Dashboard) ProductStats(ctx context.Context) ([]ProductStats, error) {
	return d.Stats.ProductStats(ctx, d.Now().Add(-time.Hour))
}

// CategoryStats reads every category's line, with its change over the last hour.
func (d *Dashboard) CategoryStats(ctx context.Context) ([]CategoryStats, error) {
	return d.Stats.CategoryStats(ctx, d.Now().Add(-time.Hour))
}

// LikesPerMinute reads the last n minutes of product ("" for all).
func (d *Dashboard) LikesPerMinute(ctx context.Context, product string, n int) ([]Minute, error) {
	return d.Stats.LikesPerMinute(ctx, product, d.Now(), n)
}

// SortDir is the direction a first click on column col sorts in, "" for a
// column the products table does not sort by.
func SortDir(col string) string {
	switch col {
	case "rank", "name", "category":
		return "asc"
	case "likes", "share", "hour":
		return "desc"
	}
	return ""
}

// ProductFilter is which products the table shows and in what order.
type ProductFilter struct {
	Category, Text string
	Sort, Dir      string // a column SortDir knows; "asc" or "desc"
}

// ProductRow is one line of the products table.
type ProductRow struct {
	ProductStats
	Rank  int
	Share float64 // of all likes, 0..1
	Bar   float64 // likes relative to the most liked product, 0..1, for the bar
}

// ProductTable ranks rows (most liked first, as ProductStats returns them)
// by likes, works out each share, then filters and sorts them as f says.
// It costs O(products).
func ProductTable(rows []ProductStats, f ProductFilter) []ProductRow {
	var total, top int64
	for _, r := range rows {
		total, top = total+r.Likes, max(top, r.Likes)
	}
	text := strings.ToLower(f.Text)
	out := make([]ProductRow, 0, len(rows))
	for i, r := range rows {
		if f.Category != "" && r.Category != f.Category {
			continue
		}
		if text != "" && !strings.Contains(strings.ToLower(r.Name+" "+r.ID), text) {
			continue
		}
		out = append(out, ProductRow{ProductStats: r, Rank: i + 1, Share: share(r.Likes, total), Bar: share(r.Likes, top)})
	}
	by := map[string]func(a, b ProductRow) int{
		"rank":     func(a, b ProductRow) int { return cmp.Compare(a.Rank, b.Rank) },
		"name":     func(a, b ProductRow) int { return cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) },
		"category": func(a, b ProductRow) int { return cmp.Compare(a.Category, b.Category) },
		"likes":    func(a, b ProductRow) int { return cmp.Compare(a.Likes, b.Likes) },
		"share":    func(a, b ProductRow) int { return cmp.Compare(a.Likes, b.Likes) },
		"hour":     func(a, b ProductRow) int { return cmp.Compare(a.LastHour, b.LastHour) },
	}[cmp.Or(f.Sort, "rank")]
	slices.SortStableFunc(out, func(a, b ProductRow) int {
		c := by(a, b)
		if f.Dir == "desc" {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.Rank, b.Rank))
	})
	return out
}

// CategoryRow is one line of the categories summary.
type CategoryRow struct {
	CategoryStats
	Share, Bar float64 // as in ProductRow
}

// CategoryTable adds each category's share of all likes.
func CategoryTable(rows []CategoryStats) []CategoryRow {
	var total, top int64
	for _, r := range rows {
		total, top = total+r.Likes, max(top, r.Likes)
	}
	out := make([]CategoryRow, len(rows))
	for i, r := range rows {
		out[i] = CategoryRow{CategoryStats: r, Share: share(r.Likes, total), Bar: share(r.Likes, top)}
	}
	return out
}

// CategoryOption is one category of the filter: its key (the English
// name) and its names in other languages.
type CategoryOption struct {
	Category     string
	CategoryI18n Names
}

// Categories lists the categories of rows, sorted, without the empty one.
func Categories(rows []ProductStats) []CategoryOption {
	var out []CategoryOption
	for _, r := range rows {
		if r.Category != "" && !slices.ContainsFunc(out, func(o CategoryOption) bool { return o.Category == r.Category }) {
			out = append(out, CategoryOption{Category: r.Category, CategoryI18n: r.CategoryI18n})
		}
	}
	slices.SortFunc(out, func(a, b CategoryOption) int { return cmp.Compare(a.Category, b.Category) })
	return out
}

// HasCategory reports whether rows hold a product of category.
func HasCategory(rows []ProductStats, category string) bool {
	return slices.ContainsFunc(rows, func(r ProductStats) bool { return r.Category == category })
}

// HasProduct reports whether rows hold product id.
func HasProduct(rows []ProductStats, id string) bool {
	return slices.ContainsFunc(rows, func(r ProductStats) bool { return r.ID == id })
}

// ExportName is the CSV export's file name, dated by the dashboard's clock.
func (d *Dashboard) ExportName() string {
	return "phoenix-likes-" + d.Now().UTC().Format("2006-01-02") + ".csv"
}

// WriteCSV writes the products table with a header line. encoding/csv does
// the quoting; text cells that a spreadsheet would run as a formula get a
// leading apostrophe (OWASP's advice against CSV injection).
func WriteCSV(w io.Writer, rows []ProductRow) error {
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
