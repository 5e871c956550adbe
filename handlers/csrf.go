package handlers

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

// CSRF settings shared by every role.
const (
	csrfHeader     = "X-CSRF-Token" // set by htmx from hx-headers on <body>
	csrfFormField  = "csrf"         // the hidden field of no-JS forms
	csrfExpiration = 24 * time.Hour // a page's token works this long
	// csrfCookie holds the admin's visitor nonce, to which its tokens are
	// bound before and during a session (the shop binds to the shopper id).
	csrfCookie = "phoenix_csrf"
)

// CSRF makes and checks tokens bound to one visitor of one role: a token is
// expiry.mac, with mac an HMAC-SHA256 of the visitor and the expiry under a
// key derived from PHOENIX_SECRET with the role's own label. So a token
// works only for the visitor it was given to (the shop's shopper id, the
// admin's visitor nonce), only in its role, and on every replica that
// shares the secret, without a store or a Redis round trip.
//
// Not Fiber's csrf middleware: its KeyGenerator and Storage see the token
// alone, never the request, so they cannot bind a token to its visitor.
type CSRF struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewCSRF derives the token key of role ("shop", "admin") from secret.
func NewCSRF(secret []byte, role string) (*CSRF, error) {
	key, err := deriveKey(secret, "phoenix "+role+" csrf token v2")
	if err != nil {
		return nil, err
	}
	return &CSRF{key: key, ttl: csrfExpiration, now: time.Now}, nil
}

// deriveKey derives a 32-byte key for one purpose (label) from secret
// (HKDF-SHA256), so the secret itself never signs and no two purposes
// share a key.
func deriveKey(secret []byte, label string) ([]byte, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, label, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key %q: %w", label, err)
	}
	return key, nil
}

// Token returns a fresh token for visitor ("" for none: no visitor, no
// token).
func (x *CSRF) Token(visitor string) string {
	if visitor == "" {
		return ""
	}
	exp := strconv.FormatInt(x.now().Add(x.ttl).Unix(), 10)
	return exp + "." + x.mac(visitor, exp)
}

func (x *CSRF) mac(visitor, exp string) string {
	m := hmac.New(sha256.New, x.key)
	m.Write([]byte(exp))
	m.Write([]byte{0})
	m.Write([]byte(visitor))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Check refuses (403) an unsafe request that comes from another site or
// whose token (X-CSRF-Token header, else the csrf form field) was not
// issued to visitor by this role, or has expired.
//
// Origin: a browser sends it on cross-site POSTs, and one naming another
// site is refused before the token is looked at. Without Origin, over HTTPS
// (or behind a trusted TLS proxy) the Referer must name this host; over
// plain HTTP browsers drop it.
func (x *CSRF) Check(c *fiber.Ctx, visitor string) error {
	if !sameOrigin(c) {
		return &userError{status: fiber.StatusForbidden, id: "error.csrf", cause: errors.New("cross-site request")}
	}
	token := csrfFromHeaderOrForm(c)
	exp, mac, ok := strings.Cut(token, ".")
	if !ok || visitor == "" || len(token) > 128 || !hmac.Equal([]byte(mac), []byte(x.mac(visitor, exp))) {
		return &userError{status: fiber.StatusForbidden, id: "error.csrf", cause: errors.New("no valid token")}
	}
	if secs, err := strconv.ParseInt(exp, 10, 64); err != nil || !x.now().Before(time.Unix(secs, 0)) {
		return &userError{status: fiber.StatusForbidden, id: "error.csrf", cause: errors.New("token expired")}
	}
	return nil
}

// csrfFromHeaderOrForm takes the token from the htmx header, else the form
// body; never from the query string, which leaks into logs and Referers
// (c.FormValue would read it from there too).
func csrfFromHeaderOrForm(c *fiber.Ctx) string {
	if t := c.Get(csrfHeader); t != "" {
		return t
	}
	if t := c.Request().PostArgs().Peek(csrfFormField); len(t) > 0 {
		return string(t)
	}
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEMultipartForm) {
		if f, err := c.MultipartForm(); err == nil && len(f.Value[csrfFormField]) > 0 {
			return f.Value[csrfFormField][0]
		}
	}
	return ""
}

// sameOrigin reports whether the request's Origin header names this site.
// Without Origin, an HTTPS request needs a Referer of this host; an HTTP
// one passes (old browsers, non-browser clients), and the token still has
// to match.
func sameOrigin(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		if c.Protocol() != "https" {
			return true
		}
		ref, err := url.Parse(c.Get(fiber.HeaderReferer))
		return err == nil && ref.Host == c.Hostname()
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && u.Host == c.Hostname() && u.Scheme == c.Protocol()
}
