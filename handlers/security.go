package handlers

import (
	"errors"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/csrf"
	"github.com/gofiber/fiber/v2/middleware/limiter"

	"phoenix/store"
)

// CSRF settings shared by every role.
const (
	csrfCookie     = "phoenix_csrf"
	csrfHeader     = "X-CSRF-Token" // set by htmx from hx-headers on <body>
	csrfFormField  = "csrf"         // the hidden field of no-JS forms
	csrfExpiration = 24 * time.Hour // renewed on every request that carries it
)

// CSRFConfig configures CSRF.
type CSRFConfig struct {
	// Signed, when set (NewSignedTokens(PHOENIX_SECRET)), makes tokens
	// that every replica sharing the secret verifies without a store;
	// Storage is then unused.
	Signed *SignedTokens
	// Storage keeps issued tokens when there is no Secret. Several replicas
	// must share it (store.NewKV over Redis); nil keeps them in this
	// process only.
	Storage fiber.Storage
	// Secure marks the cookie Secure (served over TLS or a TLS proxy).
	Secure bool
}

// CSRF protects every unsafe request (anything but GET, HEAD, OPTIONS,
// TRACE) of the routes after it with Fiber's CSRF middleware: a random token
// in an HttpOnly, SameSite=Lax cookie that the request must also carry in the
// X-CSRF-Token header (htmx) or the csrf form field (no-JS forms), and that
// Storage must know (double submit, checked against issued tokens). Pages
// read the token through csrfToken(c).
//
// Origin: a browser sends Origin on cross-site POSTs; one that names another
// site is refused here before the token is even looked at. Over HTTPS (or
// behind a trusted TLS proxy) Fiber's middleware also demands a Referer of
// this very host. Over plain HTTP it cannot: browsers drop Referer there.
func CSRF(cfg CSRFConfig) fiber.Handler {
	var (
		storage fiber.Storage
		keygen  func() string
		signed  = cfg.Signed
	)
	switch {
	case signed != nil:
		storage, keygen = signed, signed.generate
	case cfg.Storage != nil:
		storage = lenientStorage{cfg.Storage}
	}
	token := csrf.New(csrf.Config{
		KeyGenerator:   keygen,
		CookieName:     csrfCookie,
		CookiePath:     "/",
		CookieSecure:   cfg.Secure,
		CookieHTTPOnly: true,
		CookieSameSite: fiber.CookieSameSiteLaxMode,
		Expiration:     csrfExpiration,
		Storage:        storage,
		ContextKey:     csrfContextKey,
		Extractor:      csrfFromHeaderOrForm,
		ErrorHandler: func(_ *fiber.Ctx, err error) error {
			return &userError{status: fiber.StatusForbidden, id: "error.csrf", cause: err}
		},
	})
	return func(c *fiber.Ctx) error {
		safe := safeMethod(c.Method())
		if !safe && !sameOrigin(c) {
			return &userError{status: fiber.StatusForbidden, id: "error.csrf", cause: errors.New("cross-site request")}
		}
		if safe && signed != nil {
			if t := c.Cookies(csrfCookie); t != "" && signed.stale(t) {
				// Forget it, so that the middleware issues a fresh one.
				c.Request().Header.DelCookie(csrfCookie)
			}
		}
		return token(c)
	}
}

// lenientStorage accepts any token when the storage cannot be read. Fiber's
// middleware treats a failed read as an unknown token, which would answer a
// Like with 403 and expire the cookie while Redis is down, where the design
// wants "could not save, try again" (503). Accepting is safe: the token must
// still equal the cookie (double submit), and the shop can change nothing
// while Redis, its only state, is down.
type lenientStorage struct{ fiber.Storage }

func (s lenientStorage) Get(key string) ([]byte, error) {
	b, err := s.Storage.Get(key)
	if err != nil {
		return []byte{'+'}, nil
	}
	return b, nil
}

// csrfFromHeaderOrForm takes the token from the htmx header, else the form
// body; never from the query string, which leaks into logs and Referers
// (c.FormValue would read it from there too).
func csrfFromHeaderOrForm(c *fiber.Ctx) (string, error) {
	if t := c.Get(csrfHeader); t != "" {
		return t, nil
	}
	if t := c.Request().PostArgs().Peek(csrfFormField); len(t) > 0 {
		return string(t), nil
	}
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEMultipartForm) {
		if f, err := c.MultipartForm(); err == nil && len(f.Value[csrfFormField]) > 0 && f.Value[csrfFormField][0] != "" {
			return f.Value[csrfFormField][0], nil
		}
	}
	return "", errors.New("csrf token missing")
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions || m == fiber.MethodTrace
}

// sameOrigin reports whether the request's Origin header, when present,
// names this host. A missing Origin passes (old browsers, non-browser
// clients); the token still has to match.
func sameOrigin(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && u.Host == c.Hostname() && u.Scheme == c.Protocol()
}

// RateRule is one rate limit of RateLimit: requests with the same key share
// Rate. A key of "" (or a disabled Rate) skips the rule.
type RateRule struct {
	Name string // part of the Redis key: "shopper", "ip"
	Key  func(*fiber.Ctx) string
	Rate store.Rate
}

// RateLimit cuts the routes after it to the given rates, checked in Redis in
// one round trip for all rules, so the limits hold across replicas. Over the
// limit it answers 429 with Retry-After and message id msg (a fragment in
// #flash for htmx, through the ErrorHandler).
//
// Not Fiber's limiter middleware: its storage interface needs a Get and a Set
// per rule under a process-wide lock, which lets concurrent replicas overrun
// the limit and costs four round trips for two rules.
func RateLimit(l *store.Limiter, name, msg string, rules ...RateRule) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var hits [4]store.Hit
		n := 0
		for _, r := range rules {
			if k := r.Key(c); k != "" && r.Rate.Enabled() && n < len(hits) {
				hits[n] = store.Hit{Key: name + ":" + r.Name + ":" + k, Rate: r.Rate}
				n++
			}
		}
		ok, retry, err := l.Allow(c.UserContext(), hits[:n]...)
		if err != nil {
			return err
		}
		if !ok {
			secs := int(math.Ceil(retry.Seconds()))
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(secs, 1)))
			return refuse(fiber.StatusTooManyRequests, msg)
		}
		return c.Next()
	}
}

// LikeLimit limits Likes and Unlikes per shopper and per client address.
// Unlike RateLimit it does not call Redis: it leaves the limits for the
// Like handler, which charges them in the Like's own script, so a limited
// Like costs one Redis round trip instead of two. Over a limit the Like
// answers 429 with Retry-After, as RateLimit does.
func LikeLimit(l *store.Limiter, perShopper, perIP store.Rate) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var hits [2]store.Hit
		n := 0
		// The keys are those RateLimit would use; an empty key skips its rule.
		for _, r := range [...]struct {
			name, key string
			rate      store.Rate
		}{{"shopper", shopperID(c), perShopper}, {"ip", clientIP(c), perIP}} {
			if r.key != "" {
				hits[n] = store.Hit{Key: "like:" + r.name + ":" + r.key, Rate: r.rate}
				n++
			}
		}
		c.Locals(likeLimitKey, l.Charge(hits[:n]...))
		return c.Next()
	}
}

// likeLimitKey is where LikeLimit leaves the limits for setLike.
const likeLimitKey = "like_limit"

// tooManyLikes is the answer to a Like over its limit.
func tooManyLikes(c *fiber.Ctx, e *store.LimitedError) error {
	secs := int(math.Ceil(e.RetryAfter.Seconds()))
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(secs, 1)))
	return refuse(fiber.StatusTooManyRequests, "error.too_many_likes")
}

// clientIP is the client's address: the proxy header's when the request
// came from a trusted proxy (see AppConfig.ProxyHeader), else the peer's.
func clientIP(c *fiber.Ctx) string { return c.IP() }

// LoginLimitConfig configures LoginLimiter.
type LoginLimitConfig struct {
	Max    int           // failed attempts allowed per client address and Window
	Window time.Duration // how long failures are remembered
	// Storage shares the count between replicas; nil counts in this process.
	Storage fiber.Storage
}

// LoginLimiter limits failed logins per client address with Fiber's limiter
// (only answers with a status >= 400 count). It returns two handlers to put
// before the login handler, the second of which turns the handler's error
// into its response so the limiter sees the final status:
//
//	r.Post("/login", append(handlers.LoginLimiter(cfg), h.Login)...)
func LoginLimiter(cfg LoginLimitConfig) []fiber.Handler {
	lim := limiter.New(limiter.Config{
		Max:                    cfg.Max,
		Expiration:             cfg.Window,
		KeyGenerator:           clientIP,
		Storage:                cfg.Storage,
		SkipSuccessfulRequests: true,
		LimitReached: func(c *fiber.Ctx) error {
			secs, _ := strconv.Atoi(c.GetRespHeader(fiber.HeaderRetryAfter))
			return refuse(fiber.StatusTooManyRequests, "error.too_many_logins", secs)
		},
	})
	respond := func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return c.App().ErrorHandler(c, err)
		}
		return nil
	}
	return []fiber.Handler{lim, respond}
}
