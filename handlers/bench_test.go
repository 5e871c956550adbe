package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"

	"phoenix/handlers"
	"phoenix/store"
)

// BenchmarkShop_Like measures htmx Likes per second through a live shop on
// a real listener and keep-alive connections, with and without CSRF (tokens
// in Redis) and the per-shopper rate limit (one Redis round trip). Each
// request is a real change: shoppers take turns to like and unlike.
func BenchmarkShop_Like(b *testing.B) {
	const shoppers = 10000 // at 10 Likes/s per shopper none is limited
	for _, bb := range []struct {
		name    string
		protect func(*shopSetup)
	}{
		{"protected", func(s *shopSetup) {
			// The default limits: per shopper only (the benchmark comes
			// from one address).
			s.shop.LikeLimit = handlers.LikeLimit(store.NewLimiter(s.rdb, s.prefix+"rate:"), store.PerSecond(10), store.Rate{})
		}},
		{"csrf-only", func(s *shopSetup) { s.shop.LikeLimit = nil }},
		{"limit-only", func(s *shopSetup) {
			s.shop.CSRF = func(c *fiber.Ctx) error { return c.Next() }
			s.shop.LikeLimit = handlers.LikeLimit(store.NewLimiter(s.rdb, s.prefix+"rate:"), store.PerSecond(10), store.Rate{})
		}},
		{"unprotected", func(s *shopSetup) {
			s.shop.CSRF = func(c *fiber.Ctx) error { return c.Next() }
			s.shop.LikeLimit = nil
		}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			s := startShop(b, bb.protect)
			token := s.token
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
					req.Header.Set("X-CSRF-Token", token)
					req.Header.Set("Cookie", fmt.Sprintf("phoenix_shopper=%032x; phoenix_csrf=%s", i%shoppers, token))
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

// BenchmarkShop_Browse measures catalog pages (48 products with their
// counts) through a live shop: the full page and the htmx grid fragment.
func BenchmarkShop_Browse(b *testing.B) {
	for _, fragment := range []bool{false, true} {
		b.Run(fmt.Sprintf("fragment=%v", fragment), func(b *testing.B) {
			s := startShop(b)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, err := http.NewRequest("GET", "http://"+s.addr+"/", nil)
					if err != nil {
						b.Error(err)
						return
					}
					req.Header.Set("Cookie", "phoenix_shopper=0123456789abcdef0123456789abcdef; phoenix_csrf="+s.token)
					if fragment {
						req.Header.Set("HX-Request", "true")
						req.Header.Set("HX-Target", "product-grid")
					}
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
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
		})
	}
}
