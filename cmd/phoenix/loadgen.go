package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"phoenix/store"
)

// loadgenConfig is the settings of phoenix loadgen.
type loadgenConfig struct {
	url      string
	shoppers int
	rate     int           // requests per second in all; 0 means as fast as possible
	duration time.Duration // stop after this long (0: no limit)
	count    int           // stop after this many requests (0: no limit)
	browse   float64       // share of requests that are page views rather than Like/Unlike
	catalog  string
	timeout  time.Duration
	jsonOut  bool
}

func runLoadgen(ctx context.Context, e *env, args []string) error {
	f := newFlags("loadgen", e)
	var c loadgenConfig
	f.String(&c.url, "url", "PHOENIX_LOADGEN_URL", "http://127.0.0.1:8080", "shop base URL")
	f.Int(&c.shoppers, "shoppers", "PHOENIX_LOADGEN_SHOPPERS", 50, "simulated shoppers, each with its own cookies")
	f.Int(&c.rate, "rate", "PHOENIX_LOADGEN_RATE", 0, "requests per second in all (0: as fast as possible)")
	f.Duration(&c.duration, "duration", "PHOENIX_LOADGEN_DURATION", 10*time.Second, "how long to run (0: until -count)")
	f.Int(&c.count, "count", "PHOENIX_LOADGEN_COUNT", 0, "how many requests to send (0: until -duration)")
	f.Float64Var(&c.browse, "browse", 0.1, "share of requests that are page views (0 to 1)")
	f.String(&c.catalog, "catalog", "PHOENIX_CATALOG", "", "catalog JSON file the shop uses (default: the embedded catalog)")
	f.Duration(&c.timeout, "timeout", "PHOENIX_LOADGEN_TIMEOUT", 5*time.Second, "timeout of one request")
	f.BoolVar(&c.jsonOut, "json", false, "print the summary as JSON")
	err := f.parse(args,
		checkURL("PHOENIX_LOADGEN_URL", &c.url, "http", "https"),
		checkPositive("PHOENIX_LOADGEN_SHOPPERS", &c.shoppers),
		func() error {
			switch {
			case c.rate < 0:
				return errors.New("PHOENIX_LOADGEN_RATE: must not be negative")
			case c.browse < 0 || c.browse > 1:
				return errors.New("-browse: must be between 0 and 1")
			case c.duration == 0 && c.count == 0:
				return errors.New("PHOENIX_LOADGEN_DURATION: set a duration or a count, or the load never stops")
			}
			return nil
		})
	if err != nil {
		return err
	}
	catalog, err := store.LoadCatalog(c.catalog)
	if err != nil {
		return fmt.Errorf("PHOENIX_CATALOG: %w", err)
	}
	g := newLoadgen(c, catalog.IDs())
	progress := func(p loadProgress) {
		fmt.Fprintf(e.stderr, "\r%6.1fs  %8d requests  %7.0f req/s  %6d errors", p.elapsed.Seconds(), p.requests, p.rate, p.errors)
	}
	sum, err := g.run(ctx, progress)
	fmt.Fprintln(e.stderr)
	if err != nil {
		return err
	}
	if c.jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	sum.print(e.stdout)
	return nil
}

// loadgen drives simulated shoppers against a shop. Each shopper keeps its
// own cookies and CSRF token and remembers what the shop confirmed, so that
// an audit can compare the totals afterwards.
type loadgen struct {
	cfg      loadgenConfig
	products []string
	client   *http.Transport
}

func newLoadgen(cfg loadgenConfig, products []string) *loadgen {
	return &loadgen{cfg: cfg, products: products, client: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.shoppers * 2,
		MaxIdleConnsPerHost: cfg.shoppers * 2,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// loadProgress is what the live progress line shows.
type loadProgress struct {
	elapsed          time.Duration
	requests, errors int64
	rate             float64
}

// loadSummary is the result of a run.
type loadSummary struct {
	Requests       int64            `json:"requests"`
	Seconds        float64          `json:"seconds"`
	RequestsPerSec float64          `json:"requests_per_second"`
	P50            float64          `json:"p50_ms"`
	P90            float64          `json:"p90_ms"`
	P99            float64          `json:"p99_ms"`
	Max            float64          `json:"max_ms"`
	Errors         map[string]int64 `json:"errors"`
	// Likes and Unlikes the shop confirmed (200 with the new button); each
	// was a real change, since a shopper only likes what it does not like.
	ConfirmedLikes   int64 `json:"confirmed_likes"`
	ConfirmedUnlikes int64 `json:"confirmed_unlikes"`
	// Requests whose outcome is unknown (timeouts, dropped connections).
	Uncertain int64 `json:"uncertain"`
	// Expected is, per product, the number of shoppers whose last confirmed
	// state is "liked" (counting only this run's shoppers).
	Expected map[string]int64 `json:"expected"`
	// shoppers is what each shopper saw, for audits of single answers.
	shoppers []*shopperResult
}

func (s loadSummary) print(w io.Writer) {
	fmt.Fprintf(w, "requests     %d in %.1fs = %.0f req/s\n", s.Requests, s.Seconds, s.RequestsPerSec)
	fmt.Fprintf(w, "latency ms   p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", s.P50, s.P90, s.P99, s.Max)
	fmt.Fprintf(w, "confirmed    %d likes, %d unlikes (net %+d); %d uncertain\n",
		s.ConfirmedLikes, s.ConfirmedUnlikes, s.ConfirmedLikes-s.ConfirmedUnlikes, s.Uncertain)
	kinds := make([]string, 0, len(s.Errors))
	for k := range s.Errors {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(w, "error        %-28s %d\n", k, s.Errors[k])
	}
}

// shopperResult is what one simulated shopper saw.
type shopperResult struct {
	latencies []time.Duration
	errors    map[string]int64
	likes     int64
	unlikes   int64
	uncertain int64
	liked     map[string]bool // confirmed state per product
	unsure    map[string]bool // products whose state is unknown
	answers   map[string]*answers
	jar       http.CookieJar // holds the shopper's id cookie
}

// answers counts what the shop told one shopper about one product: Likes
// and Unlikes it saved, and those it refused (any other status).
type answers struct {
	likes, unlikes, refused int64
}

func (g *loadgen) run(ctx context.Context, progress func(loadProgress)) (loadSummary, error) {
	// The duration stops new requests; those in flight finish, so that
	// every outcome is known. Cancelling ctx (Ctrl-C) stops at once.
	ticketCtx := ctx
	if g.cfg.duration > 0 {
		var cancel context.CancelFunc
		ticketCtx, cancel = context.WithTimeout(ctx, g.cfg.duration)
		defer cancel()
	}
	var (
		sent, failed atomic.Int64
		wg           sync.WaitGroup
		results      = make([]*shopperResult, g.cfg.shoppers)
		tickets      = g.tickets(ticketCtx)
		start        = time.Now()
	)
	for i := range g.cfg.shoppers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g.shop(ctx, tickets, &sent, &failed)
		}()
	}
	done := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				el := time.Since(start)
				progress(loadProgress{elapsed: el, requests: sent.Load(), errors: failed.Load(), rate: float64(sent.Load()) / el.Seconds()})
			}
		}
	}()
	wg.Wait()
	close(done)
	pwg.Wait()
	return summarize(results, time.Since(start)), nil
}

// tickets hands out permission to send one request, carrying the time the
// request was due, so that latency counts the wait of a backed-up shop
// (no coordinated omission). With no rate set, tickets are free.
func (g *loadgen) tickets(ctx context.Context) <-chan time.Time {
	ch := make(chan time.Time, g.cfg.shoppers)
	go func() {
		defer close(ch)
		n := 0
		interval := time.Duration(0)
		if g.cfg.rate > 0 {
			interval = time.Second / time.Duration(g.cfg.rate)
		}
		next := time.Now()
		for g.cfg.count == 0 || n < g.cfg.count {
			if interval > 0 {
				if d := time.Until(next); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case ch <- next:
			}
			n++
			if interval > 0 {
				next = next.Add(interval)
			} else {
				next = time.Now()
			}
		}
	}()
	return ch
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// shop is one simulated shopper's loop.
func (g *loadgen) shop(ctx context.Context, tickets <-chan time.Time, sent, failed *atomic.Int64) *shopperResult {
	jar, _ := cookiejar.New(nil) // New never fails without options
	client := &http.Client{Transport: g.client, Jar: jar, Timeout: g.cfg.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r := &shopperResult{errors: map[string]int64{}, liked: map[string]bool{}, unsure: map[string]bool{},
		answers: map[string]*answers{}, jar: jar}
	// #nosec G404 -- a simulated shopper's choices need no unpredictability.
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	token, fetched := "", false
	for due := range tickets {
		if ctx.Err() != nil {
			break
		}
		product := g.products[rng.IntN(len(g.products))]
		var (
			status int
			body   string
			err    error
		)
		like := !r.liked[product]
		if !fetched || rng.Float64() < g.cfg.browse {
			// A page view, which also gives the shopper its cookie and CSRF token.
			status, body, err = g.get(ctx, client, "/products/"+product)
			if m := csrfField.FindStringSubmatch(body); m != nil {
				token = m[1]
			}
			fetched = err == nil && status == http.StatusOK
		} else {
			action := "like"
			if !like {
				action = "unlike"
			}
			status, body, err = g.post(ctx, client, "/products/"+product+"/"+action, token)
			a := r.answers[product]
			if a == nil {
				a = &answers{}
				r.answers[product] = a
			}
			switch {
			case err != nil:
				r.unsure[product] = true
				r.uncertain++
			case status == http.StatusOK && strings.Contains(body, `aria-pressed="`+fmt.Sprint(like)+`"`):
				r.liked[product] = like
				if like {
					r.likes++
					a.likes++
				} else {
					r.unlikes++
					a.unlikes++
				}
			case status == http.StatusForbidden:
				fetched = false // fetch a fresh token with the next page view
				a.refused++
			case status != http.StatusOK:
				a.refused++
			}
		}
		if ctx.Err() != nil {
			break // the run ended mid-request: neither a result nor an error
		}
		sent.Add(1)
		r.latencies = append(r.latencies, time.Since(due))
		if kind := errorKind(status, err); kind != "" {
			failed.Add(1)
			r.errors[kind]++
		}
	}
	return r
}

func (g *loadgen) get(ctx context.Context, c *http.Client, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.cfg.url+path, nil)
	if err != nil {
		return 0, "", err
	}
	return do(c, req)
}

func (g *loadgen) post(ctx context.Context, c *http.Client, path, token string) (int, string, error) {
	form := url.Values{"csrf": {token}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("HX-Request", "true")
	req.Header.Set("X-CSRF-Token", token)
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (int, string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// errorKind names a failure for the summary, or "" for success.
func errorKind(status int, err error) string {
	var ne net.Error
	switch {
	case err == nil && status < 400:
		return ""
	case err == nil:
		return fmt.Sprintf("status %d", status)
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case strings.Contains(err.Error(), "connection refused"):
		return "connection refused"
	case strings.Contains(err.Error(), "connection reset"):
		return "connection reset"
	}
	return "other: " + err.Error()
}

func summarize(results []*shopperResult, elapsed time.Duration) loadSummary {
	s := loadSummary{Seconds: elapsed.Seconds(), Errors: map[string]int64{}, Expected: map[string]int64{}, shoppers: results}
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.latencies...)
		s.ConfirmedLikes += r.likes
		s.ConfirmedUnlikes += r.unlikes
		s.Uncertain += r.uncertain
		for k, n := range r.errors {
			s.Errors[k] += n
		}
		for p, liked := range r.liked {
			if liked && !r.unsure[p] {
				s.Expected[p]++
			}
		}
	}
	s.Requests = int64(len(all))
	if s.Seconds > 0 {
		s.RequestsPerSec = float64(s.Requests) / s.Seconds
	}
	slices.Sort(all)
	ms := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(q*float64(len(all))))].Microseconds()) / 1000
	}
	s.P50, s.P90, s.P99, s.Max = ms(0.50), ms(0.90), ms(0.99), ms(1)
	return s
}
