package handlers

import (
	"math"
	"strings"
	"testing"
	"time"

	"phoenix/store"
)

func TestNiceCeil(t *testing.T) {
	tests := []struct {
		name string
		in   int64
		want int64
	}{
		{"empty", 0, 4},
		{"one", 1, 4},
		{"four", 4, 4},
		{"five", 5, 8},
		{"seven", 7, 8},
		{"nine", 9, 20},
		{"thirty", 30, 40},
		{"a hundred", 100, 100},
		{"a hundred and one", 101, 200},
		{"a million", 1_000_000, 1_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := niceCeil(tt.in); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestNewChart(t *testing.T) {
	start := time.Date(2026, 1, 2, 14, 0, 0, 0, time.UTC)
	series := make([]store.Minute, 60)
	for i := range series {
		series[i].At = start.Add(time.Duration(i) * time.Minute)
	}
	series[10].Likes, series[10].Unlikes = 8, 2
	series[59].Likes = 4
	ch := newChart(series)
	if len(ch.Bars) != 60 || ch.Likes != 12 || ch.UnlikesTotal != 2 || ch.Peak != 8 {
		t.Fatalf("got %d bars, %d likes, %d unlikes, peak %d; want 60, 12, 2, 8", len(ch.Bars), ch.Likes, ch.UnlikesTotal, ch.Peak)
	}
	full, half := ch.Bars[10], ch.Bars[59]
	if full.Y != ch.Top || full.H != ch.Base-ch.Top {
		t.Errorf("tallest bar at y=%g h=%g, want the full plot height from %g", full.Y, full.H, ch.Top)
	}
	if half.H != round1(full.H/2) {
		t.Errorf("half bar h=%g, want %g", half.H, round1(full.H/2))
	}
	if ch.Bars[0].H != 0 || full.Time != "14:10" || full.Likes != 8 || full.Unlikes != 2 {
		t.Errorf("empty minute h=%g; tallest bar %+v, want 14:10 with 8 likes and 2 unlikes", ch.Bars[0].H, full)
	}
	if len(ch.XTicks) != 6 || ch.XTicks[0].Label != "14:00" || len(ch.YTicks) != 5 || ch.YTicks[4].Label != "8" {
		t.Errorf("ticks x=%v y=%v", ch.XTicks, ch.YTicks)
	}
	if strings.Count(ch.Unlikes, ",") != 60 {
		t.Errorf("unlikes line has %d points, want 60", strings.Count(ch.Unlikes, ","))
	}
	if empty := newChart(nil); len(empty.Bars) != 0 || len(empty.YTicks) != 5 {
		t.Errorf("empty series: %d bars, %d y ticks", len(empty.Bars), len(empty.YTicks))
	}
}

func TestDashboardQuery_URL(t *testing.T) {
	tests := []struct {
		name string
		in   dashboardQuery
		want string
	}{
		{"defaults", dashboardQuery{}, "/admin"},
		{"default direction", dashboardQuery{Sort: "likes", Dir: "desc"}, "/admin?sort=likes"},
		{"everything", dashboardQuery{Category: "Wheels & Tyres", Text: "a b", Sort: "name", Dir: "desc", Product: "tyre"},
			"/admin?category=Wheels+%26+Tyres&dir=desc&product=tyre&q=a+b&sort=name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.URL("/admin"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	q := dashboardQuery{Sort: "likes", Dir: "desc"}
	if got := q.SortURL("likes"); got != "/admin?dir=asc&sort=likes" {
		t.Errorf("sorting again by the same column: got %q", got)
	}
	if got := q.SortURL("name"); got != "/admin?sort=name" {
		t.Errorf("sorting by another column: got %q", got)
	}
}

func TestLocale_Count(t *testing.T) {
	en := testLocales(t).Default()
	tests := []struct {
		in   int64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-4500, "−4,500"}, {math.MaxInt64, "9,223,372,036,854,775,807"}, {math.MinInt64, "−9,223,372,036,854,775,808"}}
	for _, tt := range tests {
		if got := en.Count(tt.in); got != tt.want {
			t.Errorf("Count(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := en.Change(3); got != "+3" {
		t.Errorf("Change(3) = %q", got)
	}
}
