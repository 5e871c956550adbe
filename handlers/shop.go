package handlers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"phoenix/store"
)

// shopperCookie holds the shopper's random id (128 bits, hex).
const shopperCookie = "phoenix_shopper"

// Limits on query strings, so a search cannot cost more than a page.
const maxQueryLen = 100

// Shop serves the catalog, product pages, "My likes" and the Like buttons.
// It talks to Redis only, through Likes.
type Shop struct {
	Likes        *store.Likes
	Catalog      *store.Catalog
	Log          *slog.Logger
	Instance     string
	SecureCookie bool // mark cookies Secure (served over TLS or behind a TLS proxy)
	// CSRF guards Like and Unlike; nil means CSRF(CSRFConfig{Secure:
	// SecureCookie}), whose tokens live in this process only.
	CSRF fiber.Handler
	// LikeLimit rate-limits Like and Unlike (see LikeLimit); nil: none.
	LikeLimit fiber.Handler
	// Metrics counts Likes by outcome; nil: not counted.
	Metrics *Metrics

	cards   langCards // product cards, cut up once per language (see cards)
	filters sync.Map  // filterKey -> the filter's HTML without a search (see filter)
}

// Routes registers the shop's pages and actions.
func (h *Shop) Routes(r fiber.Router) {
	protect := h.CSRF
	if protect == nil {
		protect = CSRF(CSRFConfig{Secure: h.SecureCookie})
	}
	limit := h.LikeLimit
	if limit == nil {
		limit = func(c *fiber.Ctx) error { return c.Next() }
	}
	// Per route, not r.Use: a request for an unknown path or an asset
	// then never mints a CSRF token (a key in Redis).
	r.Get("/", h.identify, protect, h.Browse)
	r.Get("/products/:id", h.identify, protect, h.Product)
	r.Get("/likes", h.identify, protect, h.MyLikes)
	// The limit comes after CSRF and the product check, so neither a forged
	// request nor a junk id spends an allowance or touches Redis.
	// countLike comes first, so that refusals by any step are counted.
	r.Post("/products/:id/like", h.countLike(store.ActionLike), h.identify, protect, h.known, limit, h.Like)
	r.Post("/products/:id/unlike", h.countLike(store.ActionUnlike), h.identify, protect, h.known, limit, h.Unlike)
}

// likeOutcomeKey is where setLike says whether the Like changed anything.
const likeOutcomeKey = "like_outcome"

// countLike counts each Like or Unlike by its outcome: accepted or
// unchanged as setLike reports it, else by the status of the refusal.
func (h *Shop) countLike(a store.Action) fiber.Handler {
	return func(c *fiber.Ctx) error {
		err := c.Next()
		outcome, _ := c.Locals(likeOutcomeKey).(string)
		if err != nil {
			switch status, _, _ := classify(err); {
			case status == fiber.StatusForbidden:
				outcome = likeCSRF
			case status == fiber.StatusTooManyRequests:
				outcome = likeLimited
			case status == fiber.StatusServiceUnavailable:
				outcome = likeUnavailable
			case status < 500:
				outcome = likeInvalid
			default:
				outcome = likeFailed
			}
		}
		if outcome != "" {
			h.Metrics.like(string(a), outcome)
		}
		return err
	}
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
}

type likesPage struct {
	layoutData
	Products    []productView
	Cards       template.HTML // Products' cards
	Unavailable bool
}

func (h *Shop) layout(c *fiber.Ctx, title string) layoutData {
	return newLayout(c, title, h.Instance, "shop")
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
	views, ok := h.views(c, results.Slice((number-1)*catalogPageSize, number*catalogPageSize))
	cards, err := h.cards.render(c, views)
	if err != nil {
		return err
	}
	page := catalogPage{
		layoutData:   h.layout(c, langOf(c).text("catalog.title")),
		Categories:   h.Catalog.Categories(),
		CategoryI18n: h.Catalog.CategoryI18n(),
		Category:     category,
		Query:        query,
		Products:     views,
		Cards:        cards,
		Pager:        pg,
		Unavailable:  !ok,
	}
	c.Vary(hxRequest, hxTarget)
	if isFragment(c) {
		switch c.Get(hxTarget) {
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
	case !utf8.ValidString(query) || strings.ContainsFunc(query, isControl):
		return "", "", 0, refuse(fiber.StatusBadRequest, "error.query_not_text")
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
	views, ok := h.views(c, []store.Product{p})
	title := p.NameI18n.In(langOf(c).Code, p.Name)
	return render(c, "pages/product", productPage{layoutData: h.layout(c, title), Product: views[0], Unavailable: !ok})
}

// MyLikes handles GET /likes: the products the current shopper likes.
func (h *Shop) MyLikes(c *fiber.Ctx) error {
	_, liked, err := h.Likes.View(c.UserContext(), shopperID(c), nil)
	page := likesPage{layoutData: h.layout(c, langOf(c).text("likes.title")), Unavailable: err != nil}
	if err != nil {
		h.Log.Warn("likes unavailable", "err", err)
	}
	// From the shopper's set, not a walk through the whole catalog.
	products := h.Catalog.InOrder(slices.Collect(maps.Keys(liked)))
	page.Products, _ = h.views(c, products)
	if page.Cards, err = h.cards.render(c, page.Products); err != nil {
		return err
	}
	return render(c, "pages/likes", page)
}

// Like handles POST /products/:id/like.
func (h *Shop) Like(c *fiber.Ctx) error { return h.setLike(c, store.ActionLike) }

// Unlike handles POST /products/:id/unlike.
func (h *Shop) Unlike(c *fiber.Ctx) error { return h.setLike(c, store.ActionUnlike) }

// setLike records the Like or Unlike, then answers with the new button for
// htmx or a 303 back to the page the shopper came from.
func (h *Shop) setLike(c *fiber.Ctx, a store.Action) error {
	p, err := h.product(c)
	if err != nil {
		return err
	}
	limits, _ := c.Locals(likeLimitKey).(store.Charge)
	res, err := h.Likes.Set(c.UserContext(), shopperID(c), p.ID, a, limits)
	if limited := (*store.LimitedError)(nil); errors.As(err, &limited) {
		return tooManyLikes(c, limited)
	}
	if err != nil {
		return err
	}
	if res.Changed {
		c.Locals(likeOutcomeKey, likeAccepted)
	} else {
		c.Locals(likeOutcomeKey, likeUnchanged)
	}
	next := localPath(c.FormValue("next"), "/products/"+p.ID)
	if !isFragment(c) {
		return c.Redirect(next, fiber.StatusSeeOther)
	}
	c.Vary(hxRequest)
	// like-result is the button plus an out-of-band swap that clears a
	// "could not save" notice left by an earlier failed click.
	return execute(c, "partials/like-result", productView{
		Product: p, Count: res.Count, CountKnown: true, Liked: res.Liked, Next: next, CSRF: csrfToken(c),
	})
}

// known refuses a request for a product that is not in the catalog.
func (h *Shop) known(c *fiber.Ctx) error {
	if _, err := h.product(c); err != nil {
		return err
	}
	return c.Next()
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
func (h *Shop) views(c *fiber.Ctx, products []store.Product) ([]productView, bool) {
	ids := make([]string, len(products))
	for i, p := range products {
		ids[i] = p.ID
	}
	counts, liked, err := h.Likes.View(c.UserContext(), shopperID(c), ids)
	if err != nil {
		h.Log.Warn("counts unavailable", "err", err)
	}
	next := c.OriginalURL()
	if isFragment(c) {
		// A fragment's own URL is not where the shopper is; htmx says where.
		next = currentURL(c.Get("HX-Current-URL"), next)
	}
	next, csrf := utils.CopyString(next), csrfToken(c)
	out := make([]productView, len(products))
	for i, p := range products {
		out[i] = productView{Product: p, Count: counts[p.ID], CountKnown: err == nil, Liked: liked[p.ID], Next: next, CSRF: csrf}
	}
	return out, err == nil
}

// identify makes sure the shopper has an id cookie, issuing one on the first
// visit (or when the cookie is not one of ours). A Like needs the cookie
// from an earlier page: a made-up shopper could not have seen the button.
func (h *Shop) identify(c *fiber.Ctx) error {
	id := c.Cookies(shopperCookie)
	if !validShopperID(id) {
		if !safeMethod(c.Method()) {
			return refuse(fiber.StatusBadRequest, "error.no_cookie")
		}
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("new shopper id: %w", err)
		}
		id = hex.EncodeToString(b[:])
		c.Cookie(&fiber.Cookie{
			Name: shopperCookie, Value: id, Path: "/", MaxAge: 365 * 24 * 3600,
			HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode, Secure: h.SecureCookie,
		})
	}
	c.Locals(shopperCookie, utils.CopyString(id))
	return c.Next()
}

func shopperID(c *fiber.Ctx) string {
	id, _ := c.Locals(shopperCookie).(string)
	return id
}

func validShopperID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
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

// csrfToken returns the CSRF token that the CSRF middleware left for this
// request, or "" when CSRF is off.
func csrfToken(c *fiber.Ctx) string {
	t, _ := c.Locals(csrfContextKey).(string)
	return t
}

// csrfContextKey is where the CSRF middleware stores the token.
const csrfContextKey = "csrf"
