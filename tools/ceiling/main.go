// Command ceiling serves the two reference endpoints that make bench compares
// Phoenix with: a plain Fiber handler, and a Fiber handler doing one Redis
// round trip. Both answer a small HTML fragment, as the Like endpoint does.
//
//	ceiling -addr 127.0.0.1:9100 -redis-url redis://127.0.0.1:6379/0
//	GET  /plain   no I/O
//	POST /redis   one INCR
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
)

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
	go func() {
		<-ctx.Done()
		_ = app.Shutdown()
	}()
	return app.Listen(*addr)
}
