package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"phoenix/loadgen"
	"phoenix/store"
	"phoenix/supervise"
	"phoenix/testkit"
	"phoenix/worker"
)

// The fault tests run the whole mall on private servers under Like traffic
// from many simulated shoppers, break one part, and then prove that nothing
// was lost: every "saved" answer is an event in PostgreSQL, every "could
// not save" is none, and phoenix audit's comparison is exact.

const (
	faultShoppers = 40
	faultRate     = 300 // Like requests a second, all shoppers together
	faultProducts = 8   // few products, so shoppers toggle the same pairs often
	faultPassword = "a-long-test-password-for-phoenix"
	// recoverTimeout bounds how long the mall may take to catch up after a
	// fault (drain the backlog, answer again).
	recoverTimeout = 60 * time.Second
)

// faultRig is the mall on private servers: Redis (append-only file on) and
// PostgreSQL that the test stops and starts, the shop and the admin in this
// process, and the worker as a child process that the test can SIGKILL.
type faultRig struct {
	redis  *supervise.Redis
	pg     *supervise.Postgres
	shop   *phoenixProc
	admin  *phoenixProc
	bin    string
	vars   map[string]string
	worker *testkit.Process
	likes  *store.Likes
	stats  *store.Stats
	db     *sqlx.DB // the same database, for the tests' checks
	ids    []string
	cookie string // the admin session
}

// newFaultRig starts the rig; extra settings override the defaults.
func newFaultRig(t *testing.T, extra map[string]string) *faultRig {
	t.Helper()
	ctx := context.Background()
	r := &faultRig{redis: testkit.RedisServer(t), pg: testkit.PostgresServer(t), bin: testkit.Phoenix(t)}
	if err := r.pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	r.vars = map[string]string{
		"PHOENIX_REDIS_URL":             r.redis.URL(),
		"PHOENIX_DATABASE_URL":          r.pg.URL("phoenix"),
		"PHOENIX_WORKER_ADDR":           "127.0.0.1:0",
		"PHOENIX_WORKER_BATCH":          "100",
		"PHOENIX_WORKER_BLOCK":          "100ms",
		"PHOENIX_WORKER_CLAIM_IDLE":     "1s",
		"PHOENIX_LIKE_RATE_PER_SHOPPER": "0", // the load is many Likes a second per shopper
		"PHOENIX_SHOPPER_RATE_PER_IP":   "0", // every simulated shopper comes from 127.0.0.1
		"PHOENIX_ADMIN_PASSWORD":        faultPassword,
		"PHOENIX_SECRET":                strings.Repeat("s", 40),
		"PHOENIX_LOG_LEVEL":             "warn",
	}
	maps.Copy(r.vars, extra)
	r.startWorker(t)
	r.shop = startPhoenix(t, "shop", r.vars)
	r.admin = startPhoenix(t, "admin", r.vars)
	r.cookie = adminLogin(t, r.admin)

	rdb := redis.NewClient(&redis.Options{Addr: r.redis.Addr()})
	t.Cleanup(func() { rdb.Close() })
	r.likes = store.NewLikes(rdb, "phoenix:")
	stats, err := store.OpenStats(ctx, r.pg.URL("phoenix"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stats.Close() })
	r.stats, r.db = stats, testkit.DB(t, r.pg.URL("phoenix"))
	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	r.ids = cat.IDs()[:faultProducts]
	return r
}

// startWorker starts a worker process; each gets its own consumer name
// (host and pid), so a restarted worker claims what a killed one left.
func (r *faultRig) startWorker(t *testing.T) {
	t.Helper()
	env := make([]string, 0, len(r.vars)+1)
	for k, v := range r.vars {
		env = append(env, k+"="+v)
	}
	// Parallel test binaries must not share the default metrics port.
	env = append(env, "PHOENIX_LOG_FORMAT=text", "PHOENIX_METRICS_ADDR=127.0.0.1:0")
	r.worker = testkit.Start(t, r.bin, env, "worker")
}

// load runs simulated shoppers for d in the background; the result arrives
// on the channel when every request has been answered.
func (r *faultRig) load(t *testing.T, d time.Duration) <-chan loadgen.Summary {
	t.Helper()
	l := loadgen.Start(context.Background(), loadgen.Config{
		URL: "http://" + r.shop.addr("shop"), Products: r.ids, Shoppers: faultShoppers, Rate: faultRate,
		Duration: d, Browse: 0.02, Timeout: 20 * time.Second,
	})
	out := make(chan loadgen.Summary, 1)
	go func() { out <- l.Wait() }()
	return out
}

// stored is how many events PostgreSQL holds (0 while it is down).
func (r *faultRig) stored() int64 { return storedEvents(r.db) }

// waitStored waits until PostgreSQL holds more than n events.
func (r *faultRig) waitStored(t *testing.T, n int64) int64 {
	t.Helper()
	return waitStored(t, r.db, n)
}

// storedEvents is how many events db holds (0 while it is down).
func storedEvents(db *sqlx.DB) int64 {
	var n int64
	_ = db.Get(&n, `SELECT count(*) FROM like_events`)
	return n
}

// waitStored waits until stats holds more than n events.
func waitStored(t *testing.T, db *sqlx.DB, n int64) int64 {
	t.Helper()
	deadline := time.Now().Add(recoverTimeout)
	for {
		if got := storedEvents(db); got > n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("PostgreSQL still holds %d events after %v", n, recoverTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recovered checks that the mall works again without any restart: a short
// clean load is answered in full, the admin is ready, and the audit (as
// phoenix audit -wait runs it) is exact. It returns the clean load's summary.
func (r *faultRig) recovered(t *testing.T) loadgen.Summary {
	t.Helper()
	clean := <-r.load(t, 2*time.Second)
	if len(clean.Errors) > 0 || clean.Uncertain > 0 || clean.ConfirmedLikes == 0 {
		t.Errorf("after recovery: errors %v, %d uncertain, %d likes saved; want every Like saved", clean.Errors, clean.Uncertain, clean.ConfirmedLikes)
	}
	r.assertAudit(t)
	if msg := readyz(&http.Client{Timeout: 2 * time.Second}, r.admin.addr("admin")); msg != "" {
		t.Errorf("admin /readyz after recovery: %s", msg)
	}
	r.assertAdminCaughtUp(t)
	return clean
}

var totalLikes = regexp.MustCompile(`id="total-likes">.*?class="stat-value">([^<]*)<`)

// assertAdminCaughtUp polls the admin's totals until they show the live
// total of Likes in Redis, fresh (no stale notice).
func (r *faultRig) assertAdminCaughtUp(t *testing.T) {
	t.Helper()
	counts, err := r.likes.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, n := range counts {
		want += n
	}
	deadline := time.Now().Add(recoverTimeout)
	for {
		status, body := adminGet(t, r.admin, "/admin/stats/totals", r.cookie)
		got := ""
		if m := totalLikes.FindStringSubmatch(body); m != nil {
			got = strings.Map(func(c rune) rune {
				if c >= '0' && c <= '9' {
					return c
				}
				return -1
			}, m[1])
		}
		if status == http.StatusOK && !strings.Contains(body, "stale") && got == strconv.FormatInt(want, 10) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin totals: status %d, likes %q, want %d and no stale notice:\n%s", status, got, want, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertAudit runs phoenix audit -wait and fails unless it is exact.
func (r *faultRig) assertAudit(t *testing.T) {
	t.Helper()
	var out syncBuffer
	e := &env{getenv: func(k string) string { return r.vars[k] }, stdout: &out, stderr: &out}
	if err := runEnv(context.Background(), e, []string{"audit", "-wait", recoverTimeout.String()}); err != nil {
		t.Errorf("phoenix audit: %v\n%s", err, out.String())
		return
	}
	t.Logf("phoenix audit:\n%s", out.String())
}

// assertHonest checks every answer the shoppers got. For each shopper and
// product whose answers were all certain, PostgreSQL holds exactly one like
// event per "saved" Like and one unlike event per "saved" Unlike (so a
// "could not save" left nothing behind), and Redis's like set agrees with
// the last confirmed state. Pairs with an uncertain answer (a connection
// dropped mid-request) are left out and counted.
func (r *faultRig) assertHonest(t *testing.T, runs ...loadgen.Summary) {
	t.Helper()
	ctx := context.Background()
	type pair struct{ shopper, product string }
	var rows []struct {
		Shopper string `db:"shopper_id"`
		Product string `db:"product_id"`
		Likes   int64  `db:"likes"`
		Unlikes int64  `db:"unlikes"`
	}
	err := r.db.SelectContext(ctx, &rows, `
SELECT shopper_id, product_id, count(*) FILTER (WHERE action = 'like') AS likes, count(*) FILTER (WHERE action = 'unlike') AS unlikes
FROM like_events GROUP BY shopper_id, product_id`)
	if err != nil {
		t.Fatal(err)
	}
	inPG := map[pair]loadgen.Answers{}
	for _, row := range rows {
		inPG[pair{row.Shopper, row.Product}] = loadgen.Answers{Likes: row.Likes, Unlikes: row.Unlikes}
	}
	var saved, refused, uncertain, checked int64
	for _, sum := range runs {
		for _, s := range sum.Shoppers {
			id := s.ID()
			if id == "" {
				if len(s.Answers) > 0 {
					t.Errorf("a shopper with %d answered products has no shopper cookie", len(s.Answers))
				}
				continue
			}
			member, err := r.likes.Client().SMembers(ctx, "phoenix:shopper:"+id+":likes").Result()
			if err != nil {
				t.Fatal(err)
			}
			inRedis := map[string]bool{}
			for _, p := range member {
				inRedis[p] = true
			}
			for p, a := range s.Answers {
				if s.Unsure[p] {
					uncertain++
					continue
				}
				checked++
				saved += a.Likes + a.Unlikes
				refused += a.Refused
				got := inPG[pair{id, p}]
				if got.Likes != a.Likes || got.Unlikes != a.Unlikes {
					t.Errorf("shopper %s, product %s: shop saved %d likes and %d unlikes (refused %d), PostgreSQL holds %d and %d",
						id, p, a.Likes, a.Unlikes, a.Refused, got.Likes, got.Unlikes)
				}
				if inRedis[p] != s.Liked[p] {
					t.Errorf("shopper %s, product %s: last confirmed liked=%v, Redis says %v", id, p, s.Liked[p], inRedis[p])
				}
			}
		}
	}
	if checked == 0 || saved == 0 {
		t.Fatalf("checked %d pairs with %d saved answers: the load did nothing", checked, saved)
	}
	t.Logf("honesty: %d pairs checked (%d saved and %d refused answers); %d pairs uncertain (left out)",
		checked, saved, refused, uncertain)
}

// holdDown keeps a server down for at least min and until the backlog has
// grown by want events (proof that the shop kept taking Likes), or fails.
func (r *faultRig) holdDown(t *testing.T, min time.Duration, cond func() bool) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(recoverTimeout)
	for time.Since(start) < min || !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v of the outage", recoverTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func backlog(t *testing.T, likes *store.Likes) int64 {
	t.Helper()
	b, err := likes.GroupBacklog(context.Background(), worker.DefaultGroup)
	if err != nil {
		return -1
	}
	return b.Total()
}

// TestFault_WorkerKilled kills the worker process with SIGKILL three times
// under load, starting a new one each time: the shop is unaffected, and the
// new workers claim what the dead ones left, so PostgreSQL ends up exact.
func TestFault_WorkerKilled(t *testing.T) {
	r := newFaultRig(t, nil)
	run := r.load(t, 10*time.Second)
	seen := int64(0)
	for i := range 3 {
		seen = r.waitStored(t, seen+200) // the current worker is well at work
		r.worker.Kill9(t)
		t.Logf("kill %d: worker killed with %d events stored", i+1, seen)
		r.startWorker(t)
	}
	sum := <-run
	unaffected(t, sum, "the worker's death")
	t.Logf("load: %d requests, %d likes and %d unlikes saved", sum.Requests, sum.ConfirmedLikes, sum.ConfirmedUnlikes)
	clean := r.recovered(t)
	r.assertHonest(t, sum, clean)
}

// unaffected fails t when the load met an error or an answer it could not
// be sure of: a fault of the worker's side must not reach the shop.
func unaffected(t *testing.T, sum loadgen.Summary, fault string) {
	t.Helper()
	if len(sum.Errors) > 0 || sum.Uncertain > 0 {
		t.Errorf("the shop was affected by %s: errors %v, %d uncertain", fault, sum.Errors, sum.Uncertain)
	}
}

// TestFault_PostgresRestart stops PostgreSQL for several seconds under
// load: the shop keeps saving Likes, events wait in Redis, the admin shows
// its last numbers as stale, and everything catches up after the restart.
func TestFault_PostgresRestart(t *testing.T) {
	r := newFaultRig(t, nil)
	run := r.load(t, 10*time.Second)
	r.waitStored(t, 0)
	if err := r.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	down := backlog(t, r.likes)
	r.holdDown(t, 4*time.Second, func() bool { return backlog(t, r.likes) >= down+200 })
	status, body := adminGet(t, r.admin, "/admin/stats/totals", r.cookie)
	if status != http.StatusOK || !strings.Contains(body, "stale") {
		t.Errorf("admin during the outage: status %d, want 200 with a stale notice:\n%s", status, body)
	}
	t.Logf("postgres down: backlog %d -> %d", down, backlog(t, r.likes))
	if err := r.pg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sum := <-run
	unaffected(t, sum, "PostgreSQL's outage")
	clean := r.recovered(t)
	r.assertHonest(t, sum, clean)
}

// TestFault_RedisRestart stops Redis for several seconds under load: the
// catalog still renders, Likes answer 503 "could not save" (never a false
// success), the worker waits, and all of it recovers by itself.
func TestFault_RedisRestart(t *testing.T) {
	r := newFaultRig(t, nil)
	run := r.load(t, 10*time.Second)
	r.waitStored(t, 0)
	// A shopper who has the page (cookie and token) before the outage.
	jar, _ := cookiejar.New(nil)
	shopper := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	product := r.shop.url("shop", "/products/"+r.ids[0])
	_, page := fetch(t, shopper, http.MethodGet, product, "")
	token := loadgen.Token(page)
	if token == "" {
		t.Fatalf("no CSRF token on the product page:\n%s", page)
	}
	if err := r.redis.Stop(); err != nil { // a clean shutdown; the append-only file has every write
		t.Fatal(err)
	}
	r.holdDown(t, 3*time.Second, func() bool { return true })
	if status, body := fetch(t, shopper, http.MethodGet, product, ""); status != http.StatusOK {
		t.Errorf("product page with Redis down: status %d, want 200\n%s", status, body)
	}
	if status, body := fetch(t, shopper, http.MethodPost, product+"/like", token); status != http.StatusServiceUnavailable || !strings.Contains(body, "Could not save") {
		t.Errorf("Like with Redis down: status %d, want 503 'could not save'\n%s", status, body)
	}
	if msg := readyz(&http.Client{Timeout: 2 * time.Second}, r.admin.addr("admin")); msg != "" {
		t.Errorf("admin /readyz with Redis down: %s; the admin does not use Redis", msg)
	}
	if status, body := adminGet(t, r.admin, "/admin/stats/totals", r.cookie); status != http.StatusOK || strings.Contains(body, "cannot be reached") {
		t.Errorf("admin with Redis down: status %d, want 200 without an outage notice\n%s", status, body)
	}
	if err := r.redis.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	sum := <-run
	refused := sum.Errors["status 503"]
	for kind, n := range sum.Errors {
		if kind != "status 503" {
			t.Errorf("load during the Redis outage: %d answers %q, want only 503 'could not save'", n, kind)
		}
	}
	if refused == 0 {
		t.Errorf("no Like was refused while Redis was down: errors %v", sum.Errors)
	}
	t.Logf("load: %d requests, %d refused while Redis was down, %d uncertain", sum.Requests, refused, sum.Uncertain)
	clean := r.recovered(t)
	r.assertHonest(t, sum, clean)
	r.assertNoBacklog(t)
}

// assertNoBacklog waits until the worker's status row (what the admin and
// /metrics show) reports an empty backlog, as the stream does.
func (r *faultRig) assertNoBacklog(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(recoverTimeout)
	for {
		var recorded int64
		err := r.db.Get(&recorded, `SELECT backlog FROM worker_status ORDER BY updated_at DESC LIMIT 1`)
		live := backlog(t, r.likes)
		if err == nil && recorded == 0 && live == 0 {
			return
		}
		if time.Now().After(deadline) {
			g, _ := r.likes.Client().XInfoGroups(context.Background(), r.likes.StreamKey()).Result()
			t.Fatalf("backlog recorded %d (%v), counted %d, want 0; XINFO GROUPS says %+v", recorded, err, live, g)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// adminLogin logs in to the admin and returns the session cookie header.
func adminLogin(t *testing.T, admin *phoenixProc) string {
	t.Helper()
	jar, _ := cookiejar.New(nil) // never fails without options
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// The login form carries the CSRF token (and its cookie).
	token, err := fetchCSRF(c, admin.url("admin", "/login"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.PostForm(admin.url("admin", "/login"), url.Values{"password": {faultPassword}, "next": {"/admin"}, "csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var cookies []string
	for _, ck := range jar.Cookies(resp.Request.URL) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	if resp.StatusCode != http.StatusSeeOther || len(cookies) == 0 {
		t.Fatalf("admin login: status %d, cookies %v", resp.StatusCode, cookies)
	}
	return strings.Join(cookies, "; ")
}

// adminGet fetches an admin fragment with the session cookie.
func adminGet(t *testing.T, admin *phoenixProc, path, cookie string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, admin.url("admin", path), nil)
	req.Header.Set("Cookie", cookie)
	req.Header.Set("HX-Request", "true")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// fetch sends one request as an htmx client would (a POST carries the CSRF
// token) and returns the status and body.
func fetch(t *testing.T, c *http.Client, method, u, token string) (int, string) {
	t.Helper()
	resp, body := fetchResponse(t, c, method, u, token)
	return resp.StatusCode, body
}

// fetchResponse is fetch, returning the whole response (its body read).
func fetchResponse(t *testing.T, c *http.Client, method, u, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("HX-Request", "true")
	if token != "" {
		req.Header.Set("X-CSRF-Token", token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestFault_BackPressure stops the worker under load: once the stream holds
// PHOENIX_MAX_BACKLOG events the shop answers Likes 503 "busy" with
// Retry-After and saves nothing, so Redis stops growing; after the worker
// returns, every refused Like is absent, every saved one is in PostgreSQL,
// and the audit is exact.
func TestFault_BackPressure(t *testing.T) {
	// Above what a running worker leaves between two trims (a second of
	// the rig's 300 Likes/s, plus Redis's whole-node trimming).
	const bound = 1000
	r := newFaultRig(t, map[string]string{"PHOENIX_MAX_BACKLOG": strconv.Itoa(bound)})
	r.worker.Kill9(t)
	// Load until the shop refuses: how many Likes are real changes (and so
	// events) depends on the shoppers' draws, not on the time alone.
	var runs []loadgen.Summary
	for len(runs) < 10 && (len(runs) == 0 || runs[len(runs)-1].Errors["status 503"] == 0) {
		runs = append(runs, <-r.load(t, 3*time.Second))
	}
	sum := runs[len(runs)-1]
	ctx := context.Background()
	n, err := r.likes.Client().XLen(ctx, r.likes.StreamKey()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != bound {
		t.Errorf("stream holds %d events with the worker stopped, want the bound %d", n, bound)
	}
	for _, run := range runs {
		if run.Uncertain > 0 || len(run.Errors) > 1 || (len(run.Errors) == 1 && run.Errors["status 503"] == 0) {
			t.Errorf("load without a worker: errors %v, %d uncertain; want only 503 busy answers", run.Errors, run.Uncertain)
		}
	}
	if sum.Errors["status 503"] == 0 {
		t.Errorf("no Like refused after %d loads without a worker", len(runs))
	}
	// A refusal says when to come back.
	resp, body := busyLike(t, r)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "busy") {
		t.Errorf("Like at the bound: status %d, Retry-After %q; want 503 busy with Retry-After:\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	t.Logf("worker stopped: %d requests, %d likes saved, errors %v; stream at %d", sum.Requests, sum.ConfirmedLikes, sum.Errors, n)
	r.startWorker(t)
	// The worker drains and trims the stream below the bound by itself.
	r.holdDown(t, 0, func() bool {
		n, err := r.likes.Client().XLen(ctx, r.likes.StreamKey()).Result()
		return err == nil && n < bound && backlog(t, r.likes) == 0
	})
	clean := r.recovered(t)
	r.assertHonest(t, append(runs, clean)...)
}

// busyLike sends one htmx Like as a shopper with a page (cookie, token).
func busyLike(t *testing.T, r *faultRig) (*http.Response, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	_, page := fetch(t, c, http.MethodGet, r.shop.url("shop", "/products/"+r.ids[0]), "")
	token := loadgen.Token(page)
	if token == "" {
		t.Fatal("product page without a CSRF token")
	}
	return fetchResponse(t, c, http.MethodPost, r.shop.url("shop", "/products/"+r.ids[0]+"/like"), token)
}
