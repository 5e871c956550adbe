package handlers

import (
	"math"
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
