package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"phoenix"
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
	addr    string
	catalog string
	// Likes a second allowed per shopper and per client address, with
	// bursts of twice that; 0 disables the limit.
	likeRatePerShopper, likeRatePerIP int
	// New shopper ids a minute per client address, with bursts of
	// shopperBurst times that; 0 disables the limit.
	shopperRatePerIP int
	// backlog bounds the events the stream may hold before Likes answer
	// 503 "busy". The worker registers that flag too, so runShop
	// registers it itself and phoenix all copies the worker's.
	backlog backlogConfig
	// durability is PHOENIX_LIKE_DURABILITY: what a Like waits for before
	// it answers saved; waitTimeout bounds the wait for a replica.
	durability  string
	waitTimeout time.Duration
	// secret is PHOENIX_SECRET, which signs shopper ids and CSRF tokens.
	// The admin registers that flag too, so runShop registers it itself
	// (with its check) and phoenix all copies the admin's.
	secret string
}

// shopperBurst is how many times its per-minute rate of new shopper ids an
// address may take at once: with the default 60, an office or a carrier's
// NAT gets 600 new shoppers at once, then one a second.
const shopperBurst = 10

func (c *shopConfig) registerSecret(f *flags) func() error {
	f.String(&c.secret, "secret", "PHOENIX_SECRET", "", "secret of at least 32 bytes that signs shopper ids and CSRF tokens (required)")
	return func() error {
		if len(c.secret) < handlers.MinSecretLen {
			return fmt.Errorf("PHOENIX_SECRET: missing or shorter than %d bytes (try: openssl rand -base64 32)", handlers.MinSecretLen)
		}
		return nil
	}
}

func (c *shopConfig) register(f *flags) {
	f.String(&c.addr, "shop-addr", "PHOENIX_SHOP_ADDR", ":8080", "shop listen address")
	f.String(&c.catalog, "catalog", "PHOENIX_CATALOG", "", "catalog JSON file (default: the embedded catalog)")
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
func (c *shopConfig) likesOptions() store.LikesOptions {
	var newShoppers store.Rate
	if c.shopperRatePerIP > 0 {
		newShoppers = store.Rate{Interval: time.Minute / time.Duration(c.shopperRatePerIP), Burst: shopperBurst * c.shopperRatePerIP}
	}
	return store.LikesOptions{
		PerShopper: store.PerSecond(c.likeRatePerShopper), PerIP: store.PerSecond(c.likeRatePerIP),
		NewShoppersPerIP: newShoppers, MaxBacklog: int64(c.backlog.max),
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
	f := newFlags("shop", e)
	var (
		lc logConfig
		oc opsConfig
		rc redisConfig
		sc shopConfig
		ec edgeConfig
	)
	lc.register(f, "json")
	oc.register(f)
	ec.register(f)
	rc.register(f)
	sc.register(f)
	sc.backlog.register(f)
	checkSecret := sc.registerSecret(f)
	checks := append(append(oc.checks(), ec.checks()...), rc.checks()...)
	checks = append(append(checks, sc.checks()...), sc.backlog.checks()...)
	if err := f.parse(args, append(checks, checkSecret)...); err != nil {
		return err
	}
	log, err := lc.logger(e.stderr)
	if err != nil {
		return err
	}
	tp, stopTracing, err := startTracing(ctx, e, log, "phoenix-shop")
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := newRegistry()
	shop, err := openShop(ctx, e, log, rc, sc, ops{reg: reg, drainDelay: oc.drainDelay, edge: ec, tracer: tp})
	if err != nil {
		return err
	}
	defer shop.close()
	return runRoles(ctx, e, log, oc, reg, shop.run)
}

// shopBeatEvery is how often a shop reports its heartbeat into Redis.
const shopBeatEvery = 2 * time.Second

// shopRole is a running shop: its Redis store, its HTTP server, and its
// heartbeat, which also brings it the demo controls.
type shopRole struct {
	*server
	likes  *store.Likes
	faults *store.Faults
	beat   func() store.Beat
}

func openShop(ctx context.Context, e *env, log *slog.Logger, rc redisConfig, sc shopConfig, o ops) (*shopRole, error) {
	catalog, err := store.LoadCatalog(sc.catalog)
	if err != nil {
		return nil, fmt.Errorf("PHOENIX_CATALOG: %w", err)
	}
	shoppers, err := handlers.NewShoppers([]byte(sc.secret))
	if err != nil {
		return nil, fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	csrf, err := handlers.NewCSRF([]byte(sc.secret), "shop")
	if err != nil {
		return nil, fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	// The limits live in Redis, so every shop replica shares them.
	likes, err := rc.open(ctx, sc.likesOptions())
	if errors.Is(err, store.ErrUnavailable) {
		// The catalog still renders without Redis; Likes answer 503 until it is back.
		log.Warn("redis unreachable at start", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("PHOENIX_REDIS_URL: %w", err)
	}
	// Demo controls reach the shop with its heartbeat; their faults go
	// into every Redis call the shop makes, before it is sent.
	faults := store.NewFaults()
	// Traced first, so that an injected fault shows in the script's span.
	if o.tracer != nil {
		if err := likes.Trace(o.tracer); err != nil {
			_ = likes.Close() // the error that stopped start-up is the one to report
			return nil, err
		}
	}
	likes.Client().AddHook(faults.RedisHook(store.TargetShopRedis))
	metrics := handlers.NewMetrics(o.reg, "shop")
	app, err := handlers.NewApp(o.edge.app(handlers.AppConfig{
		Name: "shop", Views: phoenix.Views(), Assets: phoenix.Assets(), Locales: phoenix.Locales(), Log: log,
		Instance: instanceName(e), Section: "shop", Metrics: metrics, Tracer: o.tracer,
	}))
	if err != nil {
		_ = likes.Close() // the error that stopped start-up is the one to report
		return nil, err
	}
	health := &handlers.Health{Checks: []handlers.Check{{Name: "redis", Ping: likes.Ping}}}
	health.Routes(app)
	health.Export(o.reg, "shop")
	(&handlers.Shop{
		Likes: likes, Catalog: catalog, Shoppers: shoppers, CSRF: csrf, Log: log,
		Instance: instanceName(e), SecureCookie: o.edge.secure, Metrics: metrics,
	}).Routes(app)
	ln, err := listen("shop", sc.addr, e)
	if err != nil {
		_ = likes.Close() // the error that stopped start-up is the one to report
		return nil, err
	}
	name, ver := replicaName(e), buildVersion()
	beat := func() store.Beat {
		return store.Beat{Role: store.RoleShop, Name: name, Version: ver, At: time.Now(), Counts: metrics.Counts()}
	}
	srv := &server{role: "shop", app: app, ln: ln, health: health, log: log, drainDelay: o.drainDelay}
	return &shopRole{server: srv, likes: likes, faults: faults, beat: beat}, nil
}

// run serves and reports the heartbeat until ctx is done.
func (s *shopRole) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.server.run(gctx) })
	g.Go(func() error {
		s.likes.Heartbeat(gctx, shopBeatEvery, s.beat, s.faults)
		return nil
	})
	return g.Wait()
}

func (s *shopRole) close() {
	if err := s.likes.Close(); err != nil {
		s.log.Warn("close redis", "err", err)
	}
}
