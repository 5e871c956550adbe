package handlers

import (
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/text/number"

	"phoenix"
)

func testLocales(tb testing.TB) *Locales {
	tb.Helper()
	ls, err := NewLocales(phoenix.Locales())
	if err != nil {
		tb.Fatal(err)
	}
	return ls
}

// TestLocale_CountMatchesPrinter checks Count's own digit grouping against
// golang.org/x/text's, in every language.
func TestLocale_CountMatchesPrinter(t *testing.T) {
	for _, l := range testLocales(t).List() {
		if l.group == "" {
			t.Errorf("%s: no fast grouping", l.Code)
		}
		for _, n := range []int64{0, 7, 999, 1000, 65536, 1234567, 1 << 40, math.MaxInt64} {
			if got, want := l.Count(n), l.printer.Sprint(number.Decimal(n)); got != want {
				t.Errorf("%s: Count(%d) = %q, printer %q", l.Code, n, got, want)
			}
		}
	}
}

// TestLocale_PercentMatchesPrinter checks Percent's own formatting against
// golang.org/x/text's, in every language, on every tenth of a percent and
// its halves, on shares of small counts and on random shares.
func TestLocale_PercentMatchesPrinter(t *testing.T) {
	shares := []float64{0, 1, math.SmallestNonzeroFloat64, math.Nextafter(1, 0)}
	for k := range 2001 {
		shares = append(shares, float64(k)/2000)
	}
	for total := 1; total <= 300; total++ {
		for n := 0; n <= total; n++ {
			shares = append(shares, float64(n)/float64(total))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		shares = append(shares, r.Float64())
	}
	for _, l := range testLocales(t).List() {
		if !l.plainPercent {
			t.Errorf("%s: no fast percent", l.Code)
		}
		bad := 0
		for _, f := range shares {
			if got, want := l.Percent(f), l.printer.Sprint(number.Percent(f, number.Scale(1))); got != want && bad < 10 {
				bad++
				t.Errorf("%s: Percent(%v) = %q, printer %q", l.Code, f, got, want)
			}
		}
	}
}
