package main

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
	"phoenix/worker"
)

// buildStatic builds phoenix with the Dockerfile's command into a fresh
// folder and returns the binary's path.
func buildStatic(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "phoenix")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// binProc is the phoenix binary running as a separate process, its JSON
// log read line by line for the addresses its servers listen on.
type binProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer

	mu    sync.Mutex
	addrs map[string]string

	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result; read after exited is closed
}

// startBin starts `bin args...` in dir with vars as its whole environment
// (every listen address on a free loopback port, JSON logs) and waits until
// the given roles listen. Cleanup kills it if it still runs.
func startBin(t *testing.T, bin, dir string, vars map[string]string, roles []string, args ...string) *binProc {
	t.Helper()
	all := map[string]string{
		"PHOENIX_SHOP_ADDR":    "127.0.0.1:0",
		"PHOENIX_ADMIN_ADDR":   "127.0.0.1:0",
		"PHOENIX_WORKER_ADDR":  "127.0.0.1:0",
		"PHOENIX_METRICS_ADDR": "127.0.0.1:0",
		"PHOENIX_LOG_FORMAT":   "json",
		"PHOENIX_LOG_LEVEL":    "info",
		"PHOENIX_INSTANCE":     "bin",
	}
	maps.Copy(all, vars)
	p := &binProc{logs: &syncBuffer{}, addrs: map[string]string{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	for k, v := range all {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(p.logs, sc.Text())
			var l struct{ Msg, Role, Addr string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "listening" {
				p.mu.Lock()
				p.addrs[l.Role] = l.Addr
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		<-lines // Wait closes the pipe: read it all first
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("phoenix %s log:\n%s", strings.Join(args, " "), p.logs.String())
		}
	})
	deadline := time.Now().Add(startTimeout)
	for _, role := range roles {
		for p.addr(role) == "" {
			select {
			case <-p.exited:
				t.Fatalf("phoenix %s exited during start: %v", strings.Join(args, " "), p.err)
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("phoenix %s: %s not listening within %v", strings.Join(args, " "), role, startTimeout)
			}
		}
	}
	return p
}

func (p *binProc) addr(role string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addrs[role]
}

func (p *binProc) url(role, path string) string { return "http://" + p.addr(role) + path }

// terminate sends SIGTERM and waits for the process to exit, failing the
// test unless it exits 0 in time.
func (p *binProc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
}

// wait waits for the process to exit and fails the test unless it exits 0.
func (p *binProc) wait(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("phoenix exited with %v, want 0", p.err)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("phoenix did not exit within %v of SIGTERM", stopTimeout)
	}
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v (last: %v)", url, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allVars are the settings of phoenix all on the shared test servers:
// Redis under a prefix of this test, a fresh PostgreSQL database.
func allVars(t *testing.T) (map[string]string, *store.Likes, string) {
	t.Helper()
	vars, likes := sharedRedis(t)
	db := testkit.Postgres(t)
	vars["PHOENIX_DATABASE_URL"] = db
	vars["PHOENIX_ADMIN_PASSWORD"] = "a-long-test-password-for-phoenix"
	vars["PHOENIX_SECRET"] = "a-test-secret-that-is-at-least-32-bytes-long"
	vars["PHOENIX_WORKER_BLOCK"] = "50ms"
	return vars, likes, db
}

// metricValue sums the samples of name whose labels include every
// `key="value"` pair given, in the Prometheus text format; ok is false when
// no sample matches.
func metricValue(body, name string, labels ...string) (sum float64, ok bool) {
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		head, val, _ := strings.Cut(line, "} ")
		if !strings.Contains(line, "{") {
			head, val, _ = strings.Cut(line, " ")
		}
		if !slices.ContainsFunc(labels, func(l string) bool { return !strings.Contains(head, l) }) {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err == nil {
				sum, ok = sum+v, true
			}
		}
	}
	return sum, ok
}

// TestBinary_StaticFromEmptyFolder builds phoenix as the Dockerfile does,
// checks that the binary is static, runs phoenix all from an empty folder
// and checks that every page and asset comes from the binary itself, and
// that one /metrics endpoint shows every role's series after some traffic.
func TestBinary_StaticFromEmptyFolder(t *testing.T) {
	bin := buildStatic(t)

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP || prog.Type == elf.PT_DYNAMIC {
				t.Errorf("binary has a %v program header: it is dynamically linked", prog.Type)
			}
		}
		if f.Section(".dynamic") != nil {
			t.Error("binary has a .dynamic section")
		}
	})

	vars, _, _ := allVars(t)
	dir := t.TempDir()
	p := startBin(t, bin, dir, vars, []string{"shop", "admin", "worker", "metrics"}, "all")
	waitReady(t, p.url("shop", "/readyz"))
	waitReady(t, p.url("admin", "/readyz"))
	waitReady(t, p.url("worker", "/readyz"))
	id := defaultCatalog(t).IDs()[0]

	t.Run("pages and assets", func(t *testing.T) {
		resp, page := get(t, p.url("shop", "/"))
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, `href="/products/`+id+`"`) {
			t.Errorf("GET / = %d without a link to %s", resp.StatusCode, id)
		}
		m := cssLink.FindStringSubmatch(page)
		if m == nil {
			t.Fatal("catalog page links no versioned phoenix.css")
		}
		for _, u := range []string{p.url("shop", m[1]), p.url("shop", "/assets/js/htmx-2.0.11.min.js"), p.url("admin", m[1])} {
			if resp, body := get(t, u); resp.StatusCode != http.StatusOK || len(body) < 100 {
				t.Errorf("GET %s = %d, %d bytes", u, resp.StatusCode, len(body))
			}
		}
		if resp, body := get(t, p.url("shop", "/products/"+id)); resp.StatusCode != http.StatusOK || !strings.Contains(body, `aria-pressed="false"`) {
			t.Errorf("GET /products/%s = %d without a Like button", id, resp.StatusCode)
		}
		if resp, body := get(t, p.url("admin", "/login")); resp.StatusCode != http.StatusOK || !strings.Contains(body, `type="password"`) {
			t.Errorf("GET admin /login = %d without a password field", resp.StatusCode)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("phoenix wrote %d files into its working folder", len(entries))
		}
	})

	t.Run("metrics", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		token, err := fetchCSRF(client, p.url("shop", "/products/"+id))
		if err != nil {
			t.Fatal(err)
		}
		post := func(action string, form url.Values) int {
			resp, err := client.PostForm(p.url("shop", "/products/"+id+"/"+action), form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		for _, step := range []struct {
			action string
			form   url.Values
			want   int
		}{
			{"like", url.Values{"csrf": {token}}, http.StatusSeeOther},     // accepted
			{"like", url.Values{"csrf": {token}}, http.StatusSeeOther},     // unchanged
			{"unlike", url.Values{"csrf": {token}}, http.StatusSeeOther},   // accepted
			{"like", url.Values{"csrf": {token}}, http.StatusSeeOther},     // accepted
			{"like", url.Values{"csrf": {"forged"}}, http.StatusForbidden}, // refused
		} {
			if got := post(step.action, step.form); got != step.want {
				t.Fatalf("POST %s = %d, want %d", step.action, got, step.want)
			}
		}
		// The worker syncs 3 events; wait for it through the metrics.
		var body string
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body = get(t, p.url("metrics", "/metrics"))
			if n, _ := metricValue(body, "phoenix_worker_events_synced_total"); n >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker synced fewer than 3 events:\n%s", body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, c := range []struct {
			name   string
			labels []string
			want   func(float64) bool
			say    string
		}{
			{"phoenix_http_requests_total", []string{`role="shop"`, `route="/products/:id"`, `method="GET"`, `status="200"`}, atLeast(2), ">= 2"},
			{"phoenix_http_requests_total", []string{`role="shop"`, `route="/products/:id/like"`, `status="303"`}, equal(3), "3"},
			{"phoenix_http_requests_total", []string{`role="shop"`, `route="/products/:id/like"`, `status="403"`}, equal(1), "1"},
			{"phoenix_http_requests_total", []string{`role="admin"`, `route="/login"`, `status="200"`}, atLeast(1), ">= 1"},
			{"phoenix_http_requests_total", []string{`role="worker"`, `route="/readyz"`, `status="200"`}, atLeast(1), ">= 1"},
			{"phoenix_http_request_duration_seconds_count", []string{`role="shop"`, `route="/products/:id/unlike"`}, equal(1), "1"},
			{"phoenix_likes_total", []string{`action="like"`, `outcome="accepted"`}, equal(2), "2"},
			{"phoenix_likes_total", []string{`action="like"`, `outcome="unchanged"`}, equal(1), "1"},
			{"phoenix_likes_total", []string{`action="unlike"`, `outcome="accepted"`}, equal(1), "1"},
			{"phoenix_likes_total", []string{`action="like"`, `outcome="refused_csrf"`}, equal(1), "1"},
			{"phoenix_worker_events_synced_total", nil, equal(3), "3"},
			{"phoenix_worker_batch_size_sum", nil, equal(3), "3"},
			{"phoenix_worker_batch_size_count", nil, atLeast(1), ">= 1"},
			{"phoenix_worker_batch_duration_seconds_count", nil, atLeast(1), ">= 1"},
			{"phoenix_worker_backlog_events", nil, atLeast(0), "present"},
			{"phoenix_worker_lag_seconds", nil, atLeast(0), "present"},
			{"phoenix_worker_heartbeat_timestamp_seconds", nil, atLeast(float64(time.Now().Add(-time.Minute).Unix())), "within the last minute"},
			{"phoenix_ready", []string{`role="shop"`}, equal(1), "1"},
			{"phoenix_ready", []string{`role="admin"`}, equal(1), "1"},
			{"phoenix_ready", []string{`role="worker"`}, equal(1), "1"},
			{"go_goroutines", nil, atLeast(1), ">= 1"},
		} {
			got, ok := metricValue(body, c.name, c.labels...)
			if !ok || !c.want(got) {
				t.Errorf("%s%v = %v (found %v), want %s", c.name, c.labels, got, ok, c.say)
			}
		}
	})

	p.terminate(t)
}

func atLeast(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
func equal(n float64) func(float64) bool   { return func(v float64) bool { return v == n } }

// clicker is one simulated shopper of the shutdown test: it clicks Like and
// Unlike and remembers what the shop confirmed.
type clicker struct {
	client *http.Client
	token  string
	liked  map[string]bool
	sent   int
	errs   []string
}

// click toggles one product with an htmx request and checks the answer.
func (s *clicker) click(base, id string) {
	action := "like"
	if s.liked[id] {
		action = "unlike"
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/products/"+id+"/"+action, strings.NewReader(url.Values{"csrf": {s.token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	s.sent++
	resp, err := s.client.Do(req)
	if err != nil {
		s.errs = append(s.errs, fmt.Sprintf("%s %s: %v", action, id, err))
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `aria-pressed="` + strconv.FormatBool(action == "like") + `"`
	switch {
	case err != nil:
		s.errs = append(s.errs, fmt.Sprintf("%s %s: status %d, body cut short: %v", action, id, resp.StatusCode, err))
	case resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want):
		s.errs = append(s.errs, fmt.Sprintf("%s %s: status %d without %s", action, id, resp.StatusCode, want))
	default:
		s.liked[id] = action == "like"
	}
}

// readiness watches /readyz like a load balancer: it reports when the shop
// first answered 503 and when its port first refused connections.
type readiness struct {
	notReady, refused time.Time
	other             []string // anything else that went wrong
}

func watchReadiness(addr string, notReady chan<- struct{}) *readiness {
	r := &readiness{}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(stopTimeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + addr + "/readyz")
		switch {
		case err != nil && errors.Is(err, syscall.ECONNREFUSED):
			r.refused = time.Now()
			if r.notReady.IsZero() {
				close(notReady)
			}
			return r
		case err != nil:
			r.other = append(r.other, err.Error())
		default:
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && r.notReady.IsZero() {
				r.notReady = time.Now()
				close(notReady)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.other = append(r.other, "port still open after "+stopTimeout.String())
	return r
}

// TestBinary_SIGTERMDuringLoad sends SIGTERM to a separate phoenix all
// process while shoppers click. Readiness must fail first (drain delay),
// the shoppers stop as a load balancer would, a request still being sent
// when the listener closes must get its whole answer, the process must exit
// 0, and after a worker restart PostgreSQL must hold exactly the Likes that
// Redis counts, which are the Likes the shop confirmed.
func TestBinary_SIGTERMDuringLoad(t *testing.T) {
	bin := buildStatic(t)
	vars, likes, db := allVars(t)
	vars["PHOENIX_DRAIN_DELAY"] = "500ms"
	vars["PHOENIX_LIKE_RATE_PER_SHOPPER"] = "0"
	p := startBin(t, bin, t.TempDir(), vars, []string{"shop", "worker"}, "all")
	shop := p.addr("shop")
	waitReady(t, p.url("shop", "/readyz"))
	ids := defaultCatalog(t).IDs()[:8]

	// Shoppers, each on its own keep-alive connection.
	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	shoppers := make([]*clicker, 8)
	for i := range shoppers {
		s := &clicker{client: newClient(), liked: map[string]bool{}}
		token, err := fetchCSRF(s.client, "http://"+shop+"/products/"+ids[0])
		if err != nil {
			t.Fatal(err)
		}
		s.token, shoppers[i] = token, s
	}

	// A slow shopper: its Like's headers and half its body go out before
	// SIGTERM, the rest after the listener has closed.
	slow := newClient()
	slowToken, err := fetchCSRF(slow, "http://"+shop+"/products/"+ids[0])
	if err != nil {
		t.Fatal(err)
	}
	shopURL, _ := url.Parse("http://" + shop + "/")
	var cookies []string
	for _, c := range slow.Jar.Cookies(shopURL) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	slowConn, err := net.Dial("tcp", shop)
	if err != nil {
		t.Fatal(err)
	}
	defer slowConn.Close()
	slowBody := url.Values{"csrf": {slowToken}, "next": {"/"}}.Encode()
	fmt.Fprintf(slowConn, "POST /products/%s/like HTTP/1.1\r\nHost: %s\r\nCookie: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		ids[1], shop, strings.Join(cookies, "; "), len(slowBody), slowBody[:len(slowBody)/2])

	notReady := make(chan struct{})
	var wg sync.WaitGroup
	var clicks sync.WaitGroup
	var started sync.WaitGroup
	for i, s := range shoppers {
		started.Add(1)
		clicks.Go(func() {
			for n := 0; ; n++ {
				if n == 20 {
					started.Done()
				}
				select {
				case <-notReady:
					return
				default:
				}
				s.click("http://"+shop, ids[(i+n)%len(ids)])
			}
		})
	}
	started.Wait() // every shopper is mid-stream
	var r *readiness
	wg.Go(func() { r = watchReadiness(shop, notReady) })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	clicks.Wait()
	wg.Wait()

	// The listener is closed; the slow Like is in flight and must finish.
	if _, err := io.WriteString(slowConn, slowBody[len(slowBody)/2:]); err != nil {
		t.Fatalf("slow Like: finishing the body: %v", err)
	}
	_ = slowConn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slowConn), nil)
	if err != nil {
		t.Fatalf("slow Like: no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("slow Like: status %d, want 303", resp.StatusCode)
	}
	p.wait(t)

	for _, o := range r.other {
		t.Errorf("readiness: %s", o)
	}
	if r.notReady.IsZero() || r.refused.IsZero() || !r.notReady.Before(r.refused) {
		t.Errorf("/readyz turned 503 at %v, port refused at %v: want 503 first", r.notReady, r.refused)
	} else {
		t.Logf("/readyz 503 %v before the port closed", r.refused.Sub(r.notReady).Round(time.Millisecond))
	}
	sent := 0
	for i, s := range shoppers {
		sent += s.sent
		for _, e := range s.errs {
			t.Errorf("shopper %d: %s", i, e)
		}
	}
	t.Logf("%d clicks during the run", sent)
	// After the exit, the port refuses cleanly.
	if _, err := net.DialTimeout("tcp", shop, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial after exit: %v, want connection refused", err)
	}

	// The worker acknowledged every entry it read before it stopped.
	ctx := context.Background()
	backlog, err := likes.GroupBacklog(ctx, worker.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	if backlog.Pending != 0 {
		t.Errorf("%d stream entries left pending (read, not acknowledged) at exit", backlog.Pending)
	}

	// What the shop confirmed is what Redis counts.
	want := map[string]int64{ids[1]: 1} // the slow shopper's Like
	for _, s := range shoppers {
		for id, liked := range s.liked {
			if liked {
				want[id]++
			}
		}
	}
	live, err := likes.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if live[id] != want[id] {
			t.Errorf("redis count of %s = %d, shop confirmed %d", id, live[id], want[id])
		}
	}

	// A restarted worker brings PostgreSQL to the same counts.
	w := startBin(t, bin, t.TempDir(), vars, []string{"worker"}, "worker")
	pg := testkit.DB(t, db)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var rows []struct {
			ID    string `db:"product_id"`
			Likes int64  `db:"likes"`
		}
		err := pg.SelectContext(ctx, &rows, `SELECT product_id, likes FROM product_counters`)
		stored := map[string]int64{}
		for _, row := range rows {
			stored[row.ID] = row.Likes
		}
		if err == nil && sameCounts(stored, live) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres %v (err %v), redis %v", stored, err, live)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.terminate(t)
}

// sameCounts compares counts per product, a missing product counting 0
// (PostgreSQL keeps a row for a product whose Likes were all taken back).
func sameCounts(a, b map[string]int64) bool {
	for k, n := range a {
		if b[k] != n {
			return false
		}
	}
	for k, n := range b {
		if a[k] != n {
			return false
		}
	}
	return true
}

// TestPhoenixShop_OwnMetrics: a role run on its own serves its own metrics
// on its own endpoint, and nothing of the other roles.
func TestPhoenixShop_OwnMetrics(t *testing.T) {
	vars, _ := sharedRedis(t)
	p := startPhoenix(t, "shop", vars)
	get(t, p.url("shop", "/"))
	resp, body := get(t, p.url("metrics", "/metrics"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	if n, _ := metricValue(body, "phoenix_http_requests_total", `role="shop"`, `route="/"`, `status="200"`); n != 1 {
		t.Errorf("shop GET / counted %v times, want 1", n)
	}
	for _, absent := range []string{`role="admin"`, `role="worker"`, "phoenix_worker_"} {
		if strings.Contains(body, absent) {
			t.Errorf("a lone shop's metrics show %s", absent)
		}
	}
	if resp, _ := get(t, p.url("shop", "/metrics")); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the public port = %d, want 404", resp.StatusCode)
	}
}
