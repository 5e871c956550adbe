package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"
)

// runHealthcheck asks the running roles of this container whether they are
// alive. The image has no shell or curl, so its HEALTHCHECK runs the binary.
func runHealthcheck(ctx context.Context, e *env, args []string) error {
	f := newFlags("healthcheck", e)
	var role, shopAddr, adminAddr, workerAddr, path string
	f.StringVar(&role, "role", "all", "which role runs here: all, shop, admin or worker")
	f.StringVar(&path, "path", "/healthz", "endpoint to ask: /healthz (alive) or /readyz (ready)")
	f.String(&shopAddr, "shop-addr", "PHOENIX_SHOP_ADDR", ":8080", "shop listen address")
	f.String(&adminAddr, "admin-addr", "PHOENIX_ADMIN_ADDR", ":8081", "admin listen address")
	f.String(&workerAddr, "worker-addr", "PHOENIX_WORKER_ADDR", ":8082", "worker listen address")
	if err := f.parse(args); err != nil {
		return err
	}
	addrs := map[string][]string{
		"all":    {shopAddr, adminAddr, workerAddr},
		"shop":   {shopAddr},
		"admin":  {adminAddr},
		"worker": {workerAddr},
	}[role]
	if addrs == nil {
		return fmt.Errorf("-role: %q is not all, shop, admin or worker", role)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, addr := range addrs {
		if err := check(ctx, client, addr, path); err != nil {
			return err
		}
	}
	fmt.Fprintln(e.stdout, "ok")
	return nil
}

// check asks one server on this host; a wildcard listen address is reached
// on loopback.
func check(ctx context.Context, client *http.Client, addr, path string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: bad address %q", addr)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	url := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", url, err)
	}
	_ = resp.Body.Close() // only the status matters
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck %s: status %d", url, resp.StatusCode)
	}
	return nil
}
