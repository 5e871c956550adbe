package handlers

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/gofiber/fiber/v2/utils"
	"go.opentelemetry.io/otel/trace"
)

// requestIDKey is where Fiber's requestid middleware leaves the request id.
const requestIDKey = "requestid"

// maxRequestIDLen caps a request id taken from the client's X-Request-ID,
// so that a client cannot put kilobytes into every log line.
const maxRequestIDLen = 64

// requestID returns the id of this request ("" before the middleware ran).
func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

// observe logs each request once, with request_id, method, route, status
// and duration, and records it in m (nil: no metrics). It runs the error
// handler itself, so that the log line and the metrics see the status the
// client gets.
//
// Successful asset and health requests log at Debug: browsers fetch several
// assets per page and probes ask every few seconds, which at Info would bury
// the requests worth reading.
func observe(log *slog.Logger, m *Metrics) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		if err := c.Next(); err != nil {
			if herr := c.App().ErrorHandler(c, err); herr != nil {
				return herr
			}
		}
		d := time.Since(start)
		status := c.Response().StatusCode()
		route := c.Route().Path
		if c.Route().Method == "USE" && status == fiber.StatusNotFound {
			// Only a middleware saw it: no route matched.
			route = "unmatched"
		}
		// Copied: Fiber reuses the buffer behind c.Method(), and the
		// metrics keep their label values.
		method := utils.CopyString(c.Method())
		m.request(route, method, status, d)
		level := slog.LevelInfo
		if status < 400 && (strings.HasPrefix(route, "/assets") || route == "/healthz" || route == "/readyz") {
			level = slog.LevelDebug
		}
		// Only a traced request (see traced) has a span: tracing off adds
		// nothing to the line, nor an allocation to the request.
		if sc := trace.SpanContextFromContext(c.UserContext()); sc.IsValid() {
			log.LogAttrs(context.Background(), level, "request",
				slog.String("request_id", requestID(c)), slog.String("method", method), slog.String("route", route),
				slog.Int("status", status), slog.Duration("duration", d), slog.String("trace_id", sc.TraceID().String()))
			return nil
		}
		log.LogAttrs(context.Background(), level, "request",
			slog.String("request_id", requestID(c)), slog.String("method", method), slog.String("route", route),
			slog.Int("status", status), slog.Duration("duration", d))
		return nil
	}
}

// requestIDs gives each request an id with Fiber's requestid middleware:
// the one in X-Request-ID when a proxy sent one, else a new UUID. The id is
// echoed in X-Request-ID, so that a user's report can be found in the logs.
func requestIDs() fiber.Handler {
	assign := requestid.New(requestid.Config{ContextKey: requestIDKey})
	return func(c *fiber.Ctx) error {
		if len(c.Get(fiber.HeaderXRequestID)) > maxRequestIDLen {
			c.Request().Header.Del(fiber.HeaderXRequestID)
		}
		return assign(c)
	}
}
