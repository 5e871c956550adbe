package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"phoenix/testkit"
)

// tlsProxy is Debian's nginx terminating TLS on 127.0.0.1 in front of the
// shop and admin replicas, as an ingress would: it sets X-Real-IP to the
// address it saw and X-Forwarded-Proto to https.
type tlsProxy struct {
	shop, admin string // https://127.0.0.1:port
	cert        *x509.Certificate
}

// findNginx returns Debian's nginx, skipping the test without it (failing
// when CI is "true").
func findNginx(tb testing.TB) string {
	tb.Helper()
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	const hint = "nginx not found: install the Debian package nginx (.ci/ensure-packages nginx)"
	if os.Getenv("CI") == "true" {
		tb.Fatal(hint)
	}
	tb.Skip(hint)
	return ""
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(tb testing.TB, dir string) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "phoenix test proxy"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		// Its own CA, so that a client can trust exactly this certificate.
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	write := func(name, typ string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	write("cert.pem", "CERTIFICATE", der)
	write("key.pem", "EC PRIVATE KEY", keyDER)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// freeLocalPort returns a port on 127.0.0.1 that was free a moment ago.
func freeLocalPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const nginxConf = `worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	ssl_certificate %[1]s/cert.pem;
	ssl_certificate_key %[1]s/key.pem;
	proxy_http_version 1.1;
	proxy_set_header Connection "";
	proxy_set_header Host $http_host;
	# Overwritten, never appended: the client cannot choose its address.
	proxy_set_header X-Real-IP $remote_addr;
	proxy_set_header X-Forwarded-Proto $scheme;
	proxy_buffering off;
	upstream shop { %[2]s }
	upstream admin { %[3]s }
	server { listen 127.0.0.1:%[4]d ssl; location / { proxy_pass http://shop; } }
	server { listen 127.0.0.1:%[5]d ssl; location / { proxy_pass http://admin; } }
}
`

// startTLSProxy runs nginx until the test ends.
func startTLSProxy(t *testing.T, shops, admins []string) *tlsProxy {
	t.Helper()
	bin := findNginx(t)
	dir := t.TempDir()
	cert := selfSigned(t, dir)
	upstream := func(addrs []string) string {
		var b strings.Builder
		for _, a := range addrs {
			b.WriteString("server " + a + "; ")
		}
		return b.String()
	}
	shopPort, adminPort := freeLocalPort(t), freeLocalPort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, upstream(shops), upstream(admins), shopPort, adminPort), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off;")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful: finish requests, then exit
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out.String(), log)
		}
	})
	p := &tlsProxy{shop: fmt.Sprintf("https://127.0.0.1:%d", shopPort), admin: fmt.Sprintf("https://127.0.0.1:%d", adminPort), cert: cert}
	deadline := time.Now().Add(startTimeout)
	for _, port := range []int{shopPort, adminPort} {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case err := <-exited:
				log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				t.Fatalf("nginx exited: %v\n%s%s", err, out.String(), log)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx does not listen on %d: %v", port, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p
}

// client returns an HTTPS client that trusts the proxy's certificate and
// connects from the given loopback address, so that the proxy sees a
// client of its own (Linux routes all of 127.0.0.0/8 to loopback).
func (p *tlsProxy) client(from string) *http.Client {
	roots := x509.NewCertPool()
	roots.AddCert(p.cert)
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
	findNginx(t)
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
	proxy := startTLSProxy(t, shops, admins)

	t.Run("both replicas serve, with HSTS", func(t *testing.T) {
		c := proxy.client("127.0.0.1")
		seen := map[string]bool{}
		for range 6 {
			resp, err := c.Get(proxy.shop + "/")
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
		guesser := proxy.client("127.0.0.2")
		token, err := fetchCSRF(guesser, proxy.admin+"/login")
		if err != nil {
			t.Fatal(err)
		}
		try := func(spoof string) int {
			req, _ := http.NewRequest(http.MethodPost, proxy.admin+"/login",
				strings.NewReader(url.Values{"password": {"not-the-password"}, "csrf": {token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", proxy.admin)
			req.Header.Set("Referer", proxy.admin+"/login")
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
		b.open(ctx, proxy.admin+"/login", true)
		login(b, ctx, adminTestPassword)
		waitVisible(b, ctx, "#stats-totals")
		secureCookies(proxy.admin, "phoenix_admin", "phoenix_csrf")
	})

	id := defaultCatalog(t).Products()[0].ID
	t.Run("like with htmx", func(t *testing.T) {
		b.open(ctx, proxy.shop+"/", true)
		b.do(ctx, "mark page", chromedp.Evaluate[chromedp.Void](`window.phoenixMark = 1`))
		b.do(ctx, "click Like", chromedp.Click(chromedp.CSS(likeSelector(id))))
		waitPressed(b, ctx, id, true)
		if !eval[bool](b, ctx, `window.phoenixMark === 1`) {
			t.Error("Like reloaded the page; want an htmx swap")
		}
		secureCookies(proxy.shop, "phoenix_shopper", "phoenix_csrf")
	})
	t.Run("unlike without JS", func(t *testing.T) {
		b.disableJS(ctx)
		b.open(ctx, proxy.shop+"/", false)
		b.do(ctx, "submit Unlike", chromedp.Click(chromedp.CSS(likeSelector(id))))
		b.do(ctx, "wait for redirect", chromedp.WaitVisible(chromedp.CSS(likeSelector(id)+`[aria-pressed="false"]`)))
		if loc := eval[string](b, ctx, "location.href"); loc != proxy.shop+"/" {
			t.Errorf("landed on %s, want %s/", loc, proxy.shop)
		}
	})
	wantEvents(t, likes, id, "like", "unlike")
}
