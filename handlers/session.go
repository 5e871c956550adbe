package handlers

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/encryptcookie"
)

// sessionCookie holds the admin's session.
const sessionCookie = "phoenix_admin"

// MinSecretLen is the shortest PHOENIX_SECRET accepted: 32 bytes, the size
// of the AES-256 key derived from it.
const MinSecretLen = 32

// Sessions issues and checks the admin's session cookie.
//
// The session lives in the cookie itself, encrypted and authenticated with
// AES-256-GCM by Fiber's encryptcookie middleware, rather than in the session
// middleware's in-memory store: every admin replica that shares
// PHOENIX_SECRET accepts the cookie, a restart logs nobody out, and no shared
// session storage is needed. The price is that logging out cannot revoke a
// copy of the cookie taken earlier; the cookie's value therefore carries its
// own expiry (TTL) and a fingerprint of the password, so changing
// PHOENIX_ADMIN_PASSWORD ends every session at once.
type Sessions struct {
	Password string        // the one admin password
	TTL      time.Duration // how long a login lasts
	Secure   bool          // mark the cookie Secure (TLS in front)
	Now      func() time.Time

	cookieKey   string // base64 AES key for encryptcookie
	fingerprint string // HMAC of the password under the secret
}

// NewSessions checks the password and secret and derives the cookie key
// from the secret (HKDF-SHA256), so the secret itself never encrypts.
func NewSessions(password string, secret []byte, ttl time.Duration, secure bool) (*Sessions, error) {
	if password == "" {
		return nil, errors.New("admin password is empty")
	}
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "phoenix admin session cookie v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive cookie key: %w", err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("phoenix admin password v1\x00" + password))
	return &Sessions{
		Password: password, TTL: ttl, Secure: secure, Now: time.Now,
		cookieKey:   base64.StdEncoding.EncodeToString(key),
		fingerprint: hex.EncodeToString(mac.Sum(nil)[:16]),
	}, nil
}

// Middleware decrypts the request's cookies and encrypts the response's; a
// cookie that fails authentication reads as empty. The CSRF cookie is left
// alone: it must equal the token in the page (double submit), and its value
// is no secret from the browser that holds it. So is the language cookie,
// which the shop reads too and the locale middleware reads before this one.
func (s *Sessions) Middleware() fiber.Handler {
	return encryptcookie.New(encryptcookie.Config{Key: s.cookieKey, Except: []string{csrfCookie, langCookie}})
}

// CheckPassword compares in constant time. Hashing first makes the time
// independent of the lengths too.
func (s *Sessions) CheckPassword(given string) bool {
	a, b := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(s.Password))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Start sets the session cookie after a successful login.
func (s *Sessions) Start(c *fiber.Ctx) {
	exp := s.Now().Add(s.TTL)
	s.setCookie(c, "v1|"+strconv.FormatInt(exp.Unix(), 10)+"|"+s.fingerprint, exp)
}

// End clears the session cookie.
func (s *Sessions) End(c *fiber.Ctx) {
	s.setCookie(c, "", time.Unix(0, 0))
}

func (s *Sessions) setCookie(c *fiber.Ctx, value string, exp time.Time) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: value, Path: "/", Expires: exp,
		HTTPOnly: true, Secure: s.Secure, SameSite: fiber.CookieSameSiteStrictMode,
	})
}

// Valid reports whether the request carries a live session: a cookie this
// server (or a replica with the same secret) issued, not expired, for the
// current password.
func (s *Sessions) Valid(c *fiber.Ctx) bool {
	parts := strings.Split(c.Cookies(sessionCookie), "|")
	if len(parts) != 3 || parts[0] != "v1" {
		return false
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || s.Now().Unix() >= exp {
		return false
	}
	return hmac.Equal([]byte(parts[2]), []byte(s.fingerprint))
}
