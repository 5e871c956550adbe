package handlers

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignedTokens makes CSRF tokens (see CSRFConfig.Signed) that carry their own proof of issue,
// random.expiry.mac, with mac an HMAC-SHA256 under a key derived from
// PHOENIX_SECRET. Its method set is fiber.Storage's: Get verifies the token
// instead of looking it up, Set and Delete do nothing. Every replica that
// shares the secret accepts every other's tokens without a shared store, so
// a protected Like costs no Redis round trip for CSRF (it cost two: Fiber's
// Get, then its Set to extend the token), and anonymous page views no
// longer leave a key in Redis each.
//
// Fiber's middleware still does everything else: the token in the header or
// form must equal the cookie's (double submit) and, over HTTPS, the Referer
// must be this host; CSRF adds the Origin check. What is lost is revocation
// of a single token, which Phoenix never does.
type SignedTokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// csrfTokenInfo separates the CSRF key from the other keys derived from
// the same secret (the admin's cookie key).
const csrfTokenInfo = "phoenix csrf token v1" // #nosec G101 -- an HKDF label, not a credential

// NewSignedTokens derives the token key from secret (HKDF-SHA256), so the
// secret itself never signs.
func NewSignedTokens(secret []byte) (*SignedTokens, error) {
	return newSignedTokens(secret, csrfExpiration)
}

func newSignedTokens(secret []byte, ttl time.Duration) (*SignedTokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, csrfTokenInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive csrf key: %w", err)
	}
	return &SignedTokens{key: key, ttl: ttl, now: time.Now}, nil
}

// generate is the middleware's KeyGenerator: 128 random bits, the expiry
// in unix seconds, and the MAC of both.
func (s *SignedTokens) generate() string {
	payload := rand.Text() + "." + strconv.FormatInt(s.now().Add(s.ttl).Unix(), 10)
	return payload + "." + s.mac(payload)
}

func (s *SignedTokens) mac(payload string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// expiry returns the expiry of a token this key issued, or false for a
// token it did not issue (or one that is malformed).
func (s *SignedTokens) expiry(token string) (time.Time, bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || len(token) > 128 {
		return time.Time{}, false
	}
	payload := token[:i]
	if !hmac.Equal([]byte(token[i+1:]), []byte(s.mac(payload))) {
		return time.Time{}, false
	}
	j := strings.LastIndexByte(payload, '.')
	if j < 0 {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt(payload[j+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

// stale reports whether a token should be replaced on the next page view:
// it is not ours, or it is past half its life. Tokens cannot be extended
// in place (their expiry is signed), so page views renew them instead, and
// a page opened less than half a lifetime ago keeps working.
func (s *SignedTokens) stale(token string) bool {
	exp, ok := s.expiry(token)
	return !ok || exp.Sub(s.now()) < s.ttl/2
}

// Get answers a non-nil value for a valid, unexpired token and nil (unknown)
// for any other.
func (s *SignedTokens) Get(token string) ([]byte, error) {
	if exp, ok := s.expiry(token); ok && s.now().Before(exp) {
		return []byte{'+'}, nil
	}
	return nil, nil
}

// Set does nothing: a token needs no record.
func (s *SignedTokens) Set(string, []byte, time.Duration) error { return nil }

// Delete does nothing: Phoenix never revokes single tokens.
func (s *SignedTokens) Delete(string) error { return nil }

// Reset does nothing.
func (s *SignedTokens) Reset() error { return nil }

// Close does nothing.
func (s *SignedTokens) Close() error { return nil }
