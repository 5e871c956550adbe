// Package phoenix holds the files that the phoenix binary embeds: the HTML
// templates, the UI's messages in each language and the static assets. Everything else lives in sub-packages.
package phoenix

import (
	"embed"
	"io/fs"
)

//go:embed views
var views embed.FS

// The assets' .br and .gz forms are built once into the repository:
//
//go:generate go run ./cmd/precompress assets
//go:embed assets
var assets embed.FS

//go:embed locales/*.toml
var locales embed.FS

// Views returns the templates, rooted so that names read "pages/catalog.html".
func Views() fs.FS { return sub(views, "views") }

// Locales returns the message files, one per language: "en.toml", "zh-CN.toml".
func Locales() fs.FS { return sub(locales, "locales") }

// Assets returns the static files, rooted so that names read "css/phoenix.css".
func Assets() fs.FS { return sub(assets, "assets") }

func sub(fsys fs.FS, dir string) fs.FS {
	s, err := fs.Sub(fsys, dir)
	if err != nil {
		// fs.Sub only fails for an invalid path, and dir is a constant.
		panic(err)
	}
	return s
}
