package handlers

import (
	"testing"

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
