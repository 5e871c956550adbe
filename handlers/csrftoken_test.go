package handlers_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"phoenix/handlers"
)

func newTokens(tb testing.TB, secret string, now time.Time) *handlers.SignedTokens {
	tb.Helper()
	s, err := handlers.NewSignedTokens([]byte(secret), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	s.Now = func() time.Time { return now }
	return s
}

func TestSignedTokens_Get(t *testing.T) {
	now := time.Now()
	tokens := newTokens(t, testSecret, now)
	token := tokens.Generate()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	replica := newTokens(t, testSecret, now.Add(59*time.Minute))
	expired := newTokens(t, testSecret, now.Add(time.Hour))
	otherSecret := newTokens(t, strings.Repeat("x", 32), now)
	tests := []struct {
		name   string
		store  *handlers.SignedTokens
		token  string
		accept bool
	}{
		{"own token", tokens, token, true},
		{"replica with the same secret, later", replica, token, true},
		{"expired", expired, token, false},
		{"another secret", otherSecret, token, false},
		{"expiry changed", tokens, flip(7), false},
		{"nonce changed", tokens, flip(10), false},
		{"MAC changed", tokens, flip(len(raw) - 1), false},
		{"truncated", tokens, token[:len(token)-2], false},
		{"extended", tokens, token + "AA", false},
		{"empty", tokens, "", false},
		{"not base64", tokens, "!!!!", false},
		{"padded base64", tokens, token + "=", false},
		{"UUID (Fiber's default tokens)", tokens, "00000000-0000-4000-8000-000000000000", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.store.Get(tt.token)
			if err != nil {
				t.Fatalf("Get returned error %v; CSRF would accept any token on a read error", err)
			}
			if got := v != nil; got != tt.accept {
				t.Errorf("accepted %v, want %v", got, tt.accept)
			}
		})
	}
	if tokens.Generate() == token {
		t.Error("two tokens are equal; want a random nonce in each")
	}
	// Set and Delete keep nothing: the token stays valid by its signature.
	if err := tokens.Delete(token); err != nil {
		t.Fatal(err)
	}
	if v, _ := tokens.Get(token); v == nil {
		t.Error("Delete revoked a signed token, which it cannot")
	}
}

func TestNewSignedTokens_Refuses(t *testing.T) {
	if _, err := handlers.NewSignedTokens([]byte("short"), time.Hour); err == nil {
		t.Error("a short secret was accepted")
	}
	if _, err := handlers.NewSignedTokens([]byte(testSecret), 0); err == nil {
		t.Error("a zero lifetime was accepted")
	}
}

// TestCSRF_SignedTokens runs Fiber's CSRF middleware with SignedTokens:
// a token minted by one replica passes at another with the same secret,
// and a forged, foreign or missing one is refused with 403 before the
// handler runs.
func TestCSRF_SignedTokens(t *testing.T) {
	newApp := func(secret string, ran *int) *fiber.App {
		tokens, err := handlers.NewSignedTokens([]byte(secret), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		app := fiber.New()
		app.Use(handlers.CSRF(handlers.CSRFConfig{Storage: tokens, KeyGenerator: tokens.Generate}))
		app.Get("/", func(c *fiber.Ctx) error { return c.SendString("form") })
		app.Post("/", func(c *fiber.Ctx) error { *ran++; return c.SendString("done") })
		return app
	}
	var ranA, ranB, ranC int
	a, b, c := newApp(testSecret, &ranA), newApp(testSecret, &ranB), newApp(strings.Repeat("y", 40), &ranC)
	resp, err := a.Test(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	var token string
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_csrf" {
			token = c.Value
		}
	}
	if token == "" {
		t.Fatal("GET set no phoenix_csrf cookie")
	}
	post := func(app *fiber.App, cookie, field string) int {
		req := httptest.NewRequest("POST", "/", strings.NewReader(url.Values{"csrf": {field}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "phoenix_csrf", Value: cookie})
		}
		resp, err := app.Test(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// The same layout as a real token, with a MAC that does not match.
	forged := base64.RawURLEncoding.EncodeToString(make([]byte, len(token)*3/4))
	other := token[:len(token)-1] + "B"
	if other == token {
		other = token[:len(token)-1] + "C"
	}
	tests := []struct {
		name          string
		app           *fiber.App
		cookie, field string
		want          int
	}{
		{"same replica", a, token, token, 200},
		{"another replica", b, token, token, 200},
		{"replica with another secret", c, token, token, 403},
		{"forged token in cookie and form", a, forged, forged, 403},
		{"no token", a, token, "", 403},
		{"no cookie", a, "", token, 403},
		{"token differs from cookie", a, token, other, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(tt.app, tt.cookie, tt.field); got != tt.want {
				t.Errorf("status %d, want %d", got, tt.want)
			}
		})
	}
	if ranA != 1 || ranB != 1 || ranC != 0 {
		t.Errorf("handler ran %d, %d, %d times; want 1, 1, 0", ranA, ranB, ranC)
	}
}
