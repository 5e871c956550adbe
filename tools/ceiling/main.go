// Command ceiling serves the reference endpoints that make bench compares
// Phoenix with: a plain Fiber handler, a Fiber handler doing one Redis
// round trip, and one running the Like's own script once, the Redis work a
// Like cannot avoid (no cookie, CSRF, limits, logs or metrics). Each answers
// a small HTML fragment, as the Like endpoint does.
//
//	ceiling -addr 127.0.0.1:9100 -redis-url redis://127.0.0.1:6379/0
//	GET  /plain   no I/O
//	POST /redis   one INCR
//	POST /script  one run of the Like script (store.Likes.Set)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"

	"phoenix/store"
)

// scriptShoppers is how many shoppers the /script requests cycle through.
const scriptShoppers = 4000

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:9100", "listen address")
	redisURL := fs.String("redis-url", "redis://127.0.0.1:6379/0", "Redis URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opt, err := redis.ParseURL(*redisURL)
	if err != nil {
		return fmt.Errorf("-redis-url: %w", err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	catalog, err := store.DefaultCatalog()
	if err != nil {
		return err
	}
	likes := store.NewLikes(rdb, "ceiling:")
	products := catalog.Products()
	var next atomic.Int64
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/plain", func(c *fiber.Ctx) error {
		c.Type("html")
		return c.SendString(`<button aria-pressed="true">Liked <span>1</span></button>`)
	})
	app.Post("/redis", func(c *fiber.Ctx) error {
		n, err := rdb.Incr(c.UserContext(), "ceiling:count").Result()
		if err != nil {
			return err
		}
		c.Type("html")
		return c.SendString(fmt.Sprintf(`<button aria-pressed="true">Liked <span>%d</span></button>`, n))
	})
	app.Post("/script", func(c *fiber.Ctx) error {
		// Request i likes product i/shoppers for shopper i%shoppers on the
		// first pass over every pair, unlikes it on the next: each a change.
		i := next.Add(1) - 1
		pair := i % (scriptShoppers * int64(len(products)))
		action := store.ActionLike
		if (i/(scriptShoppers*int64(len(products))))%2 == 1 {
			action = store.ActionUnlike
		}
		res, err := likes.Set(c.UserContext(), store.LikeInput{
			Shopper: fmt.Sprintf("%032x", pair%scriptShoppers), Product: products[pair/scriptShoppers].ID, Action: action,
		})
		if err != nil {
			return err
		}
		c.Type("html")
		return c.SendString(fmt.Sprintf(`<button aria-pressed="%t">Liked <span>%d</span></button>`, res.Liked, res.Count))
	})
	go func() {
		<-ctx.Done()
		_ = app.Shutdown()
	}()
	return app.Listen(*addr)
}
