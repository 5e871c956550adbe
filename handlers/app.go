package handlers

import (
	"bytes"
	"io/fs"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/utils"
	"go.opentelemetry.io/otel/trace"
)

// Server limits shared by every role, so a slow or greedy client cannot hold
// a connection or memory for long.
const (
	bodyLimit      = 16 << 10
	readBufferSize = 8 << 10
	readTimeout    = 10 * time.Second
	writeTimeout   = 10 * time.Second
	idleTimeout    = 60 * time.Second
)

// contentSecurityPolicy allows nothing inline and nothing from elsewhere.
// data: images are needed by Pico CSS's embedded icons.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// layoutData is what layouts/base needs; every page embeds it.
type layoutData struct {
	Title    string
	Instance string     // which server answered, shown in the footer
	CSRF     string     // the CSRF token for forms and htmx headers ("" when the page has no visitor)
	Notice   string     // a notice for the visitor, shown in #flash
	Section  string     // "shop" or "admin", for the navigation
	Path     string     // the current path, to mark the current nav link
	Langs    []langLink // the language switcher: every other language
	Demo     bool       // the admin's demo controls exist: link them
}

// langLink is one language of the switcher.
type langLink struct {
	Code, Name, URL string
}

// newLayout is the layout of the page that c answers with; the caller
// adds the CSRF token of its visitor.
func newLayout(c *fiber.Ctx, title, instance, section string) layoutData {
	l := langOf(c)
	d := layoutData{Title: title, Instance: instance, Section: section, Path: c.Path()}
	here := utils.CopyString(c.OriginalURL())
	for _, o := range l.locales.List() {
		if o != l.Locale {
			d.Langs = append(d.Langs, langLink{Code: o.Code, Name: o.Name, URL: switchURL(o.Code, here)})
		}
	}
	return d
}

// AppConfig holds what every role's Fiber app needs.
type AppConfig struct {
	Name     string // the role, for logs and the Server header-free app name
	Views    fs.FS
	Assets   fs.FS
	Log      *slog.Logger
	Instance string
	Section  string
	// Locales holds the message files of the languages the pages speak
	// (see NewLocales).
	Locales fs.FS

	// Secure: served over TLS or behind a TLS proxy; adds HSTS.
	Secure bool
	// ProxyHeader names the header that carries the client address (such as
	// X-Real-IP), believed only from TrustedProxies. Empty: the
	// peer's address is the client's, and no forwarded header is trusted.
	ProxyHeader    string
	TrustedProxies []string
	// Metrics records every request; nil: none.
	Metrics *Metrics
	// Tracer, when set, gives every request a span (see traced) and its
	// log line a trace_id; nil: no tracing, and no middleware for it.
	Tracer trace.TracerProvider
	// ReadTimeout overrides the default read timeout (tests of slow clients).
	ReadTimeout time.Duration
}

// NewApp builds a Fiber app with Phoenix's templates, limits, error handler,
// security headers and static assets. Callers add their routes.
func NewApp(cfg AppConfig) (*fiber.App, error) {
	locales, err := NewLocales(cfg.Locales)
	if err != nil {
		return nil, err
	}
	assets, err := NewAssets(cfg.Assets)
	if err != nil {
		return nil, err
	}
	// The templates are parsed once per language, with that language's
	// funcs ({{t "key"}}), so that no render looks its language up.
	views := &viewSet{}
	for _, l := range locales.List() {
		engine, err := NewEngine(cfg.Views, assets, l)
		if err != nil {
			return nil, err
		}
		views.langs = append(views.langs, &lang{Locale: l, views: engine, locales: locales})
	}
	layout := func(c *fiber.Ctx, title string) layoutData {
		// Error pages carry no token: they hold no form.
		return newLayout(c, title, cfg.Instance, cfg.Section)
	}
	rt := readTimeout
	if cfg.ReadTimeout > 0 {
		rt = cfg.ReadTimeout
	}
	app := fiber.New(fiber.Config{
		AppName:               "phoenix " + cfg.Name,
		Views:                 views,
		ErrorHandler:          ErrorHandler(cfg.Log, layout),
		BodyLimit:             bodyLimit,
		ReadBufferSize:        readBufferSize,
		ReadTimeout:           rt,
		WriteTimeout:          writeTimeout,
		IdleTimeout:           idleTimeout,
		DisableStartupMessage: true,
		// Forwarded headers (client address, X-Forwarded-Proto) count only
		// from the listed proxies; by default from none.
		EnableTrustedProxyCheck: true,
		TrustedProxies:          cfg.TrustedProxies,
		ProxyHeader:             cfg.ProxyHeader,
		EnableIPValidation:      true,
	})
	// A response written during shutdown says "Connection: close", so that
	// clients do not send another request on a connection about to close.
	app.Server().CloseOnShutdown = true
	if cfg.Tracer != nil {
		app.Use(traced(cfg.Tracer))
	}
	// Outermost (but for the span): every request gets an id and one log
	// line, panics included.
	app.Use(requestIDs(), observe(cfg.Log, cfg.Metrics))
	app.Use(recover.New())
	app.Use(securityHeaders(cfg.Secure))
	app.Use(compression())
	app.Use("/assets", assets.Serve)
	app.Get("/robots.txt", robots)
	app.Use(negotiate(locales, views.langs), plainQuery)
	app.Get("/lang/:code", switchLang(locales, cfg.Secure))
	return app, nil
}

// robotsTxt lets crawlers read every page. The admin's pages are behind its
// login (a crawler reaches the login form only), and without a robots.txt
// of its own the admin would answer /robots.txt with that form.
const robotsTxt = "User-agent: *\nAllow: /\n"

func robots(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "public, max-age=86400")
	return c.SendString(robotsTxt)
}

// plainQuery refuses a query string whose names or values (decoded) are not
// plain text: invalid UTF-8 or control characters, which no form of either
// role produces and which could split a header or a log line further on.
func plainQuery(c *fiber.Ctx) error {
	bad := false
	c.Request().URI().QueryArgs().VisitAll(func(k, v []byte) {
		bad = bad || !plainText(k) || !plainText(v)
	})
	if bad {
		return refuse(fiber.StatusBadRequest, "error.query_not_plain")
	}
	return c.Next()
}

func plainText(b []byte) bool {
	return utf8.Valid(b) && !bytes.ContainsFunc(b, isControl)
}

// securityHeaders sets the headers every answer carries; HSTS only when
// the site is served over TLS, since a browser would then refuse plain HTTP.
func securityHeaders(secure bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentSecurityPolicy, contentSecurityPolicy)
		c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
		c.Set(fiber.HeaderReferrerPolicy, "same-origin")
		c.Set(fiber.HeaderXFrameOptions, "DENY")
		c.Set("Cross-Origin-Opener-Policy", "same-origin")
		if secure {
			c.Set(fiber.HeaderStrictTransportSecurity, "max-age=31536000")
		}
		return c.Next()
	}
}

// NewHealthApp returns the app of a role without pages (the worker's
// health port): request ids, the request log and metrics, and recovery,
// without templates, assets or languages.
func NewHealthApp(name string, log *slog.Logger, m *Metrics) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName: "phoenix " + name, ReadTimeout: readTimeout, WriteTimeout: writeTimeout, IdleTimeout: idleTimeout,
		DisableStartupMessage: true,
	})
	app.Server().CloseOnShutdown = true
	app.Use(requestIDs(), observe(log, m), recover.New())
	return app
}
