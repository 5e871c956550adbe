package main

import (
	"context"
	"strings"
	"testing"
)

// TestConfig_Refused: a bad setting stops start-up with one line naming it,
// before anything is opened.
func TestConfig_Refused(t *testing.T) {
	base := map[string]string{
		"PHOENIX_ADMIN_PASSWORD": "a-long-test-password-for-phoenix",
		"PHOENIX_SECRET":         strings.Repeat("s", 40),
		"PHOENIX_ADMIN_ADDR":     "127.0.0.1:0",
		"PHOENIX_SHOP_ADDR":      "127.0.0.1:0",
		"PHOENIX_METRICS_ADDR":   "off",
	}
	tests := []struct {
		name, cmd string
		in        map[string]string
		want      string
	}{
		{"short password", "admin", map[string]string{"PHOENIX_ADMIN_PASSWORD": "elevenchars"}, "PHOENIX_ADMIN_PASSWORD: missing or shorter than 12"},
		{"x-forwarded-for on the admin", "admin", map[string]string{"PHOENIX_PROXY_HEADER": "X-Forwarded-For", "PHOENIX_TRUSTED_PROXIES": "10.0.0.0/8"}, "PHOENIX_PROXY_HEADER: X-Forwarded-For is a list"},
		{"x-forwarded-for on the shop", "shop", map[string]string{"PHOENIX_PROXY_HEADER": "x-forwarded-for", "PHOENIX_TRUSTED_PROXIES": "10.0.0.1"}, "PHOENIX_PROXY_HEADER: x-forwarded-for is a list"},
		{"forwarded on all", "all", map[string]string{"PHOENIX_PROXY_HEADER": "Forwarded", "PHOENIX_TRUSTED_PROXIES": "10.0.0.1"}, "PHOENIX_PROXY_HEADER: Forwarded is a list"},
		{"header without proxies", "admin", map[string]string{"PHOENIX_PROXY_HEADER": "X-Real-IP"}, "set PHOENIX_TRUSTED_PROXIES too"},
		{"bad proxy", "admin", map[string]string{"PHOENIX_PROXY_HEADER": "X-Real-IP", "PHOENIX_TRUSTED_PROXIES": "ingress"}, `PHOENIX_TRUSTED_PROXIES: "ingress" is not`},
		{"bad login limit", "admin", map[string]string{"PHOENIX_ADMIN_LOGIN_LIMIT": "0"}, "PHOENIX_ADMIN_LOGIN_LIMIT"},
		{"bad backlog bound", "worker", map[string]string{"PHOENIX_MAX_BACKLOG": "-1"}, "PHOENIX_MAX_BACKLOG"},
		{"bad shards", "worker", map[string]string{"PHOENIX_REDIS_SHARDS": "0"}, "PHOENIX_REDIS_SHARDS"},
		{"shards with a tagged prefix", "shop", map[string]string{"PHOENIX_REDIS_SHARDS": "3", "PHOENIX_REDIS_PREFIX": "{phoenix}:"}, "PHOENIX_REDIS_PREFIX"},
		{"bad durability", "shop", map[string]string{"PHOENIX_LIKE_DURABILITY": "disk"}, "PHOENIX_LIKE_DURABILITY"},
		{"bad wait timeout", "shop", map[string]string{"PHOENIX_LIKE_WAIT_TIMEOUT": "0s"}, "PHOENIX_LIKE_WAIT_TIMEOUT"},
		{"consumer idle too short", "worker", map[string]string{"PHOENIX_WORKER_CONSUMER_IDLE": "1s"}, "PHOENIX_WORKER_CONSUMER_IDLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{}
			for k, v := range base {
				vars[k] = v
			}
			for k, v := range tt.in {
				vars[k] = v
			}
			var out syncBuffer
			e := &env{getenv: func(k string) string { return vars[k] }, stdout: &out, stderr: &out}
			err := runEnv(context.Background(), e, []string{tt.cmd})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("phoenix %s: got %v, want an error containing %q", tt.cmd, err, tt.want)
			}
		})
	}
}

// TestAdminConfig_GeneratedPassword: the password phoenix dev makes up
// passes the admin's own check.
func TestAdminConfig_GeneratedPassword(t *testing.T) {
	var c adminConfig
	if !c.generateSecrets() {
		t.Fatal("no password generated")
	}
	c.addr, c.loginLimit, c.loginAlert, c.staleAfter, c.liveStreams, c.liveStreamsPerSession = ":0", 5, 50, 1, 200, 4
	for _, check := range c.checks() {
		if err := check(); err != nil {
			t.Errorf("generated settings refused: %v", err)
		}
	}
}
