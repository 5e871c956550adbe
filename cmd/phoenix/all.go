package main

import (
	"context"
	"fmt"
	"net"

	"phoenix/handlers"
)

// allConfig is a process's settings: those its roles share, each
// registered once, and each role's own.
type allConfig struct {
	log      logConfig
	ops      opsConfig
	edge     edgeConfig
	secret   string // PHOENIX_SECRET: signs shopper ids, CSRF tokens and the admin session
	catalog  string
	redis    redisConfig
	database databaseConfig
	backlog  backlogConfig
	shop     shopConfig
	worker   workerConfig
	admin    adminConfig

	roles []role // the roles the process runs
}

// register registers every role's settings, for phoenix all and dev.
func (c *allConfig) register(f *flags, logFormat string) []func() error {
	return c.registerRoles(f, logFormat, allRoles())
}

// registerRoles registers the settings of the roles given, the shared ones
// once, and returns their checks, which read the settings once parsed.
func (c *allConfig) registerRoles(f *flags, logFormat string, roles []role) []func() error {
	c.roles = roles
	var u uses
	for _, r := range roles {
		u |= r.uses
	}
	c.log.register(f, logFormat)
	c.ops.register(f)
	checks := c.ops.checks()
	for _, s := range []struct {
		uses     uses
		register func() []func() error
	}{
		{usesEdge, func() []func() error { c.edge.register(f); return c.edge.checks() }},
		{usesRedis, func() []func() error { c.redis.register(f); return c.redis.checks() }},
		{usesDatabase, func() []func() error {
			c.database.register(f)
			c.database.registerMigrate(f)
			return c.database.checks()
		}},
		{usesBacklog, func() []func() error { c.backlog.register(f); return c.backlog.checks() }},
		{usesCatalog, func() []func() error {
			f.String(&c.catalog, "catalog", "PHOENIX_CATALOG", "", "catalog JSON file (default: the embedded catalog)")
			return nil
		}},
		{usesSecret, func() []func() error { return []func() error{c.registerSecret(f)} }},
	} {
		if u&s.uses != 0 {
			checks = append(checks, s.register()...)
		}
	}
	for _, r := range roles {
		checks = append(checks, r.register(c, f)...)
	}
	return checks
}

// registerSecret adds PHOENIX_SECRET, which every web role needs.
func (c *allConfig) registerSecret(f *flags) func() error {
	f.String(&c.secret, "secret", "PHOENIX_SECRET", "", "secret of at least 32 bytes that signs shopper ids, CSRF tokens and the admin session cookie (required)")
	return func() error {
		if len(c.secret) < handlers.MinSecretLen {
			return fmt.Errorf("PHOENIX_SECRET: missing or shorter than %d bytes (try: openssl rand -base64 32)", handlers.MinSecretLen)
		}
		return nil
	}
}

// runAll runs every role in this process until ctx is done, with one
// metrics registry and scrape endpoint for all. A role that fails stops the
// others.
func runAll(ctx context.Context, e *env, args []string) error {
	return runRoles(ctx, e, "all", args, allRoles()...)
}

// localURL is the URL of a listen address from this machine: an address
// without a host (":8080") listens on every interface, loopback included.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}
