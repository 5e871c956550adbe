package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"phoenix/loadgen"
)

var likeButton = regexp.MustCompile(`aria-pressed="(true|false)"[^>]*>\s*<span class="like-icon"[^<]*</span>\s*<span class="like-label">[^<]*</span>\s*<span class="like-count" title="likes">(\d+)</span>`)

// productLike reads the Like button of a product page: pressed, count and
// the CSRF token of its form.
func productLike(t *testing.T, client *http.Client, pageURL string) (bool, int, string) {
	t.Helper()
	resp, err := client.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	m := likeButton.FindStringSubmatch(b.String())
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("GET %s = %d without a readable Like button", pageURL, resp.StatusCode)
	}
	n, _ := strconv.Atoi(m[2])
	return m[1] == "true", n, loadgen.Token(b.String())
}

// processesIn lists the live processes whose working folder or command line
// lies in dir.
func processesIn(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if c := e.Name()[0]; c < '0' || c > '9' {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.HasPrefix(cwd, dir) || strings.Contains(string(cmdline), dir) {
			found = append(found, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}

// TestPhoenixDev runs phoenix dev twice on one data folder: a Like made in
// the first run is there in the second, and no server outlives a run.
func TestPhoenixDev(t *testing.T) {
	// Not t.TempDir: the postgres user must be able to enter the folder.
	dir, err := os.MkdirTemp("", "phoenix-dev-test-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	vars := map[string]string{"PHOENIX_DATA_DIR": filepath.Join(dir, "data")}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	id := defaultCatalog(t).Products()[0].ID

	for run := 1; run <= 2; run++ {
		p := startPhoenix(t, "dev", vars)
		page := p.url("shop", "/products/"+id)
		pressed, n, token := productLike(t, client, page)
		if run == 1 {
			if pressed || n != 0 {
				t.Fatalf("run 1: fresh data folder shows pressed=%v count=%d", pressed, n)
			}
			resp, err := client.PostForm(p.url("shop", "/products/"+id+"/like"), url.Values{"next": {"/products/" + id}, "csrf": {token}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			pressed, n, _ = productLike(t, client, page)
		}
		if !pressed || n != 1 {
			t.Errorf("run %d: Like shows pressed=%v count=%d, want pressed with 1", run, pressed, n)
		}
		if len(processesIn(dir)) < 2 {
			t.Fatalf("run %d: found %v in the data folder, want redis-server and postgres", run, processesIn(dir))
		}
		p.stop(t)

		deadline := time.Now().Add(5 * time.Second)
		for left := processesIn(dir); len(left) > 0; left = processesIn(dir) {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: processes outlived phoenix dev: %v", run, left)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestLoopbackDefaults: phoenix dev listens on loopback unless an address
// is set by flag or environment.
func TestLoopbackDefaults(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want [2]string // shop, metrics
	}{
		{"defaults", nil, nil, [2]string{"127.0.0.1:8080", "127.0.0.1:9090"}},
		{"environment", map[string]string{"PHOENIX_SHOP_ADDR": ":8080"}, nil, [2]string{":8080", "127.0.0.1:9090"}},
		{"flag", nil, []string{"-metrics-addr", "0.0.0.0:9191"}, [2]string{"127.0.0.1:8080", "0.0.0.0:9191"}},
		{"metrics off", map[string]string{"PHOENIX_METRICS_ADDR": "off"}, nil, [2]string{"127.0.0.1:8080", "off"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFlags("dev", &env{getenv: func(k string) string { return tt.env[k] }, stderr: io.Discard})
			var cfg allConfig
			cfg.register(f, "text")
			if err := f.parse(tt.args); err != nil {
				t.Fatal(err)
			}
			loopbackDefaults(f, map[string]*string{"shop-addr": &cfg.shop.addr, "metrics-addr": &cfg.ops.metricsAddr})
			if got := [2]string{cfg.shop.addr, cfg.ops.metricsAddr}; got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
