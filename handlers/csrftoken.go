package handlers

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// Signed token layout: expiry (unix seconds, 8 bytes) | random nonce | MAC.
const (
	tokenNonceLen = 16
	tokenMACLen   = 16 // HMAC-SHA256 truncated to 128 bits
	tokenLen      = 8 + tokenNonceLen + tokenMACLen
)

// SignedTokens is a fiber.Storage for Fiber's CSRF middleware that stores
// nothing: its Generate mints tokens that carry their own expiry and an
// HMAC under a key derived from PHOENIX_SECRET, and Get accepts exactly the
// tokens that verify and have not expired. Every replica that shares the
// secret therefore accepts every other replica's tokens, a restart keeps
// them valid, and no shared storage is needed. That suits the admin, which
// has no Redis; the shop keeps its tokens in Redis.
//
// The price: a token cannot be revoked before it expires, and Fiber's
// "extend on use" (Set) cannot move the expiry. Neither matters here: the
// token must still equal the HttpOnly cookie (double submit), and a token
// past its expiry is replaced by a fresh one on the next page load.
//
// Use it as the CSRF storage together with its Generate as the key
// generator (CSRFConfig.Storage and CSRFConfig.KeyGenerator).
type SignedTokens struct {
	TTL time.Duration    // how long a token is valid
	Now func() time.Time // the clock; tests move it

	key []byte
}

// NewSignedTokens derives the signing key from secret (HKDF-SHA256 with its
// own label, so it differs from the session cookie's key).
func NewSignedTokens(secret []byte, ttl time.Duration) (*SignedTokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("token lifetime %v, want a positive duration", ttl)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "phoenix csrf token v1", 32)
	if err != nil {
		return nil, fmt.Errorf("derive csrf key: %w", err)
	}
	return &SignedTokens{TTL: ttl, Now: time.Now, key: key}, nil
}

// Generate mints a token valid for TTL from now.
func (s *SignedTokens) Generate() string {
	var b [tokenLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(s.Now().Add(s.TTL).Unix()))
	_, _ = rand.Read(b[8 : 8+tokenNonceLen]) // never fails (crypto/rand)
	copy(b[8+tokenNonceLen:], s.mac(b[:8+tokenNonceLen]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *SignedTokens) mac(msg []byte) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write(msg)
	return m.Sum(nil)[:tokenMACLen]
}

// Get returns a non-nil value for a token that Generate minted under the
// same secret and that has not expired, and nil otherwise. It never returns
// an error: CSRF treats a failed read as "accept" (see lenientStorage), so an
// unknown token must read as missing, not as failed.
func (s *SignedTokens) Get(token string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != tokenLen {
		return nil, nil
	}
	body, sum := b[:8+tokenNonceLen], b[8+tokenNonceLen:]
	if !hmac.Equal(sum, s.mac(body)) {
		return nil, nil
	}
	exp := int64(binary.BigEndian.Uint64(b[:8]))
	if s.Now().Unix() >= exp {
		return nil, nil
	}
	return []byte{'+'}, nil
}

// Set does nothing: the token carries its own validity.
func (s *SignedTokens) Set(string, []byte, time.Duration) error { return nil }

// Delete does nothing: a signed token cannot be revoked before it expires.
func (s *SignedTokens) Delete(string) error { return nil }

// Reset does nothing.
func (s *SignedTokens) Reset() error { return nil }

// Close does nothing.
func (s *SignedTokens) Close() error { return nil }
