package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

// liveShop is a shop served on a real 127.0.0.1 listener, so raw requests
// reach it exactly as sent.
type liveShop struct {
	addr    string
	cookie  string // testShopper's signed cookie
	token   string // testShopper's CSRF token
	logs    *testkit.LogBuffer
	catalog *store.Catalog
	likes   *store.Likes
}

func startShop(tb testing.TB, opts ...func(*shopSetup)) *liveShop {
	tb.Helper()
	rdb, prefix := testkit.Redis(tb)
	log, logs := testkit.Logger()
	live := func(s *shopSetup) {
		s.app.Log, s.shop.Log = log, log
		s.limit = store.LikesOptions{PerShopper: store.PerSecond(10), PerIP: store.PerSecond(100), NewShoppersPerIP: store.Rate{Interval: time.Minute, Burst: 1000}} // its key outlives the test
	}
	f := newShopOn(tb, rdb, prefix, append([]func(*shopSetup){live}, opts...)...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- f.app.Listener(ln) }()
	tb.Cleanup(func() {
		if err := f.app.ShutdownWithTimeout(5 * time.Second); err != nil {
			tb.Error(err)
		}
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return &liveShop{addr: ln.Addr().String(), cookie: f.cookie, token: f.token, logs: logs, catalog: f.catalog, likes: f.likes}
}

// raw sends one raw request on a fresh connection and reads the answer.
func (s *liveShop) raw(tb testing.TB, req string) (*http.Response, string) {
	tb.Helper()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// redisState is what a hostile request must not change.
type redisState struct {
	dbsize, stream int64
	counts         map[string]string
	liked          []string
}

func (s *liveShop) state(tb testing.TB, shopper string) redisState {
	tb.Helper()
	ctx := context.Background()
	rdb := s.likes.Client()
	var st redisState
	var err error
	if st.dbsize, err = rdb.DBSize(ctx).Result(); err != nil {
		tb.Fatal(err)
	}
	if st.stream, err = rdb.XLen(ctx, s.likes.StreamKey()).Result(); err != nil {
		tb.Fatal(err)
	}
	if st.counts, err = rdb.HGetAll(ctx, s.likes.CountsKey()).Result(); err != nil {
		tb.Fatal(err)
	}
	_, liked, err := s.likes.View(ctx, shopper, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for id := range liked {
		st.liked = append(st.liked, id)
	}
	return st
}

func (a redisState) equal(b redisState) bool {
	if a.dbsize != b.dbsize || a.stream != b.stream || len(a.counts) != len(b.counts) || len(a.liked) != len(b.liked) {
		return false
	}
	for k, v := range a.counts {
		if b.counts[k] != v {
			return false
		}
	}
	return true
}

// visit views the catalog as a new shopper and returns the shopper cookie
// and the page's CSRF token.
func (s *liveShop) visit(tb testing.TB) (cookie, token string) {
	tb.Helper()
	resp, body := s.raw(tb, "GET / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n")
	for _, c := range resp.Cookies() {
		if c.Name == "phoenix_shopper" {
			cookie = c.Value
		}
	}
	m := csrfField.FindStringSubmatch(body)
	if cookie == "" || m == nil {
		tb.Fatalf("GET /: no shopper cookie or no token: %v", resp.Header.Values("Set-Cookie"))
	}
	return cookie, m[1]
}

// flip changes the character at i of s to another one of the same kind.
func flip(s string, i int) string {
	c := byte('a')
	if s[i] == 'a' {
		c = 'b'
	}
	return s[:i] + string(c) + s[i+1:]
}

// TestShop_BadRequests sends hostile and malformed requests to a running
// shop: each gets its intended 4xx, nothing in Redis changes, and nothing
// fails at Error level or panics.
func TestShop_BadRequests(t *testing.T) {
	s := startShop(t)
	// A shopper who has visited: cookies and token as a browser holds them,
	// and one product already liked.
	shopper, token := s.visit(t)
	_, otherToken := s.visit(t) // another shopper's
	id, _, _ := strings.Cut(shopper, ".")
	liked := s.catalog.Products()[0].ID
	if _, err := s.likes.Like(context.Background(), id, liked); err != nil {
		t.Fatal(err)
	}
	cookies := "phoenix_shopper=" + shopper
	withShopper := func(cookie string) string {
		return "Cookie: phoenix_shopper=" + cookie + "\r\nX-CSRF-Token: " + token + "\r\n"
	}
	post, get := rawRequests("shop").post, rawRequests("shop").get
	withCookies := "Cookie: " + cookies + "\r\n"
	withToken := withCookies + "X-CSRF-Token: " + token + "\r\n"
	like := "/products/" + liked + "/like"
	huge := strings.Repeat("a", 20<<10)

	tests := []struct {
		name, req string
		want      int
	}{
		// Wrong methods.
		{"GET on like", get(like, withCookies), 405},
		{"PUT on like", strings.Replace(post(like, withToken, ""), "POST", "PUT", 1), 405},
		{"DELETE on catalog", "DELETE / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n", 405},
		{"PATCH on product", "PATCH /products/" + liked + " HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 405},
		{"POST on my likes", post("/likes", withToken, ""), 405},
		{"made-up method", "BREW / HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n", 400},
		// CSRF.
		{"no token", post(like, withCookies, "next=/"), 403},
		{"no token, htmx", post(like, withCookies+"HX-Request: true\r\n", ""), 403},
		{"wrong token", post(like, withCookies, "csrf=00000000-0000-4000-8000-000000000000"), 403},
		{"another shopper's token", post(like, withCookies+"X-CSRF-Token: "+otherToken+"\r\n", ""), 403},
		{"forged token", post(like, withCookies+"X-CSRF-Token: 99999999999."+strings.Repeat("A", 43)+"\r\n", ""), 403},
		{"token in query string", post(like+"?csrf="+token, withCookies, ""), 403},
		{"cross-site origin", post(like, withToken+"Origin: http://evil.example\r\n", ""), 403},
		{"null origin", post(like, withToken+"Origin: null\r\n", ""), 403},
		{"unlike without token", post("/products/"+liked+"/unlike", withCookies, ""), 403},
		// Cookies.
		{"no shopper cookie", post(like, "X-CSRF-Token: "+token+"\r\n", ""), 400},
		{"unsigned shopper id", post(like, withShopper(id), ""), 400},
		{"altered shopper id", post(like, withShopper(flip(id, 0)+shopper[32:]), ""), 400},
		{"altered signature", post(like, withShopper(flip(shopper, len(shopper)-1)), ""), 400},
		{"invented shopper", post(like, withShopper(strings.Repeat("a", 32)+"."+strings.Repeat("A", 22)), ""), 400},
		{"upper-case shopper cookie", post(like, withShopper(strings.ToUpper(shopper)), ""), 400},
		{"long shopper cookie", post(like, withShopper(shopper+"00"), ""), 400},
		{"shopper cookie with a key separator", post(like, withShopper(id[:30]+"::"+shopper[32:]), ""), 400},
		{"oversized cookie", get("/", "Cookie: phoenix_shopper="+huge+"\r\n"), 431},
		// Unknown ids and paths.
		{"unknown product", get("/products/no-such-part", withCookies), 404},
		{"upper-case id", get("/products/BRAKE-PADS", withCookies), 404},
		{"long id", get("/products/"+strings.Repeat("a", 65), withCookies), 404},
		{"like unknown product", post("/products/no-such-part/like", withToken, ""), 404},
		{"like id with slash", post("/products/a%2Fb/like", withToken, ""), 404},
		{"like invalid UTF-8 id", post("/products/%ff%fe/like", withToken, ""), 404},
		{"unknown page", get("/admin/../../etc/passwd", ""), 404},
		// Path traversal on assets.
		{"asset dot-dot", get("/assets/../go.mod", ""), 404},
		{"asset encoded dot-dot", get("/assets/%2e%2e/%2e%2e/go.mod", ""), 404},
		{"asset encoded slash", get("/assets/..%2f..%2fembed.go", ""), 404},
		{"asset backslash", get("/assets/..\\..\\embed.go", ""), 404},
		{"asset NUL", get("/assets/css/phoenix.css%00.png", ""), 404},
		{"asset missing", get("/assets/nope.js", ""), 404},
		// Query strings.
		{"unknown category", get("/?category=Nope", withCookies), 400},
		{"long search", get("/?q="+strings.Repeat("a", 101), withCookies), 400},
		{"huge query string", get("/?q="+huge, withCookies), 431},
		{"invalid UTF-8 search", get("/?q=%ff%fe", withCookies), 400},
		{"control characters in search", get("/?q=a%00b", withCookies), 400},
		{"invalid UTF-8 category", get("/?category=%c3%28", withCookies), 400},
		{"control character in any parameter", get("/products/"+liked+"?utm=a%0d%0ab", withCookies), 400},
		{"control character in a parameter name", get("/likes?a%7fb=1", withCookies), 400},
		{"control character in a Like's query", post(like+"?x=%1b", withToken, ""), 400},
		// Bodies.
		{"oversized body", post(like, withCookies, "csrf="+token+"&next="+huge), 413},
		{"declared huge body", "POST " + like + " HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n" + withToken + "Content-Length: 100000000\r\n\r\n", 413},
		{"junk body without token", post(like, withCookies, "\x00\xff\xfe%%%&&==csrf"), 403},
		{"broken multipart", "POST " + like + " HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n" + withCookies + "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 9\r\n\r\n--xyz\r\nzz", 400},
		{"negative content length", "POST " + like + " HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n" + withToken + "Content-Length: -5\r\n\r\n", 400},
		{"bad chunked body", "POST " + like + " HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n" + withCookies + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
		// Malformed requests.
		{"garbage request line", "GARBAGE\r\n\r\n", 400},
		{"header without colon", "GET / HTTP/1.1\r\nHost: shop\r\nNoColonHere\r\nConnection: close\r\n\r\n", 400},
	}
	before := s.state(t, id)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.raw(t, tt.req)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d: %.200s", resp.StatusCode, tt.want, body)
			}
			if resp.StatusCode >= 500 {
				t.Errorf("server error %d", resp.StatusCode)
			}
			if after := s.state(t, id); !after.equal(before) {
				t.Errorf("redis changed: %+v -> %+v", before, after)
			}
		})
	}
	t.Run("CRLF in next", func(t *testing.T) {
		// A repeated Like changes nothing; the redirect must not carry the
		// injected header and must stay on the site.
		resp, _ := s.raw(t, post(like, withCookies, "csrf="+token+"&next="+url.QueryEscape("/\r\nSet-Cookie: pwned=1")))
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/products/"+liked {
			t.Errorf("got %d to %q, want 303 to the product", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, c := range resp.Header.Values("Set-Cookie") {
			if strings.Contains(c, "pwned") {
				t.Errorf("injected cookie %q", c)
			}
		}
		// The rate limiter charged the shopper, as for any accepted Like;
		// the Likes themselves did not change.
		after := s.state(t, id)
		after.dbsize = before.dbsize
		if !after.equal(before) {
			t.Errorf("likes changed: %+v -> %+v", before, after)
		}
	})
	if len(tests) < 40 {
		t.Errorf("only %d hostile requests", len(tests))
	}
	logs := s.logs.String()
	if strings.Contains(logs, "level=ERROR") || strings.Contains(strings.ToLower(logs), "panic") {
		t.Errorf("server logged errors:\n%s", logs)
	}
}

// TestShop_SlowClient checks that a client sending its headers a byte at a
// time is cut off once the read timeout has passed, instead of holding the
// connection for as long as it likes.
func TestShop_SlowClient(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	s := startShop(t, func(s *shopSetup) { s.app.ReadTimeout = readTimeout })
	// The server's clock starts when it accepts, so ours starts before the dial.
	start := time.Now()
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET / HTTP/1.1\r\nHost: shop\r\nX-Slow: " + strings.Repeat("a", 1000) + "\r\n\r\n"
	deadline := start.Add(20 * readTimeout)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("still connected after %v of trickling (read timeout %v)", time.Since(start), readTimeout)
		}
		if i >= len(req) {
			t.Fatal("the whole request went through without being cut off")
		}
		if _, err := conn.Write([]byte{req[i]}); err != nil {
			break // the server closed the connection
		}
		// Has the server answered (408) or closed while we trickle?
		if err := conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		var b [512]byte
		n, err := conn.Read(b[:])
		if n > 0 || (err != nil && !isTimeout(err)) {
			if n > 0 && !strings.Contains(string(b[:n]), "408") {
				t.Fatalf("unexpected answer %q", b[:n])
			}
			break
		}
	}
	if elapsed := time.Since(start); elapsed < readTimeout {
		t.Errorf("cut off after %v, before the read timeout %v", elapsed, readTimeout)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// rawRequests writes HTTP/1.1 requests to a host by hand, for the inputs
// a client library would refuse to send.
type rawRequests string

func (host rawRequests) post(path, headers, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\n%sContent-Length: %d\r\n\r\n%s",
		path, host, headers, len(body), body)
}

func (host rawRequests) get(path, headers string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + string(host) + "\r\nConnection: close\r\n" + headers + "\r\n"
}
