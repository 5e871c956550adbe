package handlers_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"phoenix/handlers"
)

// TestHealth_ReadyMetric: phoenix_ready says what /readyz says, per role,
// as a dependency fails and as the server drains.
func TestHealth_ReadyMetric(t *testing.T) {
	var down error
	h := &handlers.Health{Checks: []handlers.Check{{Name: "redis", Ping: func(context.Context) error { return down }}}}
	app := fiber.New()
	h.Routes(app)
	reg := prometheus.NewRegistry()
	h.Export(reg, "shop")

	check := func(t *testing.T, wantStatus int, wantBody string, wantReady float64) {
		t.Helper()
		resp, err := app.Test(httptest.NewRequest("GET", "/readyz", nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus || strings.TrimSpace(string(body)) != wantBody {
			t.Errorf("/readyz = %d %q, want %d %q", resp.StatusCode, body, wantStatus, wantBody)
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if len(families) != 1 || families[0].GetName() != "phoenix_ready" || len(families[0].Metric) != 1 {
			t.Fatalf("gathered %v, want one phoenix_ready series", families)
		}
		m := families[0].Metric[0]
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "role" || l[0].GetValue() != "shop" {
			t.Errorf("labels %v, want role=shop", l)
		}
		if got := m.GetGauge().GetValue(); got != wantReady {
			t.Errorf("phoenix_ready = %v, want %v", got, wantReady)
		}
	}
	t.Run("ready", func(t *testing.T) { check(t, 200, "ready", 1) })
	t.Run("redis down", func(t *testing.T) {
		down = errors.New("connection refused")
		check(t, 503, "redis unreachable", 0)
		down = nil
	})
	t.Run("draining", func(t *testing.T) {
		h.Drain()
		check(t, 503, "shutting down", 0)
	})
}
