package store

import (
	"strings"
	"testing"
)

func TestProductTable(t *testing.T) {
	rows := []ProductStats{ // most liked first, as ProductStats returns them
		{ID: "b", Name: "Brake", Category: "Brakes", Likes: 6, LastHour: 1},
		{ID: "a", Name: "alternator", Category: "Engine", Likes: 3, LastHour: 3},
		{ID: "c", Name: "Caliper", Category: "Brakes", Likes: 1},
	}
	ids := func(rs []ProductRow) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.ID)
		}
		return strings.Join(s, ",")
	}
	for _, tt := range []struct {
		name string
		in   ProductFilter
		want string
	}{
		{"rank", ProductFilter{}, "b,a,c"},
		{"name ignores case", ProductFilter{Sort: "name", Dir: "asc"}, "a,b,c"},
		{"hour descending", ProductFilter{Sort: "hour", Dir: "desc"}, "a,b,c"},
		{"category", ProductFilter{Category: "Brakes"}, "b,c"},
		{"text", ProductFilter{Text: "CAL"}, "c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := ids(ProductTable(rows, tt.in)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	r := ProductTable(rows, ProductFilter{})[1]
	if r.Rank != 2 || r.Share != 0.3 || r.Bar != 0.5 {
		t.Errorf("second row: rank %d, share %v, bar %v; want 2, 0.3, 0.5", r.Rank, r.Share, r.Bar)
	}
}

func TestWriteCSV(t *testing.T) {
	var b strings.Builder
	rows := ProductTable([]ProductStats{{ID: "p1", Name: "=cmd()", Category: "Brakes", Likes: 2}}, ProductFilter{})
	if err := WriteCSV(&b, rows); err != nil {
		t.Fatal(err)
	}
	want := "rank,product_id,product,category,likes,share_percent,change_last_hour\n1,p1,'=cmd(),Brakes,2,100.00,0\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
