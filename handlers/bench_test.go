package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"phoenix/store"
	"phoenix/testkit"
)

// BenchmarkShop_Like measures htmx Likes per second through a live shop on
// a real listener and keep-alive connections: "protected" as phoenix shop
// runs (signed shopper cookie, CSRF token bound to the shopper, per-shopper
// limit and backlog bound in the Like's script), "no-limits" without the
// limits and the bound. Each request is a real change: shoppers take turns
// to like and unlike.
//
// "protected" is tracing off (no tracer: no middleware, no Redis hook);
// "protected,tracing=1%" and "=100%" are the same shop traced as phoenix
// shop is with OTEL_TRACES_SAMPLER=parentbased_traceidratio and
// OTEL_TRACES_SAMPLER_ARG=0.01 (or 1), through the SDK's batch processor
// into an exporter that drops the spans (the collector's cost is not the
// shop's).
func BenchmarkShop_Like(b *testing.B) {
	const shoppers = 10000 // at 10 Likes/s per shopper none is limited
	protected := store.LikesOptions{PerShopper: store.PerSecond(10), MaxBacklog: 1 << 40}
	for _, bb := range []struct {
		name   string
		limit  store.LikesOptions
		sample float64 // the traced share of requests; 0: tracing off
	}{
		// The default limits: per shopper only (the benchmark comes from
		// one address), and a bound the benchmark's stream never reaches.
		{"protected", protected, 0},
		{"no-limits", store.LikesOptions{}, 0},
		{"protected,tracing=1%", protected, 0.01},
		{"protected,tracing=100%", protected, 1},
	} {
		b.Run(bb.name, func(b *testing.B) {
			s := startShop(b, func(s *shopSetup) {
				s.limit = bb.limit
				if bb.sample > 0 {
					tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()),
						sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(bb.sample))))
					b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
					s.tracer = tp
				}
			})
			// Each shopper's cookie and token, as its page view gave them.
			keys, csrf := shopKeys(b)
			cookies, tokens := make([]string, shoppers), make([]string, shoppers)
			for i := range shoppers {
				id := fmt.Sprintf("%032x", i)
				cookies[i], tokens[i] = "phoenix_shopper="+keys.SignedCookie(id), csrf.Token(id)
			}
			id := s.catalog.IDs()[0]
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					action := "like"
					if (i/shoppers)%2 == 1 {
						action = "unlike"
					}
					req, err := http.NewRequest("POST", "http://"+s.addr+"/products/"+id+"/"+action, nil)
					if err != nil {
						b.Error(err)
						return
					}
					req.Header.Set("HX-Request", "true")
					req.Header.Set("X-CSRF-Token", tokens[i%shoppers])
					req.Header.Set("Cookie", cookies[i%shoppers])
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "likes/s")
		})
	}
}

// BenchmarkShop_Browse measures catalog pages through a live shop, with
// the embedded catalog (48 parts) and a generated one of 10,000, which must
// cost the same: the first page in full and as the htmx grid, page 2 by
// "load more", a search that finds one part; and the full page compressed
// (brotli, gzip) against the plain one above.
func BenchmarkShop_Browse(b *testing.B) {
	small, err := store.DefaultCatalog()
	if err != nil {
		b.Fatal(err)
	}
	big, _, err := testkit.GenerateCatalog(10000)
	if err != nil {
		b.Fatal(err)
	}
	htmx := func(target string) map[string]string {
		return map[string]string{"HX-Request": "true", "HX-Target": target, "HX-Current-URL": "http://shop.example/"}
	}
	for _, cat := range []struct {
		name string
		c    *store.Catalog
		one  string // a query that finds one part
	}{
		{"48", small, small.Products()[7].Name},
		{"10000", big, testkit.CatalogPart(4242)},
	} {
		if n := cat.c.Search("", cat.one).Len(); n != 1 {
			b.Fatalf("catalog %s: %q finds %d parts, want 1", cat.name, cat.one, n)
		}
		s := startShop(b, withCatalog(cat.c))
		// Pages as a worker's highlights make them: five in each list.
		var ranked []store.Ranked
		for i, p := range cat.c.Products()[:5] {
			ranked = append(ranked, store.Ranked{ID: p.ID, Count: int64(100 - i)})
		}
		if err := s.likes.PublishHighlights(context.Background(), store.Highlights{At: time.Now(), MostLiked: ranked, Trending: ranked}, time.Hour); err != nil {
			b.Fatal(err)
		}
		for _, bb := range []struct {
			name, target string
			header       map[string]string
		}{
			{"page", "/", nil},
			{"grid", "/", htmx("product-grid")},
			{"more", "/?page=2", htmx("product-cards")},
			{"search-one", "/?q=" + url.QueryEscape(cat.one), nil},
			{"page-br", "/", map[string]string{"Accept-Encoding": "br"}},
			{"page-gzip", "/", map[string]string{"Accept-Encoding": "gzip"}},
		} {
			b.Run(fmt.Sprintf("catalog=%s/%s", cat.name, bb.name), func(b *testing.B) {
				// No transparent gzip: the plain page must stay plain.
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
				defer client.CloseIdleConnections()
				var bytes atomic.Int64
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, err := http.NewRequest("GET", "http://"+s.addr+bb.target, nil)
						if err != nil {
							b.Error(err)
							return
						}
						req.Header.Set("Cookie", "phoenix_shopper="+s.cookie)
						for k, v := range bb.header {
							req.Header.Set(k, v)
						}
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						bytes.Add(n)
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
				b.ReportMetric(float64(bytes.Load())/float64(b.N), "bytes/page")
			})
		}
	}
}

// BenchmarkAdmin_Stats measures the server time of the dashboard's products
// fragment (the largest: every product with its likes and last hour) with
// 10 and with 1,000,000 recorded Likes over 500 products, and of the 304
// that answers an unchanged one from the data version alone. Requests go
// through app.Test (in process, no network).
func BenchmarkAdmin_Stats(b *testing.B) {
	for _, likes := range []int{10, 1_000_000} {
		url := testkit.Postgres(b)
		f := newAdminOn(b, url)
		testkit.SeedHistory(b, url, 500, likes)
		testkit.SetWorker(b, f.stats, "worker-1", time.Now(), 0, 1)
		cookie := f.login(b)
		const target = "/admin/stats/products"
		resp, _ := f.get(b, target, cookie, true)
		tag := resp.Header.Get("ETag")
		for _, bb := range []struct {
			name   string
			header map[string]string
			status int
		}{
			{"fragment", nil, http.StatusOK},
			{"not-modified", map[string]string{"If-None-Match": tag}, http.StatusNotModified},
		} {
			b.Run(fmt.Sprintf("likes=%d/%s", likes, bb.name), func(b *testing.B) {
				for b.Loop() {
					resp, _ := f.do(b, request{method: "GET", target: target, cookie: cookie, htmx: true, header: bb.header})
					if bb.status == http.StatusNotModified && resp.StatusCode == http.StatusOK {
						// The tag moves with the minute (the time windows do);
						// take the new one, as the browser does.
						bb.header["If-None-Match"] = resp.Header.Get("ETag")
						continue
					}
					if resp.StatusCode != bb.status {
						b.Fatalf("status %d, want %d", resp.StatusCode, bb.status)
					}
				}
			})
		}
	}
}
