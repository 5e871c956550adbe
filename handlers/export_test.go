package handlers

import "time"

// SignedCookie returns the shopper cookie the shop gives to id, so that
// tests can be a known shopper.
func (s *Shoppers) SignedCookie(id string) string { return s.cookie(id) }

// ExpiredToken returns a token for visitor that expired an hour ago.
func ExpiredToken(x *CSRF, visitor string) string {
	old := *x
	old.ttl = -time.Hour
	return old.Token(visitor)
}
