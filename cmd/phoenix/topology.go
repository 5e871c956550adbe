package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"phoenix/supervise"
)

// topologyConfig is the shape of `phoenix dev -topology cluster`: many
// instances of each role behind one address, as in production, on one
// machine.
type topologyConfig struct {
	bin                    string // the phoenix binary every role runs
	dir                    string // data folder, emptied at start
	shops, admins, workers int
	shopPort, adminPort    int               // the proxy's HTTPS ports (0: free ports)
	vars                   map[string]string // settings every role gets
	log                    io.Writer         // copy of every child's output; may be nil
}

// topology is a running production-shaped mall: nginx terminating TLS in
// front of the shops and admins, the workers, a Redis Cluster of 3
// primaries with a replica each, and PostgreSQL. Every role is its own
// phoenix process, so that a fault test can kill -9 it.
type topology struct {
	cfg     topologyConfig
	vars    map[string]string // settings every role gets, with the servers' URLs
	pg      *supervise.Postgres
	cluster *supervise.Cluster
	workers []*supervise.Process
	shops   []*supervise.Process
	admins  []*supervise.Process
	addrs   map[*supervise.Process]string // the role's own listen address
	proxy   *supervise.Proxy
}

// topologyDefaults are the demo's settings: Likes spread over 6 shards on
// the 3 primaries, answered "saved" only once a replica holds them, behind
// a TLS proxy whose address the roles trust.
func topologyDefaults() map[string]string {
	return map[string]string{
		"PHOENIX_REDIS_SHARDS":      "6",
		"PHOENIX_LIKE_DURABILITY":   "replica",
		"PHOENIX_TRUSTED_PROXIES":   "127.0.0.1",
		"PHOENIX_PROXY_HEADER":      "X-Real-IP",
		"PHOENIX_SECURE_COOKIES":    "true",
		"PHOENIX_LOG_FORMAT":        "text",
		"PHOENIX_MIGRATE":           "false", // once, by phoenix migrate, before the roles start
		"PHOENIX_DEMO_CONTROLS":     "true",
		"PHOENIX_WORKER_CLAIM_IDLE": "2s", // a killed worker's entries move on soon
	}
}

// startTopology starts every part, servers first, then phoenix migrate, the
// workers, the shops, the admins and the proxy, each once ready. On error
// it stops what it started.
func startTopology(ctx context.Context, cfg topologyConfig) (_ *topology, err error) {
	t := &topology{cfg: cfg, vars: map[string]string{}, addrs: map[*supervise.Process]string{}}
	defer func() {
		if err != nil {
			_ = t.stop() // the start error says more
		}
	}()
	// A fresh data set each run: a cluster cannot be created over an old
	// one, and Redis and PostgreSQL must start out agreeing.
	if err := os.RemoveAll(cfg.dir); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if err := os.MkdirAll(cfg.dir, 0o750); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if t.pg, err = supervise.StartPostgres(ctx, supervise.PostgresOptions{Dir: filepath.Join(cfg.dir, "postgres")}); err != nil {
		return nil, err
	}
	if err := t.pg.CreateDatabase(ctx, "phoenix"); err != nil {
		return nil, err
	}
	t.cluster, err = supervise.StartCluster(ctx, supervise.ClusterOptions{
		Dir: filepath.Join(cfg.dir, "redis"), Primaries: 3, Replicas: 1,
		AppendOnly: true, AppendFsync: "everysec",
	})
	if err != nil {
		return nil, err
	}
	maps.Copy(t.vars, cfg.vars)
	t.vars["PHOENIX_REDIS_URL"] = t.cluster.URL()
	t.vars["PHOENIX_DATABASE_URL"] = t.pg.URL("phoenix")
	migrate, err := t.start(ctx, "migrate", "migrate", "")
	if err != nil {
		return nil, err
	}
	if err := migrate.Wait(ctx); err != nil {
		return nil, err
	}
	for _, g := range []struct {
		role, addrVar string
		n             int
		into          *[]*supervise.Process
	}{
		{"worker", "PHOENIX_WORKER_ADDR", cfg.workers, &t.workers},
		{"shop", "PHOENIX_SHOP_ADDR", cfg.shops, &t.shops},
		{"admin", "PHOENIX_ADMIN_ADDR", cfg.admins, &t.admins},
	} {
		for i := range g.n {
			p, err := t.start(ctx, g.role+"-"+strconv.Itoa(i+1), g.role, g.addrVar)
			if err != nil {
				return nil, err
			}
			*g.into = append(*g.into, p)
		}
	}
	t.proxy, err = supervise.StartProxy(ctx, supervise.ProxyOptions{
		Dir: filepath.Join(cfg.dir, "proxy"), Shops: t.roleAddrs(t.shops), Admins: t.roleAddrs(t.admins),
		ShopPort: cfg.shopPort, AdminPort: cfg.adminPort,
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// start runs `phoenix <role>` named name (its footer and log name), with
// addrVar (when set) on a free loopback port, and waits until its /readyz
// answers 200.
func (t *topology) start(ctx context.Context, name, role, addrVar string) (*supervise.Process, error) {
	env := make([]string, 0, len(t.vars)+3)
	for k, v := range t.vars {
		env = append(env, k+"="+v)
	}
	env = append(env, "PHOENIX_INSTANCE="+name, "PHOENIX_METRICS_ADDR=off")
	o := supervise.ProcessOptions{
		Name: name, Path: t.cfg.bin, Args: []string{role}, Dir: filepath.Join(t.cfg.dir, "logs"), Log: t.cfg.log,
	}
	addr := ""
	if addrVar != "" {
		port, err := supervise.FreePort()
		if err != nil {
			return nil, err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		env = append(env, addrVar+"="+addr)
		o.Ready = supervise.HTTPReady("http://" + addr + "/readyz")
	}
	o.Env = env
	p, err := supervise.StartProcess(ctx, o)
	if err != nil {
		return nil, err
	}
	t.addrs[p] = addr
	return p, nil
}

func (t *topology) roleAddrs(ps []*supervise.Process) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = t.addrs[p]
	}
	return out
}

// stop stops every part in the reverse order of start: the proxy first, so
// no request reaches a stopping role, the servers last, so the roles finish
// their batches.
func (t *topology) stop() error {
	var errs []error
	if t.proxy != nil {
		errs = append(errs, t.proxy.Stop())
	}
	for _, group := range [][]*supervise.Process{t.admins, t.shops, t.workers} {
		for _, p := range group {
			errs = append(errs, p.Stop())
		}
	}
	if t.cluster != nil {
		errs = append(errs, t.cluster.Stop())
	}
	if t.pg != nil {
		errs = append(errs, t.pg.Stop())
	}
	return errors.Join(errs...)
}

// banner tells where everything is and how to stop it.
func (t *topology) banner(w io.Writer, password string, generated bool) {
	fmt.Fprintf(w, "Phoenix topology is up (every role a process of its own, loopback only):\n")
	fmt.Fprintf(w, "  Shop:            %s/   (nginx, TLS; %s)\n", localhost(t.proxy.ShopURL()), strings.Join(t.names(t.shops), ", "))
	fmt.Fprintf(w, "  Admin dashboard: %s/admin   (nginx, TLS; %s)\n", localhost(t.proxy.AdminURL()), strings.Join(t.names(t.admins), ", "))
	if generated {
		fmt.Fprintf(w, "  Admin password:  %s\n  (generated for this run; set PHOENIX_ADMIN_PASSWORD to choose your own)\n", password)
	}
	fmt.Fprintf(w, "  Certificate:     %s (self-signed for localhost and 127.0.0.1)\n", t.proxy.CertFile())
	fmt.Fprintf(w, "  Workers:         %s\n", strings.Join(t.names(t.workers), ", "))
	fmt.Fprintf(w, "  Redis Cluster:   %s (3 primaries, 1 replica each)\n", strings.Join(t.cluster.Addrs(), " "))
	fmt.Fprintf(w, "  PostgreSQL:      127.0.0.1:%d\n", t.pg.Port())
	fmt.Fprintf(w, "  Logs:            %s\n", filepath.Join(t.cfg.dir, "logs"))
	fmt.Fprintf(w, "Stop: Ctrl-C (or kill -TERM %d): every process stops with it.\n", os.Getpid())
}

func (t *topology) names(ps []*supervise.Process) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name() + " " + t.addrs[p]
	}
	return out
}

// localhost writes a loopback URL with the name the certificate holds and
// a browser shows.
func localhost(u string) string { return strings.Replace(u, "://127.0.0.1:", "://localhost:", 1) }

// runTopology runs the topology until ctx is done, then stops it.
func runTopology(ctx context.Context, e *env, cfg allConfig, dir string, generated bool) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("topology: find the phoenix binary: %w", err)
	}
	tc := topologyConfig{bin: bin, dir: filepath.Join(dir, "topology"), shops: 2, admins: 2, workers: 2, vars: topologyDefaults()}
	if tc.shopPort, err = listenPort(cfg.shop.addr); err != nil {
		return fmt.Errorf("PHOENIX_SHOP_ADDR: %w", err)
	}
	if tc.adminPort, err = listenPort(cfg.admin.addr); err != nil {
		return fmt.Errorf("PHOENIX_ADMIN_ADDR: %w", err)
	}
	tc.vars["PHOENIX_ADMIN_PASSWORD"] = cfg.admin.password
	tc.vars["PHOENIX_SECRET"] = cfg.secret
	for _, k := range []string{"PHOENIX_REDIS_SHARDS", "PHOENIX_LIKE_DURABILITY", "PHOENIX_LOG_LEVEL"} {
		if v := e.getenv(k); v != "" {
			tc.vars[k] = v
		}
	}
	fmt.Fprintf(e.stdout, "Starting the topology under %s ...\n", tc.dir)
	t, err := startTopology(ctx, tc)
	if err != nil {
		return err
	}
	t.banner(e.stdout, cfg.admin.password, generated)
	<-ctx.Done()
	fmt.Fprintln(e.stdout, "Stopping the topology ...")
	return t.stop()
}

// listenPort returns the port of a listen address such as ":8080".
func listenPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(port)
}
