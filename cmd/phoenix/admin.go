package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"phoenix/handlers"
	"phoenix/store"
)

// Admin settings' limits.
const (
	minPasswordLen = 12
	sessionTTL     = 12 * time.Hour
)

// adminConfig is the admin role's own settings.
type adminConfig struct {
	addr       string
	password   string
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

// generateSecrets fills in a random password where none is set, for
// phoenix dev, and reports whether it made one up (which dev then prints,
// once); generateSecret does the same for PHOENIX_SECRET.
func (c *adminConfig) generateSecrets() bool {
	if c.password != "" {
		return false
	}
	c.password = rand.Text()[:16] // 80 random bits
	return true
}

// generateSecret fills in a random PHOENIX_SECRET where none is set.
func generateSecret(secret *string) {
	if *secret == "" {
		*secret = rand.Text() + rand.Text() // 2 × 130 random bits
	}
}

func runAdmin(ctx context.Context, e *env, args []string) error {
	return runRoles(ctx, e, "admin", args, adminRole())
}

// adminRole serves the admin dashboard, and reports its heartbeat into
// PostgreSQL, the one store it has.
func adminRole() role {
	return role{
		uses:     usesDatabase | usesSecret | usesEdge,
		register: func(c *allConfig, f *flags) []func() error { c.admin.register(f); return c.admin.checks() },
		open:     openAdmin,
	}
}

// adminBeatEvery is how often an admin reports its heartbeat.
const adminBeatEvery = 2 * time.Second

func openAdmin(ctx context.Context, m *Main) error {
	c := m.Config
	// An unreachable PostgreSQL: the dashboard says so and recovers by
	// itself when it is back.
	stats, err := m.openStats(ctx)
	if err != nil {
		return err
	}
	// Until the migrations are applied the admin is not ready: its login
	// limit and dashboard need the tables.
	applied := m.migrations(stats)
	sessions, err := handlers.NewSessions(c.admin.password, []byte(c.secret), sessionTTL, c.edge.secure)
	if err != nil {
		return fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	// CSRF tokens signed under the admin's own key: every admin replica
	// with the same secret accepts them, and no shop token passes.
	csrf, err := handlers.NewCSRF([]byte(c.secret), "admin")
	if err != nil {
		return fmt.Errorf("PHOENIX_SECRET: %w", err)
	}
	metrics := handlers.NewMetrics(m.reg, "admin")
	app, err := m.webApp("admin", metrics)
	if err != nil {
		return err
	}
	health := m.health("admin", app, handlers.Check{Name: "postgres", Ping: stats.Ping}, handlers.Check{Name: "migrations", Ping: func(context.Context) error {
		select {
		case <-applied:
			return nil
		default:
			return errors.New("not applied yet")
		}
	}})
	ac := c.admin
	if ac.demoShopURL == "" && m.addrs["shop"] != "" {
		ac.demoShopURL = localURL(m.addrs["shop"]) // the shop of this process
	}
	logins := store.NewLogins(stats, store.LoginLimits{PerClient: ac.loginLimit, Overall: ac.loginAlert, Window: time.Minute})
	dash := &handlers.Admin{
		Stats: stats, Sessions: sessions, Log: m.log, Instance: instanceName(m.env), StaleAfter: ac.staleAfter, CSRF: csrf, Demo: ac.demoControls,
		DemoLoad: ac.demoControls && ac.demoShopURL != "",
		Logins:   logins, LoginMetrics: handlers.NewLoginMetrics(m.reg),
		Live: &handlers.Live{Listen: stats.Listen, MaxStreams: ac.liveStreams, MaxPerSession: ac.liveStreamsPerSession},
	}
	dash.Routes(app)
	if err := m.serve("admin", ac.addr, app, health); err != nil {
		return err
	}
	beat := m.beat(store.RoleAdmin, func() map[string]int64 {
		counts := metrics.Counts()
		counts[store.CountStreams] = int64(dash.Live.Open())
		return counts
	})
	// The live streams end with ctx, before the server's shutdown waits
	// for open connections.
	m.run(dash.RunLive, func(ctx context.Context) error {
		store.Every(ctx, adminBeatEvery, func(ctx context.Context) {
			ctx, cancel := context.WithTimeout(ctx, adminBeatEvery)
			defer cancel()
			if err := stats.RecordBeats(ctx, []store.Beat{beat()}); err != nil {
				m.log.Debug("record heartbeat failed", "err", err)
			}
		})
		return nil
	})
	if dash.DemoLoad {
		load := &demoLoad{stats: stats, shopURL: ac.demoShopURL, owner: dash.Instance, log: m.log}
		m.run(func(ctx context.Context) error { load.run(ctx); return nil })
	}
	return nil
}
