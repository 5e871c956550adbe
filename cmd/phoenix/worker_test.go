package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/loadgen"
	"phoenix/store"
	"phoenix/testkit"
	"phoenix/worker"
)

// TestWorker_ShopToPostgres runs phoenix all on private servers, clicks
// Like and Unlike through the shop's HTTP endpoints as several shoppers, and
// checks that once the worker has drained the stream each product's count in
// PostgreSQL equals its live count in Redis.
func TestWorker_ShopToPostgres(t *testing.T) {
	rs := testkit.RedisServer(t)
	pg := testkit.PostgresServer(t)
	ctx := context.Background()
	if err := pg.CreateDatabase(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	p := startPhoenix(t, "all", map[string]string{
		"PHOENIX_REDIS_URL":             rs.URL(),
		"PHOENIX_DATABASE_URL":          pg.URL("phoenix"),
		"PHOENIX_METRICS_ADDR":          "off",
		"PHOENIX_WORKER_BLOCK":          "50ms",
		"PHOENIX_ADMIN_PASSWORD":        "a-long-test-password-for-phoenix",
		"PHOENIX_LIKE_RATE_PER_SHOPPER": "0", // this test is about exactness, not limits
		"PHOENIX_LOG_LEVEL":             "warn",
	})
	shop, worker := p.url("shop", ""), p.url("worker", "")

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
	db := testkit.DB(t, pg.URL("phoenix"))
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
		err := db.SelectContext(ctx, &rows, `SELECT product_id, likes FROM product_counters`)
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
	p.stop(t)
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

// TestWorker_GCPercent: the worker role raises Go's GC target unless the
// operator chose one with GOGC.
func TestWorker_GCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tuneWorkerGC(&env{getenv: func(string) string { return "" }})
	if got := debug.SetGCPercent(100); got != worker.GCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, worker.GCPercent)
	}
	tuneWorkerGC(&env{getenv: func(k string) string { return map[string]string{"GOGC": "150"}[k] }})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC=150 set by the operator: GC percent changed to %d, want it left alone", got)
	}
}
