package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"phoenix"
	"phoenix/handlers"
	"phoenix/store"
)

// Admin settings' limits.
const (
	minPasswordLen = 12
	sessionTTL     = 12 * time.Hour
	maxMigrateWait = 30 * time.Second
)

// adminConfig is the admin role's own settings.
type adminConfig struct {
	addr       string
	password   string
	secret     string
	staleAfter time.Duration
	// Failed logins a minute: per client address (then 429), and of all
	// clients together (then a warning and a metric, no refusal).
	loginLimit, loginAlert int
	// liveStreams and liveStreamsPerSession bound the dashboard's open
	// live streams (beyond them, the page polls).
	liveStreams, liveStreamsPerSession int
	// demoControls enables the demo controls page; phoenix dev turns it on.
	demoControls bool
	// demoShopURL is where the demo's simulated shoppers go; phoenix dev
	// and phoenix all use their own shop.
	demoShopURL string
}

func (c *adminConfig) register(f *flags) {
	f.String(&c.addr, "admin-addr", "PHOENIX_ADMIN_ADDR", ":8081", "admin listen address")
	f.String(&c.password, "admin-password", "PHOENIX_ADMIN_PASSWORD", "", "the admin password (required)")
	f.String(&c.secret, "secret", "PHOENIX_SECRET", "", "secret of at least 32 bytes that protects the admin session cookie (required)")
	f.Int(&c.loginLimit, "admin-login-limit", "PHOENIX_ADMIN_LOGIN_LIMIT", 5,
		"failed logins a minute allowed per client address (the proxy header's, behind a proxy); then 429")
	f.Int(&c.loginAlert, "admin-login-alert", "PHOENIX_ADMIN_LOGIN_ALERT", 50,
		"failed logins a minute of all clients together past which a warning is logged and phoenix_admin_login_guessing_alerts_total rises")
	f.Int(&c.liveStreams, "live-streams", "PHOENIX_LIVE_STREAMS", 200, "live dashboard streams open at once in this process; beyond, 503 and the page polls")
	f.Int(&c.liveStreamsPerSession, "live-streams-per-session", "PHOENIX_LIVE_STREAMS_PER_SESSION", 4, "live dashboard streams per admin session; beyond, 429")
	f.Bool(&c.demoControls, "demo-controls", "PHOENIX_DEMO_CONTROLS", false, "serve /admin/demo: pause the workers and inject faults from the admin (on under phoenix dev)")
	f.String(&c.demoShopURL, "demo-shop-url", "PHOENIX_DEMO_SHOP_URL", "",
		"the shop's URL, for the simulated shoppers of the demo controls (phoenix dev and all: their own shop)")
	f.Duration(&c.staleAfter, "stale-after", "PHOENIX_STALE_AFTER", 30*time.Second, "show 'numbers may be stale' when the worker has not synced for this long")
}

// checks read the settings when they run, after the flags are parsed.
func (c *adminConfig) checks() []func() error {
	return []func() error{
		checkAddr("PHOENIX_ADMIN_ADDR", &c.addr),
		checkPositive("PHOENIX_ADMIN_LOGIN_LIMIT", &c.loginLimit),
		checkPositive("PHOENIX_ADMIN_LOGIN_ALERT", &c.loginAlert),
		func() error {
			if utf8.RuneCountInString(c.password) < minPasswordLen {
				return fmt.Errorf("PHOENIX_ADMIN_PASSWORD: missing or shorter than %d characters", minPasswordLen)
			}
			return nil
		},
		func() error {
			if len(c.secret) < handlers.MinSecretLen {
				return fmt.Errorf("PHOENIX_SECRET: missing or shorter than %d bytes (try: openssl rand -base64 32)", handlers.MinSecretLen)
			}
			return nil
		},
		func() error {
			if c.liveStreams < 1 {
				return errors.New("PHOENIX_LIVE_STREAMS: must be at least 1")
			}
			if c.liveStreamsPerSession < 1 {
				return errors.New("PHOENIX_LIVE_STREAMS_PER_SESSION: must be at least 1")
			}
			return nil
		},
		func() error {
			if c.demoShopURL == "" {
				return nil
			}
			return checkURL("PHOENIX_DEMO_SHOP_URL", &c.demoShopURL, "http", "https")()
		},
		func() error {
			if c.staleAfter <= 0 {
				return errors.New("PHOENIX_STALE_AFTER: must be a positive duration such as 30s")
			}
			return nil
		},
	}
}

// generateSecrets fills in a random password and secret where none is set,
// for phoenix dev, and reports whether it made up the password (which dev
// then prints, once).
func (c *adminConfig) generateSecrets() bool {
	if c.secret == "" {
		c.secret = rand.Text() + rand.Text() // 2 × 130 random bits
	}
	if c.password != "" {
		return false
	}
	c.password = rand.Text()[:16] // 80 random bits
	return true
}

func runAdmin(ctx context.Context, e *env, args []string) error {
	f := newFlags("admin", e)
	var (
		lc logConfig
		oc opsConfig
		dc databaseConfig
		ac adminConfig
		ec edgeConfig
	)
	lc.register(f, "json")
	oc.register(f)
	ec.register(f)
	dc.register(f)
	dc.registerMigrate(f)
	ac.register(f)
	if err := f.parse(args, append(append(append(oc.checks(), ec.checks()...), dc.checks()...), ac.checks()...)...); err != nil {
		return err
	}
	log, err := lc.logger(e.stderr)
	if err != nil {
		return err
	}
	tp, stopTracing, err := startTracing(ctx, e, log, "phoenix-admin")
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := newRegistry()
	admin, err := openAdmin(ctx, e, log, dc, ac, ops{reg: reg, drainDelay: oc.drainDelay, edge: ec, tracer: tp})
	if err != nil {
		return err
	}
	defer admin.close()
	return runRoles(ctx, e, log, oc, reg, admin.run)
}

// adminRole is a running admin: its PostgreSQL store and its HTTP server.
type adminRole struct {
	*server
	stats   *store.Stats
	dash    *handlers.Admin
	migrate bool
	// migrated is set once the migrations are applied; until then the admin
	// is not ready (its login limit and dashboard need the tables).
	migrated *atomic.Bool
	beat     func() store.Beat
	load     *demoLoad // nil: no simulated shoppers from here
}

// adminBeatEvery is how often an admin reports its heartbeat.
const adminBeatEvery = 2 * time.Second

func openAdmin(ctx context.Context, e *env, log *slog.Logger, dc databaseConfig, ac adminConfig, o ops) (*adminRole, error) {
	stats, err := store.OpenStats(ctx, dc.url, store.StatsOptions{Tracer: o.tracer})
	if errors.Is(err, store.ErrUnavailable) {
		// The dashboard says so and recovers by itself when PostgreSQL is back.
		log.Warn("postgres unreachable at start", "err", err)
	} else if err != nil {
		return nil, fmt.Errorf("PHOENIX_DATABASE_URL: %w", err)
	}
	sessions, err := handlers.NewSessions(ac.password, []byte(ac.secret), sessionTTL, o.edge.secure)
	if err != nil {
		_ = stats.Close() // the error that stopped start-up is the one to report
		return nil, fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	// CSRF tokens signed under the admin's own key: every admin replica
	// with the same secret accepts them, and no shop token passes.
	csrf, err := handlers.NewCSRF([]byte(ac.secret), "admin")
	if err != nil {
		_ = stats.Close() // the secret's error is the one to report
		return nil, fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	metrics := handlers.NewMetrics(o.reg, "admin")
	app, err := handlers.NewApp(o.edge.app(handlers.AppConfig{
		Name: "admin", Views: phoenix.Views(), Assets: phoenix.Assets(), Locales: phoenix.Locales(), Log: log,
		Instance: instanceName(e), Section: "admin", Metrics: metrics, Tracer: o.tracer,
	}))
	if err != nil {
		_ = stats.Close() // the error that stopped start-up is the one to report
		return nil, err
	}
	migrated := &atomic.Bool{}
	migrated.Store(!dc.migrate)
	health := &handlers.Health{Checks: []handlers.Check{{Name: "postgres", Ping: stats.Ping}, {Name: "migrations", Ping: func(context.Context) error {
		if !migrated.Load() {
			return errors.New("not applied yet")
		}
		return nil
	}}}}
	health.Routes(app)
	health.Export(o.reg, "admin")
	logins := store.NewLogins(stats, store.LoginLimits{PerClient: ac.loginLimit, Overall: ac.loginAlert, Window: time.Minute})
	dash := &handlers.Admin{
		Stats: stats, Sessions: sessions, Log: log, Instance: instanceName(e), StaleAfter: ac.staleAfter, CSRF: csrf, Demo: ac.demoControls,
		DemoLoad: ac.demoControls && ac.demoShopURL != "",
		Logins:   logins, LoginMetrics: handlers.NewLoginMetrics(o.reg),
		Live: &handlers.Live{Listen: stats.Listen, MaxStreams: ac.liveStreams, MaxPerSession: ac.liveStreamsPerSession},
	}
	dash.Routes(app)
	ln, err := listen("admin", ac.addr, e)
	if err != nil {
		_ = stats.Close() // the error that stopped start-up is the one to report
		return nil, err
	}
	srv := &server{role: "admin", app: app, ln: ln, health: health, log: log, drainDelay: o.drainDelay}
	name, ver := replicaName(e), buildVersion()
	beat := func() store.Beat {
		counts := metrics.Counts()
		counts[store.CountStreams] = int64(dash.Live.Open())
		return store.Beat{Role: store.RoleAdmin, Name: name, Version: ver, At: time.Now(), Counts: counts}
	}
	a := &adminRole{server: srv, stats: stats, dash: dash, migrate: dc.migrate, migrated: migrated, beat: beat}
	if dash.DemoLoad {
		a.load = &demoLoad{stats: stats, shopURL: ac.demoShopURL, owner: dash.Instance, log: log}
	}
	return a, nil
}

// run serves until ctx is done and, when asked to, applies the migrations
// alongside, retrying until PostgreSQL lets it.
func (a *adminRole) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if a.migrate {
		g.Go(func() error {
			if migrateUntilDone(gctx, a.log, a.stats) {
				a.migrated.Store(true)
			}
			return nil
		})
	}
	// The live streams end with ctx, before the server's shutdown waits
	// for open connections.
	g.Go(func() error { return a.dash.RunLive(gctx) })
	if a.load != nil {
		g.Go(func() error { a.load.run(gctx); return nil })
	}
	g.Go(func() error {
		// The admin reports straight into PostgreSQL, the one store it has.
		store.Every(gctx, adminBeatEvery, func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, adminBeatEvery)
			defer cancel()
			if err := a.stats.RecordBeats(ctx, []store.Beat{a.beat()}); err != nil {
				a.log.Debug("record heartbeat failed", "err", err)
			}
		})
		return nil
	})
	g.Go(func() error { return a.server.run(gctx) })
	return g.Wait()
}

// migrateUntilDone applies the migrations, retrying with back-off while
// they fail, until they succeed (true) or ctx is done (false).
func migrateUntilDone(ctx context.Context, log *slog.Logger, stats *store.Stats) bool {
	for wait := time.Second; ; wait = min(2*wait, maxMigrateWait) {
		mctx, cancel := context.WithTimeout(ctx, maxMigrateWait)
		err := stats.Migrate(mctx)
		cancel()
		if err == nil {
			log.Info("migrations applied")
			return true
		}
		log.Warn("migrations not applied, retrying", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}

func (a *adminRole) close() {
	if err := a.stats.Close(); err != nil {
		a.log.Warn("close postgres", "err", err)
	}
}
