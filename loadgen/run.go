package loadgen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one run of simulated shoppers.
type Config struct {
	URL      string // the shop's base URL
	Products []string
	Shoppers int
	Rate     int           // requests a second in all; 0: as fast as possible
	Duration time.Duration // stop sending after this long (0: no limit)
	Count    int           // stop after this many requests (0: no limit)
	Browse   float64       // share of requests that are page views rather than Like/Unlike
	Timeout  time.Duration // of one request
	// RootCAs, when set, are the roots an https URL's certificate must
	// chain to (a local proxy's own certificate); nil: the system's.
	RootCAs *x509.CertPool
	// Progress, when set, is told the totals once a second.
	Progress func(Progress)
}

// Progress is what a live progress line shows.
type Progress struct {
	Elapsed          time.Duration
	Requests, Errors int64
	Rate             float64
}

// Summary is the result of a run.
type Summary struct {
	Requests       int64            `json:"requests"`
	Seconds        float64          `json:"seconds"`
	RequestsPerSec float64          `json:"requests_per_second"`
	P50            float64          `json:"p50_ms"`
	P90            float64          `json:"p90_ms"`
	P99            float64          `json:"p99_ms"`
	Max            float64          `json:"max_ms"`
	Errors         map[string]int64 `json:"errors"`
	// Likes and Unlikes the shop saved; each was a real change, since a
	// shopper only likes what it does not like.
	ConfirmedLikes   int64 `json:"confirmed_likes"`
	ConfirmedUnlikes int64 `json:"confirmed_unlikes"`
	// Requests whose outcome is unknown (timeouts, dropped connections).
	Uncertain int64 `json:"uncertain"`
	// Expected is, per product, the number of shoppers whose last confirmed
	// state is "liked" (counting only this run's shoppers).
	Expected map[string]int64 `json:"expected"`
	// Shoppers is what each shopper saw, for audits of single answers.
	Shoppers []*Result `json:"-"`
}

// Print writes the summary for people.
func (s Summary) Print(w io.Writer) {
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

// Result is what one simulated shopper of a run saw.
type Result struct {
	*Shopper
	Liked   map[string]bool     // confirmed state per product
	Unsure  map[string]bool     // products with an answer of unknown outcome
	Answers map[string]*Answers // per product
	lat     []time.Duration
	errors  map[string]int64
	likes   int64
	unlikes int64
	unsure  int64
}

// Answers counts what the shop told one shopper about one product: Likes
// and Unlikes it saved, and those it refused (any other status).
type Answers struct {
	Likes, Unlikes, Refused int64
}

// Load is a run in progress.
type Load struct {
	stop context.CancelFunc
	done chan Summary
}

// Start starts a run in the background. Cancelling ctx ends it at once;
// Stop and the end of cfg.Duration or cfg.Count stop new requests and let
// those in flight finish, so that every outcome is known.
func Start(ctx context.Context, cfg Config) *Load {
	var (
		tctx context.Context
		stop context.CancelFunc
	)
	if cfg.Duration > 0 {
		tctx, stop = context.WithTimeout(ctx, cfg.Duration)
	} else {
		tctx, stop = context.WithCancel(ctx)
	}
	l := &Load{stop: stop, done: make(chan Summary, 1)}
	go func() { l.done <- run(ctx, tctx, cfg) }()
	return l
}

// Run runs cfg to its end and summarizes it.
func Run(ctx context.Context, cfg Config) Summary { return Start(ctx, cfg).Wait() }

// Wait waits for the run's end.
func (l *Load) Wait() Summary {
	s := <-l.done
	l.stop()
	l.done <- s
	return s
}

// Stop stops sending and waits for the answers in flight.
func (l *Load) Stop() Summary {
	l.stop()
	return l.Wait()
}

func run(ctx, tickets context.Context, cfg Config) Summary {
	var (
		sent, failed atomic.Int64
		wg           sync.WaitGroup
		results      = make([]*Result, cfg.Shoppers)
		ch           = Schedule(tickets, cfg.Rate, cfg.Count, cfg.Shoppers)
		transport    = NewTransport(cfg.Shoppers*2, cfg.Timeout)
		start        = time.Now()
	)
	defer transport.CloseIdleConnections()
	if cfg.RootCAs != nil {
		transport.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	}
	for i := range cfg.Shoppers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = shop(ctx, cfg, NewShopper(cfg.URL, transport, cfg.Timeout), ch, &sent, &failed)
		}()
	}
	done := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
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
					cfg.Progress(Progress{Elapsed: el, Requests: sent.Load(), Errors: failed.Load(), Rate: float64(sent.Load()) / el.Seconds()})
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	pwg.Wait()
	return summarize(results, time.Since(start))
}

// shop is one simulated shopper's loop: a page view first and now and
// then (it gives the cookie and token), otherwise a Like of a product it
// does not like or an Unlike of one it does.
func shop(ctx context.Context, cfg Config, s *Shopper, tickets <-chan Ticket, sent, failed *atomic.Int64) *Result {
	r := &Result{Shopper: s, errors: map[string]int64{}, Liked: map[string]bool{}, Unsure: map[string]bool{},
		Answers: map[string]*Answers{}}
	// #nosec G404 -- a simulated shopper's choices need no unpredictability.
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	fetched := false
	for t := range tickets {
		if ctx.Err() != nil {
			break
		}
		product := cfg.Products[rng.IntN(len(cfg.Products))]
		var (
			status int
			err    error
		)
		if !fetched || rng.Float64() < cfg.Browse {
			status, _, err = s.Visit(ctx, "/products/"+product)
			fetched = err == nil && status == http.StatusOK
		} else {
			like := !r.Liked[product]
			var saved bool
			saved, status, err = s.Set(ctx, product, like)
			a := r.Answers[product]
			if a == nil {
				a = &Answers{}
				r.Answers[product] = a
			}
			switch {
			case err != nil:
				r.Unsure[product] = true
				r.unsure++
			case saved:
				r.Liked[product] = like
				if like {
					r.likes++
					a.Likes++
				} else {
					r.unlikes++
					a.Unlikes++
				}
			case status == http.StatusForbidden:
				fetched = false // fetch a fresh token with the next page view
				a.Refused++
			case status != http.StatusOK:
				a.Refused++
			}
		}
		if ctx.Err() != nil {
			break // the run ended mid-request: neither a result nor an error
		}
		sent.Add(1)
		r.lat = append(r.lat, time.Since(t.Due))
		if kind := errorKind(status, err); kind != "" {
			failed.Add(1)
			r.errors[kind]++
		}
	}
	return r
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

func summarize(results []*Result, elapsed time.Duration) Summary {
	s := Summary{Seconds: elapsed.Seconds(), Errors: map[string]int64{}, Expected: map[string]int64{}, Shoppers: results}
	var lat Latencies
	for _, r := range results {
		lat.all = append(lat.all, r.lat...)
		s.ConfirmedLikes += r.likes
		s.ConfirmedUnlikes += r.unlikes
		s.Uncertain += r.unsure
		for k, n := range r.errors {
			s.Errors[k] += n
		}
		for p, liked := range r.Liked {
			if liked && !r.Unsure[p] {
				s.Expected[p]++
			}
		}
	}
	s.Requests = int64(len(lat.all))
	if s.Seconds > 0 {
		s.RequestsPerSec = float64(s.Requests) / s.Seconds
	}
	s.P50, s.P90, s.P99, s.Max = lat.Ms(50), lat.Ms(90), lat.Ms(99), lat.Ms(100)
	return s
}
