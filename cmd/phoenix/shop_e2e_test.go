package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// get fetches url and returns the response with its body read.
func get(tb testing.TB, url string) (*http.Response, string) {
	tb.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(body)
}

// rawGet sends target byte for byte as the request line, so that no client
// library cleans "..", and returns the response with its body read.
func rawGet(tb testing.TB, addr, target string) (*http.Response, string) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET "+target+" HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(body)
}

var cssLink = regexp.MustCompile(`href="(/assets/css/phoenix\.css\?v=[0-9a-f]+)"`)

func TestPhoenixShop_HTTP(t *testing.T) {
	vars, _ := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)

	t.Run("health", func(t *testing.T) {
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			resp, body := get(t, p.url("shop", path))
			if resp.StatusCode != http.StatusOK || body != want {
				t.Errorf("GET %s = %d %q, want 200 %q", path, resp.StatusCode, body, want)
			}
		}
	})

	t.Run("asset", func(t *testing.T) {
		resp, page := get(t, p.url("shop", "/"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET / = %d", resp.StatusCode)
		}
		m := cssLink.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("catalog page links no versioned phoenix.css")
		}
		resp, body := get(t, p.url("shop", m[1]))
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "{") {
			t.Fatalf("GET %s = %d, %d bytes", m[1], resp.StatusCode, len(body))
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") {
			t.Errorf("Cache-Control = %q, want max-age=31536000", cc)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
			t.Errorf("Content-Type = %q, want text/css", ct)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("Content-Security-Policy = %q, want script-src 'self'", csp)
		}
		if v := resp.Header.Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("X-Content-Type-Options = %q, want nosniff", v)
		}
	})

	t.Run("unknown asset", func(t *testing.T) {
		resp, _ := get(t, p.url("shop", "/assets/js/nope.js"))
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET /assets/js/nope.js = %d, want 404", resp.StatusCode)
		}
	})

	t.Run("path traversal", func(t *testing.T) {
		// Sources that must never be served, and a marker of each.
		for _, target := range []string{
			"/assets/../go.mod",
			"/assets/%2e%2e/embed.go",
			"/assets/%2e%2e/go.mod",
			"/assets/..%2fembed.go",
			"/assets/%2e%2e%2f%2e%2e%2fgo.mod",
			"/assets/css/../../views/layouts/base.html",
			"/assets/..%5cembed.go",
			"/assets//etc/passwd",
		} {
			resp, body := rawGet(t, p.addr("shop"), target)
			for _, leak := range []string{"module phoenix", "package phoenix", "{{", "root:"} {
				if strings.Contains(body, leak) {
					t.Errorf("GET %s = %d and leaks %q", target, resp.StatusCode, leak)
				}
			}
			if resp.StatusCode < 400 {
				t.Errorf("GET %s = %d, want a 4xx", target, resp.StatusCode)
			}
		}
	})
}
