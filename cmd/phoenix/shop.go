package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"phoenix"
	"phoenix/handlers"
	"phoenix/store"
)

// redisConfig is how a role reaches Redis.
type redisConfig struct {
	url, prefix string
}

func (c *redisConfig) register(f *flags) {
	f.String(&c.url, "redis-url", "PHOENIX_REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL")
	f.String(&c.prefix, "redis-prefix", "PHOENIX_REDIS_PREFIX", "phoenix:", "prefix of every Redis key")
}

func (c *redisConfig) checks() []func() error {
	return []func() error{
		checkURL("PHOENIX_REDIS_URL", &c.url, "redis", "rediss"),
		func() error {
			if len(c.prefix) > 64 {
				return errors.New("PHOENIX_REDIS_PREFIX: longer than 64 characters")
			}
			return nil
		},
	}
}

// shopConfig is the shop role's own settings.
type shopConfig struct {
	addr          string
	catalog       string
	secureCookies bool
}

func (c *shopConfig) register(f *flags) {
	f.String(&c.addr, "shop-addr", "PHOENIX_SHOP_ADDR", ":8080", "shop listen address")
	f.String(&c.catalog, "catalog", "PHOENIX_CATALOG", "", "catalog JSON file (default: the embedded catalog)")
	f.Bool(&c.secureCookies, "secure-cookies", "PHOENIX_SECURE_COOKIES", false, "mark cookies Secure (set when served over TLS or behind a TLS proxy)")
}

func (c *shopConfig) checks() []func() error {
	return []func() error{checkAddr("PHOENIX_SHOP_ADDR", &c.addr)}
}

func runShop(ctx context.Context, e *env, args []string) error {
	f := newFlags("shop", e)
	var (
		lc logConfig
		rc redisConfig
		sc shopConfig
	)
	lc.register(f, "json")
	rc.register(f)
	sc.register(f)
	if err := f.parse(args, append(rc.checks(), sc.checks()...)...); err != nil {
		return err
	}
	log, err := lc.logger(e.stderr)
	if err != nil {
		return err
	}
	shop, err := openShop(ctx, e, log, rc, sc)
	if err != nil {
		return err
	}
	defer shop.close()
	return shop.run(ctx)
}

// shopRole is a running shop: its Redis store and its HTTP server.
type shopRole struct {
	*server
	likes *store.Likes
}

func openShop(ctx context.Context, e *env, log *slog.Logger, rc redisConfig, sc shopConfig) (*shopRole, error) {
	catalog, err := store.LoadCatalog(sc.catalog)
	if err != nil {
		return nil, fmt.Errorf("PHOENIX_CATALOG: %w", err)
	}
	likes, err := store.OpenLikes(ctx, rc.url, rc.prefix)
	if errors.Is(err, store.ErrUnavailable) {
		// The catalog still renders without Redis; Likes answer 503 until it is back.
		log.Warn("redis unreachable at start", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("PHOENIX_REDIS_URL: %w", err)
	}
	app, err := handlers.NewApp(handlers.AppConfig{
		Name: "shop", Views: phoenix.Views(), Assets: phoenix.Assets(), Log: log,
		Instance: instanceName(e), Section: "shop",
	})
	if err != nil {
		likes.Close()
		return nil, err
	}
	health := &handlers.Health{Checks: []handlers.Check{{Name: "redis", Ping: likes.Ping}}}
	health.Routes(app)
	(&handlers.Shop{Likes: likes, Catalog: catalog, Log: log, Instance: instanceName(e), SecureCookie: sc.secureCookies}).Routes(app)
	ln, err := listen("shop", sc.addr, e)
	if err != nil {
		likes.Close()
		return nil, err
	}
	return &shopRole{server: &server{role: "shop", app: app, ln: ln, health: health, log: log}, likes: likes}, nil
}

func (s *shopRole) close() {
	s.likes.Close()
}
