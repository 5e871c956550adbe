package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"phoenix/testkit"
)

// proxyClient returns an HTTPS client that trusts the proxy's certificate
// and connects from the given loopback address, so that the proxy sees a
// client of its own (Linux routes all of 127.0.0.0/8 to loopback).
func proxyClient(cert *x509.Certificate, from string) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	jar, _ := cookiejar.New(nil) // never fails without options
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return &http.Client{
		Jar: jar, Timeout: 10 * time.Second,
		Transport:     &http.Transport{DialContext: dialer.DialContext, TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// TestProxy_TLS runs two shops and two admins behind nginx with TLS, as on
// an ingress: the admin logs in with the right password in Chromium, Likes
// work with htmx and without JS, cookies are Secure, pages carry HSTS, and
// failed logins are limited per real client across both admin replicas.
func TestProxy_TLS(t *testing.T) {
	vars, likes := sharedRedis(t)
	vars["PHOENIX_DATABASE_URL"] = testkit.Postgres(t)
	vars["PHOENIX_ADMIN_PASSWORD"] = adminTestPassword
	vars["PHOENIX_TRUSTED_PROXIES"] = "127.0.0.1"
	vars["PHOENIX_PROXY_HEADER"] = "X-Real-IP"
	vars["PHOENIX_SECURE_COOKIES"] = "true"
	var shops, admins []string
	for i := range 2 {
		vars["PHOENIX_INSTANCE"] = fmt.Sprintf("replica-%d", i+1)
		shops = append(shops, startPhoenix(t, "shop", vars).addr("shop"))
		admins = append(admins, startPhoenix(t, "admin", vars).addr("admin"))
	}
	proxy := testkit.Proxy(t, shops, admins)

	t.Run("both replicas serve, with HSTS", func(t *testing.T) {
		c := proxyClient(proxy.Cert(), "127.0.0.1")
		seen := map[string]bool{}
		for range 6 {
			resp, err := c.Get(proxy.ShopURL() + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
				t.Fatalf("GET shop /: status %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
			}
			for _, r := range []string{"replica-1", "replica-2"} {
				seen[r] = seen[r] || strings.Contains(string(body), r)
			}
		}
		if !seen["replica-1"] || !seen["replica-2"] {
			t.Errorf("replicas seen %v, want both", seen)
		}
	})

	t.Run("failed logins limited per client", func(t *testing.T) {
		guesser := proxyClient(proxy.Cert(), "127.0.0.2")
		token, err := fetchCSRF(guesser, proxy.AdminURL()+"/login")
		if err != nil {
			t.Fatal(err)
		}
		try := func(spoof string) int {
			req, _ := http.NewRequest(http.MethodPost, proxy.AdminURL()+"/login",
				strings.NewReader(url.Values{"password": {"not-the-password"}, "csrf": {token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", proxy.AdminURL())
			req.Header.Set("Referer", proxy.AdminURL()+"/login")
			req.Header.Set("X-Real-IP", spoof) // nginx overwrites it
			resp, err := guesser.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// The admins migrate at start; until the table exists logins wait.
		deadline := time.Now().Add(startTimeout)
		first := try("203.0.113.1")
		for first == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			first = try("203.0.113.1")
		}
		codes := []int{first}
		for i := range 5 { // round robin: both admin replicas count
			codes = append(codes, try(fmt.Sprintf("203.0.113.%d", i+2)))
		}
		want := []int{401, 401, 401, 401, 401, 429}
		if fmt.Sprint(codes) != fmt.Sprint(want) {
			t.Errorf("six wrong passwords from one client, each with a made-up X-Real-IP: %v, want %v", codes, want)
		}
	})

	// The browser connects from 127.0.0.1: another client than the guesser.
	b := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))
	ctx := b.timeout()
	secureCookies := func(where string, names ...string) {
		t.Helper()
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{where}})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, c := range res.Cookies {
			got[c.Name] = c.Secure
		}
		for _, n := range names {
			if secure, ok := got[n]; !ok || !secure {
				t.Errorf("cookie %s at %s: present %v, Secure %v; want a Secure cookie", n, where, ok, secure)
			}
		}
	}

	t.Run("admin logs in", func(t *testing.T) {
		b.open(ctx, proxy.AdminURL()+"/login", true)
		login(b, ctx, adminTestPassword)
		waitVisible(b, ctx, "#stats-totals")
		secureCookies(proxy.AdminURL(), "phoenix_admin", "phoenix_csrf")
	})

	id := defaultCatalog(t).Products()[0].ID
	t.Run("like with htmx", func(t *testing.T) {
		b.open(ctx, proxy.ShopURL()+"/", true)
		b.do(ctx, "mark page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))
		b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(id))))
		waitPressed(b, ctx, id, true)
		if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
			t.Error("Like reloaded the page; want an htmx swap")
		}
		secureCookies(proxy.ShopURL(), "phoenix_shopper", "phoenix_csrf")
	})
	t.Run("unlike without JS", func(t *testing.T) {
		b.disableJS(ctx)
		b.open(ctx, proxy.ShopURL()+"/", false)
		b.do(ctx, "submit Unlike", chromedp.Click(chromedp.CSS(likeSelector(id))))
		b.do(ctx, "wait for redirect", chromedp.WaitVisible(chromedp.CSS(likeSelector(id)+`[aria-pressed="false"]`)))
		if loc := eval[string](b, ctx, "location.href"); loc != proxy.ShopURL()+"/" {
			t.Errorf("landed on %s, want %s/", loc, proxy.ShopURL())
		}
	})
	wantEvents(t, likes, id, "like", "unlike")
}
