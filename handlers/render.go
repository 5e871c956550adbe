// Package handlers holds the HTTP surfaces of Phoenix: the shop, the admin
// and the health endpoints, plus what they share (rendering, errors,
// security headers). Handlers are thin: parse, call a store, render.
package handlers

import (
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/template/html/v2"
	"github.com/valyala/bytebufferpool"
)

// HTMX request and response headers that Phoenix uses.
const (
	hxRequest        = "HX-Request"
	hxBoosted        = "HX-Boosted"
	hxHistoryRestore = "HX-History-Restore-Request"
	hxTarget         = "HX-Target"
	hxRetarget       = "HX-Retarget"
	hxReswap         = "HX-Reswap"
	hxRedirect       = "HX-Redirect"
)

// isFragment reports whether htmx asked for a fragment. Boosted links and
// history restores need the whole page.
func isFragment(c *fiber.Ctx) bool {
	return c.Get(hxRequest) == "true" && c.Get(hxBoosted) == "" && c.Get(hxHistoryRestore) == ""
}

// render answers with the named template: alone for an htmx fragment request,
// inside the base layout otherwise.
func render(c *fiber.Ctx, name string, data any) error {
	c.Vary(hxRequest)
	if isFragment(c) {
		return execute(c, name, data)
	}
	return renderPage(c, name, data)
}

// execute renders one template as the HTML answer. It calls the engine
// directly: Fiber's Ctx.Render builds a lookup table on its first use
// without a lock, a data race when the first requests render at once.
func execute(c *fiber.Ctx, name string, data any) error {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := langOf(c).views.Render(buf, name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	c.Type("html", "utf-8")
	c.Response().SetBody(buf.B) // copies: buf goes back to the pool
	return nil
}

// page is what layouts/base renders: the layout fields and the page's HTML.
type page struct {
	layoutData
	Content template.HTML
}

// layouter is any page struct that embeds layoutData.
type layouter interface{ layout() layoutData }

func (l layoutData) layout() layoutData { return l }

// renderPage renders the named template inside layouts/base. It renders the
// page first and hands the HTML to the layout, rather than using the
// engine's layout feature: that one swaps a template func shared by every
// render and so breaks (or serializes) concurrent full-page and fragment
// renders.
func renderPage(c *fiber.Ctx, name string, data any) error {
	l, ok := data.(layouter)
	if !ok {
		return fmt.Errorf("render %s: %T does not embed layoutData", name, data)
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if err := langOf(c).views.Render(buf, name, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	// The page was rendered by html/template, so its output is safe HTML.
	return execute(c, "layouts/base", page{layoutData: l.layout(), Content: template.HTML(buf.B)}) // #nosec G203 -- html/template output
}

// Assets maps asset names to cache-busting URLs ("/assets/css/phoenix.css?v=1a2b3c4d")
// and serves them (see Serve). The version is a hash of the content, so a
// long Cache-Control is safe.
type Assets struct {
	urls  map[string]string
	files map[string]*assetFile
}

// NewAssets hashes every file in fsys and pairs each with its
// precompressed forms (name.br, name.gz) where fsys has them.
func NewAssets(fsys fs.FS) (*Assets, error) {
	a := &Assets{urls: map[string]string{}, files: map[string]*assetFile{}}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || isCompressedForm(path) {
			return err
		}
		f, err := loadAsset(fsys, path)
		if err != nil {
			return err
		}
		a.files[path] = f
		a.urls[path] = "/assets/" + path + "?v=" + f.version
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// URL returns the versioned URL of an asset, or its plain URL if unknown.
func (a *Assets) URL(name string) string {
	if u, ok := a.urls[name]; ok {
		return u
	}
	return "/assets/" + strings.TrimPrefix(name, "/")
}

// Has reports whether the asset exists.
func (a *Assets) Has(name string) bool {
	_, ok := a.urls[name]
	return ok
}

// viewSet is an app's templates, parsed once per language (see NewApp). As
// the app's fiber.Views it renders in the default language.
type viewSet struct{ langs []*lang }

// Load does nothing: NewEngine has loaded every language's templates.
func (v *viewSet) Load() error { return nil }

// Render renders in the default language.
func (v *viewSet) Render(w io.Writer, name string, data any, layout ...string) error {
	return v.langs[0].views.Render(w, name, data, layout...)
}

// NewEngine parses the embedded templates once, with Phoenix's template
// funcs, speaking l.
func NewEngine(views fs.FS, assets *Assets, l *Locale) (*html.Engine, error) {
	views, err := l.inline(views)
	if err != nil {
		return nil, err
	}
	e := html.NewFileSystem(http.FS(views), ".html")
	for name, fn := range langFuncs(l) {
		e.AddFunc(name, fn)
	}
	e.AddFunc("asset", assets.URL)
	e.AddFunc("productImage", func(name string) string {
		if name == "" || !assets.Has("img/parts/"+name) {
			name = "placeholder.svg"
		}
		return assets.URL("img/parts/" + name)
	})
	if err := e.Load(); err != nil {
		return nil, err
	}
	// html/template escapes a template on its first execution, and the
	// engine copies a template's struct before executing it, so two first
	// renders of one template at once race (go test -race saw it on the
	// error page). Executing each once here, with no data, escapes them all
	// before any request; what that writes or fails on does not matter.
	for _, t := range e.Templates.Templates() {
		_ = t.Execute(io.Discard, nil)
	}
	return e, nil
}
