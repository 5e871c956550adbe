package handlers

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"phoenix/store"
)

// Limits on query strings, so a search cannot cost more than a page.
const maxQueryLen = 100

// busyRetry is the Retry-After of a Like refused by back-pressure: long
// enough for the workers to drain a stretch of the backlog.
const busyRetry = 5 * time.Second

// Shop serves the catalog, product pages, "My likes" and the Like buttons.
// It talks to Redis only, through Likes, which also holds the Like limits.
type Shop struct {
	Likes        *store.Likes
	Catalog      *store.Catalog
	Shoppers     *Shoppers // signs and checks shopper ids
	CSRF         *CSRF     // the shop's tokens, bound to the shopper id
	Log          *slog.Logger
	Instance     string
	SecureCookie bool // mark cookies Secure (served over TLS or behind a TLS proxy)
	// Metrics counts Likes by outcome; nil: not counted.
	Metrics *Metrics

	cards   langCards // product cards and Like answers, cut up once per language (see cards)
	filters sync.Map  // filterKey -> the filter's HTML without a search (see filter)
}

// Routes registers the shop's pages and actions. Every answer is personal
// (the shopper's likes, a token bound to the shopper): no cache keeps it.
func (h *Shop) Routes(r fiber.Router) {
	r.Get("/", private, h.Browse)
	r.Get("/products/:id", private, h.Product)
	r.Get("/likes", private, h.MyLikes)
	r.Post("/products/:id/like", private, h.like(store.ActionLike))
	r.Post("/products/:id/unlike", private, h.like(store.ActionUnlike))
}

// private keeps an answer out of every cache, the browser's included.
func private(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "private, no-store")
	return c.Next()
}

// productView is one product with its Like state, as the card, the product
// page and the Like button show it.
type productView struct {
	store.Product
	Count      int64
	CountKnown bool   // false when Redis could not be read
	Liked      bool   // whether the current shopper likes it
	Next       string // where the no-JS form returns to
	CSRF       string
}

type catalogPage struct {
	layoutData
	Categories []string
	// CategoryI18n names the categories in other languages.
	CategoryI18n map[string]store.Names
	Category     string
	Query        string
	Products     []productView
	Cards        template.HTML // Products' cards
	Filter       template.HTML // partials/category-filter
	Pager        pager
	Unavailable  bool // counts could not be read
	// Highlights are "Most liked" and "Trending now": the full page only,
	// not the grid's fragments (search, "load more").
	Highlights *catalogHighlights
}

// highlightShown is how many products each highlight list shows.
const highlightShown = 5

// catalogHighlights are the catalog's two rankings, as the worker last
// wrote them to Redis (see store/highlights.go).
type catalogHighlights struct {
	MostLiked, Trending highlightList
}

// highlightList is one ranking as partials/highlight-list shows it: links
// to the products with their numbers, or its empty state.
type highlightList struct {
	Items []highlightItem
	Unit  string // the message id that writes an item's number
	Empty string // the message id shown when there are no items
}

type highlightItem struct {
	store.Product
	Count int64
}

// highlights is the catalog's highlights section from what the page read.
// Without the worker's key (before its first round, or once the key
// expired with every worker gone) there is none: the empty states are for
// a round that found nothing to rank.
func (h *Shop) highlights(x store.Highlights) *catalogHighlights {
	if x.At.IsZero() {
		return nil
	}
	return &catalogHighlights{
		MostLiked: h.highlightListOf(x.MostLiked, "highlights.likes", "highlights.most_liked_empty"),
		Trending:  h.highlightListOf(x.Trending, "highlights.likes_hour", "highlights.trending_empty"),
	}
}

// highlightListOf is the first highlightShown products of ranked that the
// catalog has (a product the operator removed may still rank).
func (h *Shop) highlightListOf(ranked []store.Ranked, unit, empty string) highlightList {
	l := highlightList{Unit: unit, Empty: empty}
	for _, r := range ranked {
		if p, ok := h.Catalog.Product(r.ID); ok && len(l.Items) < highlightShown {
			l.Items = append(l.Items, highlightItem{Product: p, Count: r.Count})
		}
	}
	return l
}

// catalogPageSize is how many products one catalog page shows: a page
// costs the same whatever the catalog's size.
const catalogPageSize = 24

// pager says where a catalog page sits among the results, with the links
// to its neighbours ("" at either end).
type pager struct {
	Number, Pages int
	Total         int64 // products found
	Prev, Next    string
	More          bool // answering "load more": the pager replaces the last one (out of band)
}

// Fragments of the catalog that htmx asks for, by HX-Target.
const (
	targetGrid  = "product-grid"  // the search form: the whole grid
	targetCards = "product-cards" // "load more": the next page's cards, appended
)

type productPage struct {
	layoutData
	Product     productView
	Unavailable bool
	AlsoLiked   *highlightList // "Shoppers who liked this also liked"; nil when Redis could not be read or no round wrote it
}

type likesPage struct {
	layoutData
	Products    []productView
	Cards       template.HTML // Products' cards
	Unavailable bool
}

func (h *Shop) layout(c *fiber.Ctx, title string, v visit) layoutData {
	d := newLayout(c, title, h.Instance, "shop")
	d.CSRF = v.csrf
	if v.notice != "" {
		d.Notice = langOf(c).text(v.notice)
	}
	return d
}

// Browse handles GET / : one page of the product grid, filtered by
// ?category= and ?q=, at ?page= (from 1). An htmx request that targets the
// grid gets only the grid; "load more" gets the page's cards and pager.
func (h *Shop) Browse(c *fiber.Ctx) error {
	category, query, number, err := h.browseQuery(c)
	if err != nil {
		return err
	}
	category, query = utils.CopyString(category), utils.CopyString(query)
	results := h.Catalog.Search(category, query)
	pg := newPager(category, query, number, results.Len())
	if number > pg.Pages {
		return refuse(fiber.StatusNotFound, "error.page_past_end", "Page", strconv.Itoa(number), "Pages", strconv.Itoa(pg.Pages))
	}
	v := h.visit(c)
	target := ""
	if isFragment(c) {
		target = c.Get(hxTarget)
	}
	// The highlights belong to the full page; the grid's fragments leave
	// them out, and so their read.
	full := target != targetGrid && target != targetCards
	views, extra, ok := h.viewsWith(c, v, results.Slice((number-1)*catalogPageSize, number*catalogPageSize), store.Extras{Highlights: full})
	cards, err := h.cards.render(c, cardTemplate, views)
	if err != nil {
		return err
	}
	page := catalogPage{
		layoutData:   h.layout(c, langOf(c).text("catalog.title"), v),
		Categories:   h.Catalog.Categories(),
		CategoryI18n: h.Catalog.CategoryI18n(),
		Category:     category,
		Query:        query,
		Products:     views,
		Cards:        cards,
		Pager:        pg,
		Unavailable:  !ok,
	}
	if full && ok {
		page.Highlights = h.highlights(extra.Highlights)
	}
	c.Vary(hxRequest, hxTarget)
	if isFragment(c) {
		switch target {
		case targetGrid:
			return execute(c, "partials/product-grid", page)
		case targetCards:
			// Below the cards already shown, a way back makes no sense.
			page.Pager.More, page.Pager.Prev = true, ""
			return execute(c, "partials/more-cards", page)
		}
	}
	if page.Filter, err = h.filter(c, page); err != nil {
		return err
	}
	return render(c, "pages/catalog", page)
}

// browseQuery reads and checks the catalog's query parameters. The
// strings are Fiber's: copy what must outlive the handler.
func (h *Shop) browseQuery(c *fiber.Ctx) (category, query string, page int, err error) {
	category, query = c.Query("category"), strings.TrimSpace(c.Query("q"))
	switch {
	case category != "" && !h.Catalog.HasCategory(category):
		return "", "", 0, refuse(fiber.StatusBadRequest, "error.unknown_category")
	case len(query) > maxQueryLen:
		return "", "", 0, refuse(fiber.StatusBadRequest, "error.query_too_long", maxQueryLen)
	}
	page, ok := parsePage(c.Query("page"))
	if !ok {
		return "", "", 0, refuse(fiber.StatusBadRequest, "error.page_not_number")
	}
	return category, query, page, nil
}

// parsePage reads a page number: empty means 1; else digits only, from 1.
// Six digits are plenty (10,000 parts make 417 pages) and cannot overflow.
func parsePage(s string) (int, bool) {
	if s == "" {
		return 1, true
	}
	if len(s) > 6 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 1
}

// newPager places page number among the pages of total results.
func newPager(category, query string, number, total int) pager {
	p := pager{Number: number, Pages: max(1, (total+catalogPageSize-1)/catalogPageSize), Total: int64(total)}
	if number > 1 {
		p.Prev = catalogURL(category, query, number-1)
	}
	if number < p.Pages {
		p.Next = catalogURL(category, query, number+1)
	}
	return p
}

// catalogURL is the link to one page of the catalog, keeping the category
// and the search.
func catalogURL(category, query string, page int) string {
	v := url.Values{}
	if category != "" {
		v.Set("category", category)
	}
	if query != "" {
		v.Set("q", query)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// filterKey names a cached category filter.
type filterKey struct {
	lang     *Locale
	category string
}

// filter renders the category filter of page. Without a search it depends
// on the (validated) category and the language alone, so it is rendered
// once per category and language: its links were a tenth of a catalog
// page's CPU.
func (h *Shop) filter(c *fiber.Ctx, page catalogPage) (template.HTML, error) {
	l := langOf(c)
	key := filterKey{l.Locale, page.Category}
	if page.Query == "" {
		if f, ok := h.filters.Load(key); ok {
			return f.(template.HTML), nil
		}
	}
	var b strings.Builder
	if err := l.views.Render(&b, "partials/category-filter", page); err != nil {
		return "", fmt.Errorf("render partials/category-filter: %w", err)
	}
	f := template.HTML(b.String()) // #nosec G203 -- html/template output
	if page.Query == "" {
		h.filters.Store(key, f)
	}
	return f, nil
}

// Product handles GET /products/:id.
func (h *Shop) Product(c *fiber.Ctx) error {
	p, err := h.product(c)
	if err != nil {
		return err
	}
	v := h.visit(c)
	views, extra, ok := h.viewsWith(c, v, []store.Product{p}, store.Extras{AlsoLiked: p.ID})
	title := p.NameI18n.In(langOf(c).Code, p.Name)
	page := productPage{layoutData: h.layout(c, title, v), Product: views[0], Unavailable: !ok}
	if ok && extra.AlsoKnown { // as on the catalog: no round, no section
		also := h.highlightListOf(extra.AlsoLiked, "highlights.shared_likers", "highlights.also_liked_empty")
		page.AlsoLiked = &also
	}
	return render(c, "pages/product", page)
}

// MyLikes handles GET /likes: the products the current shopper likes.
func (h *Shop) MyLikes(c *fiber.Ctx) error {
	v := h.visit(c)
	_, liked, err := h.Likes.View(c.UserContext(), v.shopper, nil)
	page := likesPage{layoutData: h.layout(c, langOf(c).text("likes.title"), v), Unavailable: err != nil}
	if err != nil {
		h.Log.Warn("likes unavailable", "err", err)
	}
	// From the shopper's set, not a walk through the whole catalog.
	products := h.Catalog.InOrder(slices.Collect(maps.Keys(liked)))
	page.Products, _ = h.views(c, v, products)
	if page.Cards, err = h.cards.render(c, cardTemplate, page.Products); err != nil {
		return err
	}
	return render(c, "pages/likes", page)
}

// like handles POST /products/:id/like and /products/:id/unlike (a): it
// records the Like, then answers with the new button for htmx or a 303
// back to the page the shopper came from.
func (h *Shop) like(a store.Action) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p, shopper, res, err := h.setLike(c, a)
		h.Metrics.like(string(a), likeOutcome(res, err))
		if err != nil {
			return likeRefused(c, err)
		}
		next := localPath(c.FormValue("next"), "/products/"+p.ID)
		if !isFragment(c) {
			return c.Redirect(next, fiber.StatusSeeOther)
		}
		c.Vary(hxRequest)
		// like-result is the button plus an out-of-band swap that clears a
		// "could not save" notice left by an earlier failed click.
		html, err := h.cards.render(c, likeResultTemplate, []productView{{
			Product: p, Count: res.Count, CountKnown: true, Liked: res.Liked, Next: next, CSRF: h.CSRF.Token(shopper),
		}})
		if err != nil {
			return err
		}
		c.Type("html", "utf-8")
		return c.SendString(string(html))
	}
}

// setLike is the protected Like: identify the shopper by the signed cookie,
// check the CSRF token bound to that shopper, then Like in one Redis script
// that also checks the limits and the backlog.
func (h *Shop) setLike(c *fiber.Ctx, a store.Action) (store.Product, string, store.LikeResult, error) {
	shopper, err := h.signedShopper(c)
	if err != nil {
		return store.Product{}, "", store.LikeResult{}, err
	}
	if err := h.CSRF.Check(c, shopper); err != nil {
		return store.Product{}, "", store.LikeResult{}, err
	}
	p, err := h.product(c)
	if err != nil {
		return store.Product{}, "", store.LikeResult{}, err
	}
	res, err := h.Likes.Set(c.UserContext(), store.LikeInput{Shopper: shopper, ClientIP: clientIP(c), Product: p.ID, Action: a})
	return p, shopper, res, err
}

// likeOutcome is the phoenix_likes_total outcome of a Like.
func likeOutcome(res store.LikeResult, err error) string {
	var limited *store.LimitedError
	switch status, _, _ := classify(err); {
	case err == nil && res.Changed:
		return likeAccepted
	case err == nil:
		return likeUnchanged
	case errors.Is(err, store.ErrBusy):
		return likeBusy
	case errors.Is(err, store.ErrUnconfirmed):
		return likeUnconfirmed
	case errors.As(err, &limited):
		return likeLimited
	case status == fiber.StatusForbidden:
		return likeCSRF
	case status == fiber.StatusServiceUnavailable:
		return likeUnavailable
	case status < 500:
		return likeInvalid
	}
	return likeFailed
}

// likeRefused turns the store's refusals of a Like into answers with a
// Retry-After; other errors go to the ErrorHandler as they are.
func likeRefused(c *fiber.Ctx, err error) error {
	var limited *store.LimitedError
	switch {
	case errors.As(err, &limited):
		retryAfter(c, limited.RetryAfter)
		return refuse(fiber.StatusTooManyRequests, "error.too_many_likes")
	case errors.Is(err, store.ErrBusy):
		retryAfter(c, busyRetry)
		return refuse(fiber.StatusServiceUnavailable, "error.busy")
	case errors.Is(err, store.ErrUnconfirmed):
		// A retry is safe: the Like is idempotent.
		retryAfter(c, time.Second)
		return refuse(fiber.StatusServiceUnavailable, "error.like_unconfirmed")
	}
	return err
}

func retryAfter(c *fiber.Ctx, d time.Duration) {
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(int(math.Ceil(d.Seconds())), 1)))
}

// product looks up the :id parameter in the catalog.
func (h *Shop) product(c *fiber.Ctx) (store.Product, error) {
	id := c.Params("id")
	if !store.ValidID(id) {
		return store.Product{}, refuse(fiber.StatusNotFound, "error.part_not_found")
	}
	p, ok := h.Catalog.Product(id)
	if !ok {
		return store.Product{}, fmt.Errorf("product %q: %w", id, store.ErrNotFound)
	}
	return p, nil
}

// views joins products with their live counts and the shopper's likes. When
// Redis cannot be read it still returns the products, with CountKnown false.
func (h *Shop) views(c *fiber.Ctx, v visit, products []store.Product) ([]productView, bool) {
	views, _, ok := h.viewsWith(c, v, products, store.Extras{})
	return views, ok
}

// viewsWith is views that also reads the highlights x names, in the same
// Redis round trip.
func (h *Shop) viewsWith(c *fiber.Ctx, v visit, products []store.Product, x store.Extras) ([]productView, store.Extra, bool) {
	ids := make([]string, len(products))
	for i, p := range products {
		ids[i] = p.ID
	}
	counts, liked, extra, err := h.Likes.ViewWith(c.UserContext(), v.shopper, ids, x)
	if err != nil {
		h.Log.Warn("counts unavailable", "err", err)
	}
	next := c.OriginalURL()
	if isFragment(c) {
		// A fragment's own URL is not where the shopper is; htmx says where.
		next = currentURL(c.Get("HX-Current-URL"), next)
	}
	next, csrf := utils.CopyString(next), v.csrf
	out := make([]productView, len(products))
	for i, p := range products {
		out[i] = productView{Product: p, Count: counts[p.ID], CountKnown: err == nil, Liked: liked[p.ID], Next: next, CSRF: csrf}
	}
	return out, extra, err == nil
}

// visit is who is viewing a page: the shopper ("" when no id could be
// issued), their CSRF token, and the message id of a notice for the page.
type visit struct {
	shopper, csrf, notice string
}

// visit identifies the shopper of a page view, giving the cookie on the
// first visit: a new id (limited per client address), or the signed form
// of an unsigned id from an earlier version that still has likes in Redis.
func (h *Shop) visit(c *fiber.Ctx) visit {
	cookie := c.Cookies(shopperCookie)
	if id, ok := h.Shoppers.verify(cookie); ok {
		return visit{shopper: id, csrf: h.CSRF.Token(id)}
	}
	ctx := c.UserContext()
	if legacyShopperID(cookie) {
		known, err := h.Likes.Known(ctx, cookie)
		if err != nil {
			h.Log.Warn("shopper not upgraded", "err", err)
			return visit{}
		}
		if known {
			return h.welcome(c, utils.CopyString(cookie))
		}
	}
	// While Redis is down the limit cannot be read. The id is issued all
	// the same, so that the shopper's Like answers "try again" (503) and
	// works once Redis is back, instead of asking for a reload.
	var limited *store.LimitedError
	if err := h.Likes.Admit(ctx, clientIP(c)); errors.As(err, &limited) {
		return visit{notice: "notice.too_many_visitors"}
	} else if err != nil {
		h.Log.Warn("new shopper not counted", "err", err)
	}
	id, err := h.Shoppers.issue()
	if err != nil {
		h.Log.Error("shopper not issued", "err", err)
		return visit{}
	}
	return h.welcome(c, id)
}

// welcome gives the shopper the signed cookie of id.
func (h *Shop) welcome(c *fiber.Ctx, id string) visit {
	c.Cookie(&fiber.Cookie{
		Name: shopperCookie, Value: h.Shoppers.cookie(id), Path: "/", MaxAge: 365 * 24 * 3600,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.SecureCookie,
	})
	return visit{shopper: id, csrf: h.CSRF.Token(id)}
}

// signedShopper returns the shopper of a Like: only an id the shop signed
// may Like, so inventing or altering a cookie gets nothing.
func (h *Shop) signedShopper(c *fiber.Ctx) (string, error) {
	cookie := c.Cookies(shopperCookie)
	if cookie == "" {
		return "", refuse(fiber.StatusBadRequest, "error.no_cookie")
	}
	id, ok := h.Shoppers.verify(cookie)
	if !ok {
		return "", refuse(fiber.StatusBadRequest, "error.bad_cookie")
	}
	return utils.CopyString(id), nil
}

// localPath returns next if it is a path on this site, else fallback, so the
// redirect after a Like cannot send a shopper elsewhere.
func localPath(next, fallback string) string {
	if next == "" || len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsRune(next, '\\') || strings.ContainsFunc(next, isControl) {
		return fallback
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return fallback
	}
	return next
}

// isControl reports ASCII control characters, which have no place in a
// Location header (CR/LF would split it; browsers drop tabs and newlines,
// which could turn "/\t/evil" into "//evil").
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// currentURL returns the path and query of an absolute URL sent by htmx.
func currentURL(raw, fallback string) string {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return fallback
	}
	return localPath(u.RequestURI(), fallback)
}
