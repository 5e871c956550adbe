package handlers

import (
	"fmt"
	"html/template"
	"strings"
	"testing"

	"phoenix/store"
)

// rowsTemplate is the products table's row loop as html/template wrote it
// before productRows, kept as the reference the Go version must match.
const rowsTemplate = `{{range .Rows}}<tr id="product-row-{{.ID}}">
<td class="num rank">{{.Rank}}</td>
<th scope="row"><a href="{{$.Q.ChartURL .ID}}" hx-get="{{$.Q.ChartURL .ID}}" hx-target="#dashboard" hx-swap="outerHTML" hx-push-url="true" title="{{t "stats.show_in_chart"}}">{{tr .NameI18n .Name}}</a></th>
<td class="col-category">{{tr .CategoryI18n .Category}}</td>
<td class="num likes">{{num .Likes}}</td>
<td class="bar"><meter min="0" max="1" value="{{.Bar}}"></meter><span class="pct">{{pct .Share}}</span></td>
<td class="num change{{if gt .LastHour 0}} up{{else if lt .LastHour 0}} down{{end}}">{{signed .LastHour}}</td>
</tr>
{{end}}`

func TestProductRows_MatchTemplate(t *testing.T) {
	rows := []store.ProductRow{
		{ProductStats: store.ProductStats{ID: "brake-pads", Name: `Pads <"front"> & 'rear' +2`, Category: "Brakes",
			NameI18n: store.Names{"zh-CN": "刹车片"}, Likes: 1234567, LastHour: 12}, Rank: 1, Share: 0.6364, Bar: 1},
		{ProductStats: store.ProductStats{ID: "wiper", Name: "Wiper", Category: "Visibility & glass",
			CategoryI18n: store.Names{"zh-CN": "视野"}, Likes: 0, LastHour: -3}, Rank: 2, Share: 0, Bar: 0.3333333333333333},
		{ProductStats: store.ProductStats{ID: "oil-filter", Name: "Oil filter", Category: "Filters", Likes: 7}, Rank: 3, Share: 1e-05, Bar: 1e-05},
	}
	q := dashboardQuery{Text: "pads & more", Sort: "likes", Dir: "desc", Category: "Brakes"}
	for _, l := range testLocales(t).List() {
		tmpl := template.Must(template.New("rows").Funcs(langFuncs(l)).Parse(rowsTemplate))
		var want strings.Builder
		if err := tmpl.Execute(&want, struct {
			Rows []store.ProductRow
			Q    dashboardQuery
		}{rows, q}); err != nil {
			t.Fatal(err)
		}
		got, err := productRows(l, rows, q)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() {
			t.Errorf("%s: productRows differs from the template:\ngot:\n%s\nwant:\n%s", l.Code, got, want.String())
		}
	}
}

// BenchmarkProductRows renders the rows of a 500-product table.
func BenchmarkProductRows(b *testing.B) {
	rows := make([]store.ProductRow, 500)
	for i := range rows {
		rows[i] = store.ProductRow{ProductStats: store.ProductStats{ID: fmt.Sprintf("part-%d", i), Name: fmt.Sprintf("Part %d", i),
			Category: "Brakes", Likes: int64(1000 - i), LastHour: int64(i % 7)}, Rank: i + 1, Share: float64(1000-i) / 250000, Bar: float64(1000-i) / 1000}
	}
	l := testLocales(b).Default()
	q := dashboardQuery{Sort: "likes", Dir: "desc"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := productRows(l, rows, q); err != nil {
			b.Fatal(err)
		}
	}
}
