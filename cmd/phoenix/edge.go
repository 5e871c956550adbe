package main

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"phoenix/handlers"
)

// edgeConfig is how browsers reach the web roles: through which reverse
// proxies, and whether over TLS. One process parses it once and every web
// role it runs (shop, admin) uses the same, so that they agree on the
// client's address and scheme: the admin's login compares the browser's
// Origin (https://… behind a TLS proxy) with the scheme it believes.
type edgeConfig struct {
	proxyHeader string
	trusted     string // comma-separated IPs or CIDRs
	secure      bool
}

func (c *edgeConfig) register(f *flags) {
	f.String(&c.proxyHeader, "proxy-header", "PHOENIX_PROXY_HEADER", "",
		"header carrying the client address, set by a trusted proxy to the peer it saw (e.g. X-Real-IP); X-Forwarded-For is refused")
	f.String(&c.trusted, "trusted-proxies", "PHOENIX_TRUSTED_PROXIES", "",
		"comma-separated proxy IPs or CIDRs whose proxy header and X-Forwarded-Proto are believed")
	f.Bool(&c.secure, "secure-cookies", "PHOENIX_SECURE_COOKIES", false,
		"mark cookies Secure and send HSTS (set when served over TLS or behind a TLS proxy)")
}

func (c *edgeConfig) checks() []func() error {
	return []func() error{func() error {
		for _, p := range c.trustedList() {
			if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
				return fmt.Errorf("PHOENIX_TRUSTED_PROXIES: %q is not an IP address or CIDR", p)
			}
		}
		switch h := strings.ToLower(strings.TrimSpace(c.proxyHeader)); {
		case h == "x-forwarded-for" || h == "forwarded":
			// A list header: its left end is whatever the client wrote, and
			// Fiber reads the left end. One address, set by the proxy, has
			// no such end.
			return fmt.Errorf("PHOENIX_PROXY_HEADER: %s is a list whose first address the client can write; have the proxy set X-Real-IP to the address it saw (nginx: proxy_set_header X-Real-IP $remote_addr) and name that", c.proxyHeader)
		case h != "" && c.trusted == "":
			return errors.New("PHOENIX_PROXY_HEADER: set PHOENIX_TRUSTED_PROXIES too, or the header is never believed")
		}
		return nil
	}}
}

func (c *edgeConfig) trustedList() []string {
	var out []string
	for _, p := range strings.Split(c.trusted, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// app fills in an app's proxy and TLS settings.
func (c edgeConfig) app(cfg handlers.AppConfig) handlers.AppConfig {
	cfg.Secure, cfg.ProxyHeader, cfg.TrustedProxies = c.secure, c.proxyHeader, c.trustedList()
	return cfg
}
