package handlers

import (
	"strings"
	"testing"
	"time"
)

func TestSignedTokens(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	newTokens := func(secret string) *SignedTokens {
		s, err := newSignedTokens([]byte(secret), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return now }
		return s
	}
	s := newTokens("0123456789abcdef0123456789abcdef-one")
	other := newTokens("0123456789abcdef0123456789abcdef-two")
	tok := s.generate()
	if tok == s.generate() {
		t.Fatal("two tokens are equal")
	}
	valid := func(s *SignedTokens, tok string) bool {
		b, err := s.Get(tok)
		return err == nil && b != nil
	}
	if !valid(s, tok) {
		t.Fatalf("fresh token %q refused", tok)
	}
	if s.stale(tok) {
		t.Error("fresh token is stale")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not random.expiry.mac", tok)
	}
	for name, bad := range map[string]string{
		"other secret":     other.generate(),
		"later expiry":     parts[0] + ".9999999999." + parts[2],
		"other random":     "AAAA." + parts[1] + "." + parts[2],
		"truncated mac":    tok[:len(tok)-1],
		"no mac":           parts[0] + "." + parts[1],
		"empty":            "",
		"uuid":             "00000000-0000-4000-8000-000000000000",
		"long":             strings.Repeat("a", 200) + "." + parts[1] + "." + parts[2],
		"dots only":        "..",
		"expiry not int":   parts[0] + ".x." + s.mac(parts[0]+".x"),
		"mac of other key": parts[0] + "." + parts[1] + "." + other.mac(parts[0]+"."+parts[1]),
	} {
		if valid(s, bad) {
			t.Errorf("%s: token %q accepted", name, bad)
		}
		if !s.stale(bad) {
			t.Errorf("%s: token %q not stale", name, bad)
		}
	}
	now = now.Add(31 * time.Minute)
	if !valid(s, tok) || !s.stale(tok) {
		t.Error("past half its life: want valid and stale")
	}
	now = now.Add(30 * time.Minute)
	if valid(s, tok) {
		t.Error("expired token accepted")
	}
	if _, err := NewSignedTokens([]byte("short")); err == nil {
		t.Error("short secret accepted")
	}
}
