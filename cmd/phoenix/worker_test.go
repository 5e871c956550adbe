package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/loadgen"
	"phoenix/store"
	"phoenix/testkit"
)

// TestWorker_ShopToPostgres runs phoenix all on private servers, clicks
// Like and Unlike through the shop's HTTP endpoints as several shoppers, and
// checks that once the worker has drained the stream each product's count in
// PostgreSQL equals its live count in Redis.
func TestWorker_ShopToPostgres(t *testing.T) {
	rs := testkit.RedisServer(t)
	pg := testkit.PostgresServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"PHOENIX_REDIS_URL":             rs.URL(),
		"PHOENIX_DATABASE_URL":          pg.URL("phoenix"),
		"PHOENIX_SHOP_ADDR":             "127.0.0.1:0",
		"PHOENIX_ADMIN_ADDR":            "127.0.0.1:0",
		"PHOENIX_WORKER_ADDR":           "127.0.0.1:0",
		"PHOENIX_METRICS_ADDR":          "off",
		"PHOENIX_WORKER_BLOCK":          "50ms",
		"PHOENIX_ADMIN_PASSWORD":        "a-long-test-password-for-phoenix",
		"PHOENIX_SECRET":                "a-test-secret-that-is-at-least-32-bytes-long",
		"PHOENIX_LIKE_RATE_PER_SHOPPER": "0", // this test is about exactness, not limits
		"PHOENIX_LOG_LEVEL":             "warn",
	}
	var mu sync.Mutex
	addrs := map[string]string{}
	e := &env{
		getenv: func(k string) string { return vars[k] },
		stdout: io.Discard, stderr: testWriter{t},
		started: func(role, addr string) {
			mu.Lock()
			defer mu.Unlock()
			addrs[role] = addr
		},
	}
	done := make(chan error, 1)
	go func() { done <- runEnv(ctx, e, []string{"all"}) }()
	addr := func(role string) string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			a := addrs[role]
			mu.Unlock()
			if a != "" {
				return "http://" + a
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start", role)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	shop, worker := addr("shop"), addr("worker")

	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ids := cat.IDs()[:6]
	var wg sync.WaitGroup
	for s := range 8 {
		wg.Go(func() {
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			// A page view gives the shopper its cookies and CSRF token.
			token, err := fetchCSRF(client, shop+"/products/"+ids[0])
			if err != nil {
				t.Errorf("shopper %d: %v", s, err)
				return
			}
			for i := range 40 {
				action := "like"
				if rand.IntN(3) == 0 {
					action = "unlike"
				}
				u := fmt.Sprintf("%s/products/%s/%s", shop, ids[rand.IntN(len(ids))], action)
				resp, err := client.PostForm(u, url.Values{"csrf": {token}})
				if err != nil {
					t.Errorf("shopper %d click %d: %v", s, i, err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusSeeOther {
					t.Errorf("shopper %d click %d: status %d, want 303", s, i, resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	likes := store.NewLikes(rdb, "phoenix:")
	stats, err := store.OpenStats(ctx, pg.URL("phoenix"))
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	live, err := likes.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range live {
		total += n
	}
	if total <= 0 {
		t.Fatalf("live counts %v: the clicks liked nothing", live)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		stored := map[string]int64{}
		var rows []struct {
			ID    string `db:"product_id"`
			Likes int64  `db:"likes"`
		}
		err := stats.DB().SelectContext(ctx, &rows, `SELECT product_id, likes FROM product_counters`)
		for _, r := range rows {
			stored[r.ID] = r.Likes
		}
		same := err == nil
		for _, id := range ids {
			same = same && stored[id] == live[id]
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres %v (err %v), redis %v", stored, err, live)
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Get(worker + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("worker /readyz: %d, want 200", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("phoenix all: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("phoenix all did not stop")
	}
}

// fetchCSRF loads a shop page and returns the CSRF token of its forms.
func fetchCSRF(client *http.Client, page string) (string, error) {
	resp, err := client.Get(page)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	token := loadgen.Token(string(body))
	if token == "" {
		return "", fmt.Errorf("no CSRF token on %s (status %d)", page, resp.StatusCode)
	}
	return token, nil
}

// testWriter sends a command's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
