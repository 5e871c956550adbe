package main

import "testing"

func TestRow_AsDesigned(t *testing.T) {
	all := map[string]int{}
	for _, c := range categories {
		all[c] = 100
	}
	status := map[string]int{}
	for c, n := range all {
		status[c] = n
	}
	status["seo"], status["best-practices"] = 92, 96
	for _, c := range []struct {
		name     string
		r        row
		notFound bool
		want     bool
	}{
		{"perfect", row{scores: all}, false, true},
		{"a page below 100", row{scores: status, failed: []string{"http-status-code"}}, false, false},
		{"the 404 page, for its status", row{scores: status, failed: []string{"bf-cache", "errors-in-console", "http-status-code"}}, true, true},
		{"the 404 page, for more", row{scores: status, failed: []string{"color-contrast", "http-status-code"}}, true, false},
	} {
		if got := c.r.asDesigned(c.notFound); got != c.want {
			t.Errorf("%s: asDesigned %v, want %v", c.name, got, c.want)
		}
	}
}
