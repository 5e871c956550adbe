package handlers_test

import (
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"phoenix"
)

// picoMarkers names, for each Pico module that tools/css/pico.scss may
// turn off, the markup that would need it.
var picoMarkers = map[string][]string{
	"layout/grid":                 {`class="grid`},
	"layout/overflow-auto":        {`overflow-auto`},
	"forms/checkbox-radio-switch": {`type="checkbox"`, `type="radio"`, `role="switch"`},
	"forms/input-color":           {`type="color"`},
	"forms/input-date":            {`type="date"`, `type="datetime-local"`, `type="month"`, `type="time"`, `type="week"`},
	"forms/input-file":            {`type="file"`},
	"forms/input-range":           {`type="range"`},
	"components/accordion":        {`<details`},
	"components/dropdown":         {`<details`, `dropdown`},
	"components/loading":          {`aria-busy`},
	"components/modal":            {`<dialog`},
	"components/progress":         {`<progress`},
	"components/tooltip":          {`data-tooltip`},
}

// TestViews_PicoModules: no page uses markup that a Pico module left out
// of the committed build styles (the build would leave it unstyled).
func TestViews_PicoModules(t *testing.T) {
	scss, err := os.ReadFile("../tools/css/pico.scss")
	if err != nil {
		t.Fatal(err)
	}
	off := regexp.MustCompile(`"([a-z/-]+)":\s*false`).FindAllStringSubmatch(string(scss), -1)
	if len(off) == 0 {
		t.Fatal("tools/css/pico.scss turns no module off: the pattern no longer matches it")
	}
	pages := map[string]string{}
	err = fs.WalkDir(phoenix.Views(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(phoenix.Views(), path)
		pages[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range off {
		markers, ok := picoMarkers[m[1]]
		if !ok {
			t.Errorf("module %s is off in tools/css/pico.scss, but this test does not know what markup needs it", m[1])
		}
		for path, page := range pages {
			for _, marker := range markers {
				if strings.Contains(page, marker) {
					t.Errorf("%s uses %s, which Pico's %s module styles; turn it on in tools/css/pico.scss and run make css", path, marker, m[1])
				}
			}
		}
	}
}
