package handlers

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// shopperCookie holds the shopper's id, signed by the shop (see Shoppers).
const shopperCookie = "phoenix_shopper"

// shopperMACLen is the signature's length in bytes: 128 bits of HMAC.
const shopperMACLen = 16

// Shoppers issues shopper ids and recognises the ones it issued: a cookie
// is the id (128 random bits, hex) and its HMAC-SHA256 under a key derived
// from PHOENIX_SECRET for this purpose alone. Every shop replica with the
// same secret accepts every other's ids, and nobody can invent one: a new
// shopper costs a page view, which is limited per client address.
type Shoppers struct{ key []byte }

// NewShoppers derives the shopper-id key from secret.
func NewShoppers(secret []byte) (*Shoppers, error) {
	key, err := deriveKey(secret, "phoenix shopper id v1")
	if err != nil {
		return nil, err
	}
	return &Shoppers{key: key}, nil
}

// issue returns a new random id.
func (s *Shoppers) issue() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new shopper id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// cookie returns the signed cookie value of id.
func (s *Shoppers) cookie(id string) string { return id + "." + s.mac(id) }

func (s *Shoppers) mac(id string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:shopperMACLen])
}

// verify returns the id of a cookie value this shop signed; ok is false for
// any other (invented, altered, unsigned or malformed).
func (s *Shoppers) verify(cookie string) (id string, ok bool) {
	id, mac, found := strings.Cut(cookie, ".")
	if !found || !legacyShopperID(id) {
		return "", false
	}
	return id, hmac.Equal([]byte(mac), []byte(s.mac(id)))
}

// legacyShopperID reports whether id has the shape of a shopper id (32
// lower-case hex digits), the whole cookie of versions before signing.
func legacyShopperID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}
