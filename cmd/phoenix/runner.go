package main

import (
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"net"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"phoenix"
	"phoenix/handlers"
	"phoenix/store"
)

// role is one part of phoenix that a process can run. A new role is its
// own settings in allConfig, a role value and an entry in allRoles.
type role struct {
	uses uses // the shared settings it reads
	// register adds the role's own flags and returns their checks.
	register func(c *allConfig, f *flags) []func() error
	// open opens what the role needs, pushing each thing onto m's cleanup
	// stack, and hands m what runs.
	open func(ctx context.Context, m *Main) error
}

// uses lists the settings a role shares with others in its process; each
// is registered once, however many roles use it.
type uses uint8

const (
	usesRedis    uses = 1 << iota
	usesDatabase      // and -migrate: cmd applies the migrations before the role needs them
	usesSecret
	usesEdge
	usesCatalog
	usesBacklog
)

// allRoles is every role, in the order phoenix all opens them.
func allRoles() []role { return []role{shopRole(), workerRole(), adminRole()} }

// runRoles is a role command: it parses the flags of the roles given and
// runs them in one process until ctx is done.
func runRoles(ctx context.Context, e *env, name string, args []string, roles ...role) error {
	f := newFlags(name, e)
	var cfg allConfig
	if err := f.parse(args, cfg.registerRoles(f, "json", roles)...); err != nil {
		return err
	}
	service := "phoenix-" + name // the service its traces carry
	if name == "all" {
		service = "phoenix"
	}
	return runMain(ctx, e, service, cfg)
}

// runMain opens the configured roles, runs them until ctx is done and
// closes what they opened. service names the process in its traces.
func runMain(ctx context.Context, e *env, service string, cfg allConfig) error {
	log, err := cfg.log.logger(e.stderr)
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, env: e, log: log, reg: newRegistry(), applied: make(chan struct{})}
	if !cfg.database.migrate {
		close(m.applied)
	}
	defer m.Close()
	tracer, stopTracing, err := startTracing(ctx, e, log, service)
	if err != nil {
		return err
	}
	m.tracer = tracer
	m.onClose("tracing", func() error { stopTracing(); return nil }) // last: flushes the roles' last spans
	if err := m.Open(ctx); err != nil {
		return err
	}
	return m.Run(ctx)
}

// Main is one phoenix process, as wtf's cmd/wtfd has it: Open opens each
// role, Run runs them until the context is done, Close closes everything
// opened, last first. A per-process resource is one more entry on the
// cleanup stack.
type Main struct {
	Config allConfig

	env *env
	log *slog.Logger
	reg *prometheus.Registry

	closers []func()                      // the cleanup stack
	runs    []func(context.Context) error // what Run runs, together
	addrs   map[string]string             // role -> listen address
	catalog *store.Catalog                // loaded once, for every role
	schema  *store.Stats                  // applies the migrations in Run; nil: none to apply
	applied chan struct{}                 // closed once the migrations are applied
	tracer  trace.TracerProvider          // nil: tracing off
}

// onClose pushes close onto the cleanup stack. Close logs its error: by
// then the error worth returning is the one that stopped the process.
func (m *Main) onClose(name string, close func() error) {
	m.closers = append(m.closers, func() {
		if err := close(); err != nil {
			m.log.Warn("close "+name, "err", err)
		}
	})
}

// Close closes everything opened, last first.
func (m *Main) Close() {
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
	m.closers = nil
}

// Open opens each configured role in turn; on an error, Close closes what
// the earlier ones opened.
func (m *Main) Open(ctx context.Context) error {
	m.addrs = map[string]string{}
	for _, r := range m.Config.roles {
		if err := r.open(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// Run applies the migrations (when a role needs them), runs the roles until
// ctx is done and serves metrics until every role has stopped, so that a
// scrape during the shutdown still answers. A role that fails (or the
// metrics server) stops the others.
func (m *Main) Run(ctx context.Context) error {
	ms, err := listenMetrics(m.Config.ops.metricsAddr, m.reg, m.env, m.log)
	if err != nil {
		return fmt.Errorf("PHOENIX_METRICS_ADDR: %w", err)
	}
	rctx, stopRoles := context.WithCancel(ctx)
	defer stopRoles()
	mctx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	mdone := make(chan error, 1)
	go func() {
		err := ms.run(mctx)
		if err != nil {
			stopRoles()
		}
		mdone <- err
	}()
	g, gctx := errgroup.WithContext(rctx)
	if m.schema != nil {
		g.Go(func() error {
			if migrateUntilDone(gctx, m.log, m.schema) {
				close(m.applied)
			}
			return nil
		})
	}
	for _, run := range m.runs {
		g.Go(func() error { return run(gctx) })
	}
	err = g.Wait()
	stopMetrics()
	return errors.Join(err, <-mdone)
}

// run adds what a role runs until ctx is done.
func (m *Main) run(fns ...func(context.Context) error) { m.runs = append(m.runs, fns...) }

// openLikes opens the Likes with o, as opened opens a store.
func (m *Main) openLikes(ctx context.Context, o store.LikesOptions) (*store.Likes, error) {
	likes, err := m.Config.redis.open(ctx, o)
	return opened(m, "redis", "PHOENIX_REDIS_URL", likes, err)
}

// openStats opens PostgreSQL, as opened opens a store.
func (m *Main) openStats(ctx context.Context) (*store.Stats, error) {
	stats, err := store.OpenStats(ctx, m.Config.database.url, store.StatsOptions{Tracer: m.tracer})
	return opened(m, "postgres", "PHOENIX_DATABASE_URL", stats, err)
}

// opened pushes a store that opened onto the cleanup stack. A server that
// does not answer yet is logged, not fatal: the roles recover once it is
// back.
func opened[T interface{ Close() error }](m *Main, server, setting string, s T, err error) (T, error) {
	if errors.Is(err, store.ErrUnavailable) {
		m.log.Warn(server+" unreachable at start", "err", err)
	} else if err != nil {
		var none T
		return none, fmt.Errorf("%s: %w", setting, err)
	}
	m.onClose(server, s.Close)
	return s, nil
}

// migrations returns a channel closed once the migrations are applied
// (under -migrate=false, at once). The first role to ask hands the store
// that applies them, once, in Run.
func (m *Main) migrations(stats *store.Stats) <-chan struct{} {
	if m.schema == nil && m.Config.database.migrate {
		m.schema = stats
	}
	return m.applied
}

// loadCatalog loads the catalog once for every role of the process.
func (m *Main) loadCatalog() (*store.Catalog, error) {
	if m.catalog == nil {
		c, err := store.LoadCatalog(m.Config.catalog)
		if err != nil {
			return nil, fmt.Errorf("PHOENIX_CATALOG: %w", err)
		}
		m.catalog = c
	}
	return m.catalog, nil
}

// webApp builds a web role's app, with its proxy and TLS settings.
func (m *Main) webApp(name string, metrics *handlers.Metrics) (*fiber.App, error) {
	return handlers.NewApp(m.Config.edge.app(handlers.AppConfig{
		Name: name, Views: phoenix.Views(), Assets: phoenix.Assets(), Locales: phoenix.Locales(), Log: m.log,
		Instance: instanceName(m.env), Section: name, Metrics: metrics, Tracer: m.tracer,
	}))
}

// beat returns a role's heartbeat, with the counts it reports.
func (m *Main) beat(role string, counts func() map[string]int64) func() store.Beat {
	name, ver := replicaName(m.env), buildVersion()
	return func() store.Beat {
		return store.Beat{Role: role, Name: name, Version: ver, At: time.Now(), Counts: counts()}
	}
}

// health adds the health routes of a role to its app and exports its
// readiness.
func (m *Main) health(name string, app *fiber.App, checks ...handlers.Check) *handlers.Health {
	h := &handlers.Health{Checks: checks}
	h.Routes(app)
	h.Export(m.reg, name)
	return h
}

// serve listens on addr and adds the role's server to what Run runs.
func (m *Main) serve(name, addr string, app *fiber.App, health *handlers.Health) error {
	ln, err := listen(name, addr, m.env)
	if err != nil {
		return err
	}
	m.addrs[name] = ln.Addr().String()
	// Closed here only when a later role fails to open; else the server's
	// shutdown has closed it.
	m.onClose(name+" listener", func() error {
		if err := ln.Close(); !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	m.run((&server{role: name, serve: app.Listener, shutdown: app.ShutdownWithContext, ln: ln, health: health, log: m.log, drainDelay: m.Config.ops.drainDelay}).run)
	return nil
}
