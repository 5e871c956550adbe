package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestAdmin_LiveStreamSettings(t *testing.T) {
	for _, name := range []string{"PHOENIX_LIVE_STREAMS", "PHOENIX_LIVE_STREAMS_PER_SESSION"} {
		t.Run(name, func(t *testing.T) {
			vars := map[string]string{
				"PHOENIX_ADMIN_PASSWORD": adminTestPassword, "PHOENIX_SECRET": "a-test-secret-that-is-at-least-32-bytes",
				"PHOENIX_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "PHOENIX_ADMIN_ADDR": "127.0.0.1:0", name: "0",
			}
			e := &env{getenv: func(k string) string { return vars[k] }, stdout: io.Discard, stderr: io.Discard}
			err := runEnv(context.Background(), e, []string{"admin"})
			if err == nil || !strings.Contains(err.Error(), name+":") {
				t.Fatalf("%s=0: got %v, want an error naming it", name, err)
			}
		})
	}
}
