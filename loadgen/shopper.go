// Package loadgen drives simulated shoppers against a running shop: a
// shopper with its own cookies and CSRF token, an open-loop scheduler and
// latency statistics. phoenix loadgen, the benchmarks and the fault tests
// all drive load through it.
package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// csrfField finds the CSRF token in a page's forms.
var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Shopper is one simulated shopper: its cookie jar holds the id the shop
// signed, Token the CSRF token the last page gave it.
type Shopper struct {
	Base   string // the shop's base URL
	Token  string
	Jar    http.CookieJar
	client *http.Client
}

// NewTransport is a transport sized for conns connections to one shop.
func NewTransport(conns int, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
}

// NewShopper is a shopper of the shop at base that has not visited yet;
// its requests go through t and each times out after timeout.
func NewShopper(base string, t http.RoundTripper, timeout time.Duration) *Shopper {
	jar, _ := cookiejar.New(nil) // New never fails without options
	return &Shopper{Base: base, Jar: jar, client: &http.Client{Transport: t, Jar: jar, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// At is the same shopper (cookies, token, client) at another shop of the
// same host: a cookie jar ignores the port, and replicas share the secret
// that signs the cookie and the token.
func (s *Shopper) At(base string) *Shopper {
	c := *s
	c.Base = base
	return &c
}

// Visit views a page (path, e.g. "/") and keeps the CSRF token it carries.
func (s *Shopper) Visit(ctx context.Context, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Base+path, nil)
	if err != nil {
		return 0, "", err
	}
	status, body, err := s.do(req)
	if t := Token(body); t != "" {
		s.Token = t
	}
	return status, body, err
}

// Arrive visits the catalog as a new shopper would and fails unless the
// shop gave it a cookie and a token.
func (s *Shopper) Arrive(ctx context.Context) error {
	status, _, err := s.Visit(ctx, "/")
	if err != nil {
		return err
	}
	if status != http.StatusOK || s.Token == "" || s.Cookie() == "" {
		return fmt.Errorf("GET /: status %d, token found %v, cookies %q", status, s.Token != "", s.Cookie())
	}
	return nil
}

// Set sends the htmx Like (like true) or Unlike of product and tells
// whether the shop saved it: a 200 with the button in the new state.
func (s *Shopper) Set(ctx context.Context, product string, like bool) (saved bool, status int, err error) {
	status, body, err := s.Post(ctx, "/products/"+product+"/"+action(like), true)
	return err == nil && status == http.StatusOK && strings.Contains(body, `aria-pressed="`+fmt.Sprint(like)+`"`), status, err
}

// Post sends the shopper's form (its CSRF token) to path, as htmx does
// when htmx is true and as a plain HTML form otherwise.
func (s *Shopper) Post(ctx context.Context, path string, htmx bool) (int, string, error) {
	form := url.Values{"csrf": {s.Token}}
	if !htmx {
		form.Set("next", "/")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// As a browser does on every POST; over HTTPS the shop refuses a POST
	// that names no origin of its own.
	req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
	if htmx {
		req.Header.Set("HX-Request", "true")
		req.Header.Set("X-CSRF-Token", s.Token)
	}
	return s.do(req)
}

// Cookie is the shopper's cookies as one Cookie header (for wrk scripts).
func (s *Shopper) Cookie() string {
	u, err := url.Parse(s.Base)
	if err != nil {
		return ""
	}
	var parts []string
	for _, c := range s.Jar.Cookies(u) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// ID is the shopper id the shop signed, without its signature ("" before
// the first visit).
func (s *Shopper) ID() string {
	u, err := url.Parse(s.Base)
	if err != nil {
		return ""
	}
	for _, c := range s.Jar.Cookies(u) {
		if c.Name == "phoenix_shopper" {
			id, _, _ := strings.Cut(c.Value, ".")
			return id
		}
	}
	return ""
}

// CloseIdleConnections closes the shopper's idle connections.
func (s *Shopper) CloseIdleConnections() { s.client.CloseIdleConnections() }

func (s *Shopper) do(req *http.Request) (int, string, error) {
	resp, err := s.client.Do(req) // #nosec G704 -- the shop to load is the operator's own setting
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

func action(like bool) string {
	if like {
		return "like"
	}
	return "unlike"
}

// Token is the CSRF token in a page's forms, or "".
func Token(page string) string {
	if m := csrfField.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}
