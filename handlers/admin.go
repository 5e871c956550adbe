package handlers

import (
	"cmp"
	"context"
	"crypto/rand"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/etag"
	"github.com/gofiber/fiber/v2/utils"

	"phoenix/store"
)

// Admin defaults, used when the fields are zero.
const (
	defaultPoll  = 2 * time.Second
	queryTimeout = 2 * time.Second
	chartMinutes = 60
	// Message ids of the stale notices.
	dbDown       = "stale.db_down"
	dbDownNoData = "stale.db_down_no_data"
	noWorker     = "stale.no_worker"
	workerBehind = "stale.worker_behind"
	// repairNoticeFor is how long the dashboard shows a repair of Redis.
	repairNoticeFor = 24 * time.Hour
)

// Admin serves the admin dashboard: login, live statistics read from
// PostgreSQL (pre-aggregated tables only), and the CSV export.
type Admin struct {
	Stats      *store.Stats
	Sessions   *Sessions
	Log        *slog.Logger
	Instance   string
	StaleAfter time.Duration // a worker heartbeat older than this makes the numbers "may be stale"
	Poll       time.Duration // how often the page refreshes its fragments
	// Logins counts failed logins per client address across replicas;
	// nil means store.NewLogins(Stats) with the default limits.
	Logins *store.Logins
	// LoginMetrics counts failures and guessing alerts; nil: none.
	LoginMetrics *LoginMetrics
	// CSRF guards login and logout with the admin's tokens, bound to the
	// visitor nonce cookie (see visitor).
	CSRF *CSRF
	// Live, when set, pushes the dashboard's changes (GET /admin/live).
	Live *Live
	// ReplicaAlive is how long after its last heartbeat a replica shows as
	// alive in the flow view (defaultReplicaAlive).
	ReplicaAlive time.Duration
	// Demo enables the demo controls (GET /admin/demo): pause the workers,
	// inject faults. Off, their routes do not exist.
	Demo bool
	// DemoLoad: this replica can send simulated shoppers to the shop (it
	// knows the shop's URL); a load set here is generated here (Instance).
	DemoLoad bool

	boardOnce sync.Once
	board     *store.Dashboard
}

// dash is the admin's read model over Stats, made on first use.
func (h *Admin) dash() *store.Dashboard {
	h.boardOnce.Do(func() { h.board = &store.Dashboard{Stats: h.Stats, Log: h.Log, StaleAfter: h.StaleAfter} })
	return h.board
}

// Routes registers the admin's pages. Register Health and the assets
// before: every route registered here after the login form, and every
// unknown path, needs a session.
func (h *Admin) Routes(r fiber.Router) {
	protect := func(c *fiber.Ctx) error {
		if err := h.CSRF.Check(c, c.Cookies(csrfCookie)); err != nil {
			return err
		}
		return c.Next()
	}
	if h.Logins == nil {
		h.Logins = store.NewLogins(h.Stats, store.LoginLimits{})
	}
	r.Use(h.Sessions.Middleware())
	// The pages that hold a form (login, dashboard with its logout button)
	// make a token through layout; the polled fragments need none.
	r.Get("/login", h.LoginForm)
	// CSRF first, so a forged login spends no allowance.
	r.Post("/login", protect, h.Login)
	r.Use(h.requireSession)
	r.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/admin", fiber.StatusSeeOther) })
	r.Post("/logout", protect, h.Logout)
	r.Get("/admin", h.Dashboard)
	r.Get("/admin/export.csv", h.Export)
	if h.Live != nil {
		r.Get("/admin/live", h.Stream)
	}
	// dataETag answers an unchanged fragment from the data's version alone;
	// etag.New hashes the body when that version cannot be read.
	stats := r.Group("/admin/stats", fragmentHeaders, h.dataETag, etag.New())
	stats.Get("/totals", serveFragment("partials/stats-totals", h.totals))
	stats.Get("/products", h.Products)
	stats.Get("/categories", serveFragment("partials/stats-categories", h.categories))
	stats.Get("/chart", h.Chart)
	stats.Get("/worker", serveFragment("partials/worker-status", h.worker))
	stats.Get("/flow", serveFragment("partials/flow", h.flow)) // flowPath
	if h.Demo {
		h.demoRoutes(r, protect)
	}
}

type loginPage struct {
	layoutData
	Next    string
	Message string
}

// LoginForm handles GET /login.
func (h *Admin) LoginForm(c *fiber.Ctx) error {
	next := localPath(c.Query("next"), "/admin")
	if h.Sessions.Valid(c) {
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	return h.renderLogin(c, next, "")
}

// Login handles POST /login: the right password starts a session and goes
// on to next; a wrong one answers 401 and counts against the client's
// limit; a client over it gets 429.
func (h *Admin) Login(c *fiber.Ctx) error {
	next := localPath(c.FormValue("next"), "/admin")
	ctx, cancel := context.WithTimeout(c.UserContext(), loginTimeout)
	defer cancel()
	if err := h.checkLoginLimit(ctx, c); err != nil {
		return err
	}
	if !h.Sessions.CheckPassword(c.FormValue("password")) {
		h.loginFailed(ctx, c)
		c.Status(fiber.StatusUnauthorized)
		return h.renderLogin(c, next, "login.wrong")
	}
	h.Sessions.Start(c)
	h.Log.Info("admin logged in", "ip", c.IP())
	return c.Redirect(next, fiber.StatusSeeOther)
}

// Logout handles POST /logout.
func (h *Admin) Logout(c *fiber.Ctx) error {
	h.Sessions.End(c)
	return c.Redirect("/login", fiber.StatusSeeOther)
}

// renderLogin renders the login form with message id msg ("" for none).
func (h *Admin) renderLogin(c *fiber.Ctx, next, msg string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	l := langOf(c)
	page := loginPage{layoutData: h.layout(c, l.text("login.title")), Next: utils.CopyString(next)}
	if msg != "" {
		page.Message = l.text(msg)
	}
	return render(c, "pages/login", page)
}

// requireSession lets requests with a session through. Without one, a page
// redirects to the login form and an htmx request gets HX-Redirect, so the
// browser goes there instead of swapping a login form into a table.
func (h *Admin) requireSession(c *fiber.Ctx) error {
	if h.Sessions.Valid(c) {
		return c.Next()
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Vary(hxRequest, fiber.HeaderCookie)
	if c.Get(hxRequest) == "true" {
		c.Set(hxRedirect, "/login")
		return c.SendStatus(fiber.StatusUnauthorized)
	}
	target := "/login"
	if c.Method() == fiber.MethodGet {
		target += "?next=" + url.QueryEscape(c.OriginalURL())
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}

// serveFragment serves a statistics fragment that takes no query: the
// template name over what data reads.
func serveFragment[T any](name string, data func(context.Context) T) fiber.Handler {
	return func(c *fiber.Ctx) error { return renderFragment(c, name, data(c.UserContext())) }
}

// renderFragment renders a statistics fragment for htmx. A request that
// htmx did not make (the address typed or bookmarked) has no page to put
// the fragment in: it goes to the dashboard with the same, already
// validated, query, which shows that statistic inside the page.
func renderFragment(c *fiber.Ctx, name string, data any) error {
	c.Vary(hxRequest)
	if isFragment(c) {
		return execute(c, name, data)
	}
	target := "/admin"
	if q := c.Request().URI().QueryString(); len(q) > 0 {
		target += "?" + string(q)
	}
	return c.Redirect(target, fiber.StatusSeeOther)
}

// fragmentHeaders lets browsers keep a fragment but ask each time (the
// ETag makes an unchanged one a 304), and keeps shared caches out.
func fragmentHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "private, no-cache")
	c.Vary(hxRequest, fiber.HeaderCookie)
	return c.Next()
}

// dataETag tags a statistics fragment with the version of what it shows
// (fragmentVersion), its URL and its language. A request whose If-None-Match
// carries that tag gets a 304 from one small query, without the fragment's
// queries or its rendering; the tag is also the one a fresh answer carries.
// When the version cannot be read, or a query of this answer failed (it
// shows stale data), the answer gets no version tag and etag.New, next in
// line, hashes the body as before.
func (h *Admin) dataETag(c *fiber.Ctx) error {
	if !isFragment(c) {
		return c.Next() // a redirect to the dashboard
	}
	ver, err := h.fragmentVersion(c)
	if err != nil || h.dash().Down() {
		return c.Next()
	}
	// The language too: the same fragment in another language is another answer.
	tag := `W/"d` + store.Hash("%s %s %s %s", ver, cmp.Or(h.Poll, defaultPoll), c.OriginalURL(), langOf(c).Code) + `"`
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), tag) {
		c.Set(fiber.HeaderETag, tag)
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderETag, tag) // set first, so that etag.New leaves it
	err = c.Next()
	if err != nil || c.Response().StatusCode() != fiber.StatusOK || h.dash().Down() {
		c.Response().Header.Del(fiber.HeaderETag)
	}
	return err
}

// dataVersion names the version of the whole dashboard: the statistics'
// data (store.Dashboard.Version) and the flow view, which ages by time
// alone (a replica greys out). Equal names, equal fragments.
func (h *Admin) dataVersion(ctx context.Context) (string, error) {
	stats, err := h.dash().Version(ctx)
	if err != nil {
		return "", err
	}
	return store.Hash("%s %+v", stats, h.flow(ctx)), nil
}

// fragmentVersion names the version of what one fragment shows: the flow
// view's own, which moves with every heartbeat, or the statistics', which
// does not read the replicas at all.
func (h *Admin) fragmentVersion(c *fiber.Ctx) (string, error) {
	if c.Path() == flowPath {
		return store.Hash("%+v", h.flow(c.UserContext())), nil
	}
	return h.dash().Version(c.UserContext())
}

// etagMatches reports whether an If-None-Match header lists tag.
func etagMatches(header, tag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		if strings.TrimSpace(t) == tag {
			return true
		}
	}
	return false
}

// Dashboard handles GET /admin: every statistic in one page, whose parts
// then follow the live stream, or poll without it. An htmx request (the
// controls) gets the page without the layout.
func (h *Admin) Dashboard(c *fiber.Ctx) error {
	q, err := parseDashboardQuery(c)
	if err != nil {
		return err
	}
	ctx := c.UserContext()
	table, err := h.products(c.UserContext(), q)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Vary(fiber.HeaderCookie)
	return render(c, "pages/admin", adminPage{
		layoutData: h.layout(c, langOf(c).text("nav.dashboard")), Query: q, Categories: store.Categories(table.Options),
		Totals: h.totals(ctx), Chart: h.chart(ctx, q, table.Options), Summary: h.categories(ctx),
		Table: table, Worker: h.worker(ctx), Flow: h.flow(ctx), ExportURL: q.URL("/admin/export.csv"), Live: h.liveURL(ctx, q),
	})
}

// Products handles GET /admin/stats/products?category=&q=&sort=&dir=.
func (h *Admin) Products(c *fiber.Ctx) error {
	q, err := parseDashboardQuery(c)
	if err != nil {
		return err
	}
	table, err := h.products(c.UserContext(), q)
	if err != nil {
		return err
	}
	return renderFragment(c, "partials/stats-products", table)
}

// Chart handles GET /admin/stats/chart?product=.
func (h *Admin) Chart(c *fiber.Ctx) error {
	q, err := parseDashboardQuery(c)
	if err != nil {
		return err
	}
	rows, _ := loadStats(c.UserContext(), h, "products", h.dash().ProductStats)
	if err := checkKnown(rows, dashboardQuery{Product: q.Product}); err != nil {
		return err
	}
	return renderFragment(c, "partials/stats-chart", h.chart(c.UserContext(), q, rows))
}

// Export handles GET /admin/export.csv?category=&q=&sort=&dir=: the products
// table as on the page, as a CSV download. It needs fresh data: an export
// of stale numbers would look current in a spreadsheet.
func (h *Admin) Export(c *fiber.Ctx) error {
	q, err := parseDashboardQuery(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), queryTimeout)
	defer cancel()
	rows, err := h.dash().ProductStats(ctx)
	if err != nil {
		h.Log.Warn("export unavailable", "err", err)
		return refuse(fiber.StatusServiceUnavailable, "error.stats_unavailable")
	}
	if err := checkKnown(rows, q); err != nil {
		return err
	}
	name := h.dash().ExportName()
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return store.WriteCSV(c.Response().BodyWriter(), store.ProductTable(rows, q.filter()))
}

func (h *Admin) layout(c *fiber.Ctx, title string) layoutData {
	d := newLayout(c, title, h.Instance, "admin")
	d.CSRF = h.CSRF.Token(h.visitor(c))
	d.Demo = h.Demo
	return d
}

// visitor returns the visitor nonce that the admin's CSRF tokens are bound
// to, from before the login until the browser closes, setting its cookie
// on the first page. A nonce is 128 random bits; the cookie holds nothing
// else, so it needs no signature: a token made for one nonce fails for any
// other.
func (h *Admin) visitor(c *fiber.Ctx) string {
	if n := c.Cookies(csrfCookie); len(n) >= 26 && len(n) <= 64 {
		return utils.CopyString(n)
	}
	n := rand.Text()
	c.Cookie(&fiber.Cookie{
		Name: csrfCookie, Value: n, Path: "/", HTTPOnly: true, Secure: h.Sessions.Secure, SameSite: fiber.CookieSameSiteLaxMode,
	})
	return n
}

// fragment returns the polling settings of the fragment at path.
func (h *Admin) fragment(path string, q dashboardQuery, notice staleNotice) fragment {
	return fragment{Poll: q.URL(path), Every: cmp.Or(h.Poll, defaultPoll).String(), Notice: notice}
}

func (h *Admin) totals(ctx context.Context) totalsView {
	t, notice := loadStats(ctx, h, "totals", h.Stats.Totals)
	return totalsView{fragment: h.fragment("/admin/stats/totals", dashboardQuery{}, notice), Totals: t}
}

// products builds the table for q, refusing a category or product the data
// does not have.
func (h *Admin) products(ctx context.Context, q dashboardQuery) (productsView, error) {
	rows, notice := loadStats(ctx, h, "products", h.dash().ProductStats)
	if err := checkKnown(rows, q); err != nil {
		return productsView{}, err
	}
	poll := q
	poll.Product = "" // the table does not depend on the chart
	v := productsView{fragment: h.fragment("/admin/stats/products", poll, notice), Query: q,
		Rows: store.ProductTable(rows, q.filter()), Total: len(rows), Options: rows}
	for _, r := range rows {
		if r.Category == q.Category {
			v.CategoryI18n = r.CategoryI18n
			break
		}
	}
	return v, nil
}

func (h *Admin) categories(ctx context.Context) categoriesView {
	rows, notice := loadStats(ctx, h, "categories", h.dash().CategoryStats)
	return categoriesView{fragment: h.fragment("/admin/stats/categories", dashboardQuery{}, notice), Rows: store.CategoryTable(rows)}
}

func (h *Admin) chart(ctx context.Context, q dashboardQuery, products []store.ProductStats) chartView {
	series, notice := loadStats(ctx, h, "chart:"+q.Product, func(ctx context.Context) ([]store.Minute, error) {
		return h.dash().LikesPerMinute(ctx, q.Product, chartMinutes)
	})
	v := chartView{fragment: h.fragment("/admin/stats/chart", dashboardQuery{Product: q.Product}, notice),
		chart: newChart(series), Product: q.Product, ProductName: q.Product}
	for _, p := range products {
		if p.ID == q.Product {
			v.ProductName, v.ProductI18n = p.Name, p.NameI18n
		}
	}
	return v
}

func (h *Admin) worker(ctx context.Context) workerView {
	rows, notice := loadStats(ctx, h, "worker", h.Stats.WorkerStatus)
	v := workerView{fragment: h.fragment("/admin/stats/worker", dashboardQuery{}, notice), Workers: rows}
	if len(rows) > 0 {
		v.Latest, v.Heartbeat = rows[0], rows[0].UpdatedAt // latest first
	}
	v.Repairs, _ = loadStats(ctx, h, "repairs", func(ctx context.Context) ([]store.RepairNotice, error) {
		return h.Stats.RecentRepairs(ctx, h.Stats.Now().Add(-repairNoticeFor), 3)
	})
	switch {
	case notice.Missing:
	case len(rows) == 0:
		v.Behind = staleNotice{Missing: true, Reason: noWorker}
	case h.dash().Overdue(v.Heartbeat):
		v.Behind = staleNotice{Since: v.Heartbeat, Reason: workerBehind}
	}
	return v
}

// loadStats runs query through the read model, which keeps the last good
// answer for key, and words how stale the answer is.
func loadStats[T any](ctx context.Context, h *Admin, key string, query func(context.Context) (T, error)) (T, staleNotice) {
	v, stale := store.Load(ctx, h.dash(), key, query)
	switch {
	case stale.Missing:
		return v, staleNotice{Missing: true, Reason: dbDownNoData}
	case !stale.Since.IsZero():
		return v, staleNotice{Since: stale.Since, Reason: dbDown}
	}
	return v, staleNotice{}
}
