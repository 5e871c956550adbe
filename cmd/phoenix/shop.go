package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"phoenix/handlers"
	"phoenix/store"
)

// redisConfig is how a role reaches Redis, and how the Likes are laid out
// there (every role must agree on it).
type redisConfig struct {
	url, prefix string
	shards      int
}

func (c *redisConfig) register(f *flags) {
	f.String(&c.url, "redis-url", "PHOENIX_REDIS_URL", "redis://127.0.0.1:6379/0",
		"Redis URL: redis://host:port/db, redis+cluster://host:port?addr=host2:port2, redis+sentinel://host:port?master_name=NAME (rediss for TLS)")
	f.String(&c.prefix, "redis-prefix", "PHOENIX_REDIS_PREFIX", "phoenix:", "prefix of every Redis key")
	f.Int(&c.shards, "redis-shards", "PHOENIX_REDIS_SHARDS", 1, "shards the Likes are spread over, each its own hash tag (1: the single-Redis layout)")
}

func (c *redisConfig) checks() []func() error {
	return []func() error{
		checkURL("PHOENIX_REDIS_URL", &c.url, "redis", "rediss", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel"),
		func() error {
			if len(c.prefix) > 64 {
				return errors.New("PHOENIX_REDIS_PREFIX: longer than 64 characters")
			}
			return nil
		},
		func() error {
			if c.shards < 1 || c.shards > store.MaxShards {
				return fmt.Errorf("PHOENIX_REDIS_SHARDS: %d, want 1 to %d", c.shards, store.MaxShards)
			}
			if c.shards > 1 && strings.ContainsAny(c.prefix, "{}") {
				return fmt.Errorf("PHOENIX_REDIS_PREFIX: %q holds a hash tag, which would put all %d shards in one slot; drop the braces", c.prefix, c.shards)
			}
			return nil
		},
	}
}

// open opens the Likes with o in this layout.
func (c *redisConfig) open(ctx context.Context, o store.LikesOptions) (*store.Likes, error) {
	o.Shards = c.shards
	return store.OpenLikes(ctx, c.url, c.prefix, o)
}

// shopConfig is the shop role's own settings.
type shopConfig struct {
	addr string
	// Likes a second allowed per shopper and per client address, with
	// bursts of twice that; 0 disables the limit.
	likeRatePerShopper, likeRatePerIP int
	// New shopper ids a minute per client address, with bursts of
	// shopperBurst times that; 0 disables the limit.
	shopperRatePerIP int
	// durability is PHOENIX_LIKE_DURABILITY: what a Like waits for before
	// it answers saved; waitTimeout bounds the wait for a replica.
	durability  string
	waitTimeout time.Duration
}

// shopperBurst is how many times its per-minute rate of new shopper ids an
// address may take at once: with the default 60, an office or a carrier's
// NAT gets 600 new shoppers at once, then one a second.
const shopperBurst = 10

func (c *shopConfig) register(f *flags) {
	f.String(&c.addr, "shop-addr", "PHOENIX_SHOP_ADDR", ":8080", "shop listen address")
	f.Int(&c.likeRatePerShopper, "like-rate-per-shopper", "PHOENIX_LIKE_RATE_PER_SHOPPER", 10, "Likes a second per shopper, bursts of twice that (0: no limit)")
	// Off by default: many shoppers can share one address (an office, a
	// carrier's NAT, the load generator).
	f.Int(&c.likeRatePerIP, "like-rate-per-ip", "PHOENIX_LIKE_RATE_PER_IP", 0, "Likes a second per client address, bursts of twice that (0: no limit)")
	f.Int(&c.shopperRatePerIP, "shopper-rate-per-ip", "PHOENIX_SHOPPER_RATE_PER_IP", 60,
		fmt.Sprintf("new shopper ids a minute per client address, bursts of %d times that (0: no limit)", shopperBurst))
	f.String(&c.durability, "like-durability", "PHOENIX_LIKE_DURABILITY", string(store.DurabilityNone),
		"none: a Like is saved once the primary has it; replica: only once a replica confirms it (WAIT), else 503")
	f.Duration(&c.waitTimeout, "like-wait-timeout", "PHOENIX_LIKE_WAIT_TIMEOUT", store.DefaultWaitTimeout,
		"how long a Like waits for a replica under PHOENIX_LIKE_DURABILITY=replica")
}

func (c *shopConfig) checks() []func() error {
	return []func() error{
		checkAddr("PHOENIX_SHOP_ADDR", &c.addr),
		checkNonNegative("PHOENIX_LIKE_RATE_PER_SHOPPER", &c.likeRatePerShopper),
		checkNonNegative("PHOENIX_LIKE_RATE_PER_IP", &c.likeRatePerIP),
		checkNonNegative("PHOENIX_SHOPPER_RATE_PER_IP", &c.shopperRatePerIP),
		func() error {
			if d := store.Durability(c.durability); d != store.DurabilityNone && d != store.DurabilityReplica {
				return fmt.Errorf("PHOENIX_LIKE_DURABILITY: %q, want none or replica", c.durability)
			}
			return nil
		},
		func() error {
			if c.waitTimeout < time.Millisecond || c.waitTimeout > 10*time.Second {
				return fmt.Errorf("PHOENIX_LIKE_WAIT_TIMEOUT: %s, want 1ms to 10s", c.waitTimeout)
			}
			return nil
		},
	}
}

// likesOptions are the limits the shop's store checks in the Like script.
func (c *shopConfig) likesOptions(maxBacklog int) store.LikesOptions {
	var newShoppers store.Rate
	if c.shopperRatePerIP > 0 {
		newShoppers = store.Rate{Interval: time.Minute / time.Duration(c.shopperRatePerIP), Burst: shopperBurst * c.shopperRatePerIP}
	}
	return store.LikesOptions{
		PerShopper: store.PerSecond(c.likeRatePerShopper), PerIP: store.PerSecond(c.likeRatePerIP),
		NewShoppersPerIP: newShoppers, MaxBacklog: int64(maxBacklog),
		Durability: store.Durability(c.durability), WaitTimeout: c.waitTimeout,
	}
}

// checkNonNegative checks that a number is 0 or more.
func checkNonNegative(name string, n *int) func() error {
	return func() error {
		if *n < 0 {
			return fmt.Errorf("%s: %d is negative (0 disables)", name, *n)
		}
		return nil
	}
}

func runShop(ctx context.Context, e *env, args []string) error {
	return runRoles(ctx, e, "shop", args, shopRole())
}

// shopRole serves the catalog and the Like buttons, and reports its
// heartbeat into Redis, which also brings it the demo controls.
func shopRole() role {
	return role{
		uses:     usesRedis | usesSecret | usesEdge | usesCatalog | usesBacklog,
		register: func(c *allConfig, f *flags) []func() error { c.shop.register(f); return c.shop.checks() },
		open:     openShop,
	}
}

// shopBeatEvery is how often a shop reports its heartbeat into Redis.
const shopBeatEvery = 2 * time.Second

func openShop(ctx context.Context, m *Main) error {
	c := m.Config
	catalog, err := m.loadCatalog()
	if err != nil {
		return err
	}
	shoppers, err := handlers.NewShoppers([]byte(c.secret))
	if err != nil {
		return fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	csrf, err := handlers.NewCSRF([]byte(c.secret), "shop")
	if err != nil {
		return fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	// The limits live in Redis, so every shop replica shares them. The
	// catalog still renders without Redis; Likes answer 503 until it is back.
	likes, err := m.openLikes(ctx, c.shop.likesOptions(c.backlog.max))
	if err != nil {
		return err
	}
	// Demo controls reach the shop with its heartbeat; their faults go
	// into every Redis call the shop makes, before it is sent.
	faults := store.NewFaults()
	// Traced first, so that an injected fault shows in the script's span.
	if m.tracer != nil {
		if err := likes.Trace(m.tracer); err != nil {
			return err
		}
	}
	likes.Client().AddHook(faults.RedisHook(store.TargetShopRedis))
	metrics := handlers.NewMetrics(m.reg, "shop")
	app, err := m.webApp("shop", metrics)
	if err != nil {
		return err
	}
	health := m.health("shop", app, handlers.Check{Name: "redis", Ping: likes.Ping})
	(&handlers.Shop{
		Likes: likes, Catalog: catalog, Shoppers: shoppers, CSRF: csrf, Log: m.log,
		Instance: instanceName(m.env), SecureCookie: c.edge.secure, Metrics: metrics,
	}).Routes(app)
	if err := m.serve("shop", c.shop.addr, app, health); err != nil {
		return err
	}
	beat := m.beat(store.RoleShop, metrics.Counts)
	m.run(func(ctx context.Context) error {
		likes.Heartbeat(ctx, shopBeatEvery, beat, faults)
		return nil
	})
	return nil
}
