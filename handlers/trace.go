package handlers

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traced gives each request a server span from tp, continuing the W3C
// trace context of its traceparent header, and puts it in c.UserContext()
// so that the store calls made with it (the Like's script, the admin's
// queries) are its children. It runs outside observe, so that the span
// carries the status the error handler gave and observe's log line can
// carry its trace_id. Probes and assets get none: they are not what a
// trace is read for, and a probe every few seconds would be a trace each.
//
// A small middleware of our own rather than otelfiber: it is a dozen
// lines, takes the provider explicitly, and keeps the one order that gives
// the span the final status; otelfiber runs the error handler itself,
// which observe already does.
func traced(tp trace.TracerProvider) fiber.Handler {
	tracer := tp.Tracer("phoenix/handlers")
	prop := propagation.TraceContext{}
	return func(c *fiber.Ctx) error {
		p := c.Path()
		if strings.HasPrefix(p, "/assets/") || p == "/healthz" || p == "/readyz" || p == "/metrics" {
			return c.Next()
		}
		carrier := propagation.MapCarrier{}
		if v := c.Get("traceparent"); v != "" {
			carrier["traceparent"] = utils.CopyString(v)
			carrier["tracestate"] = utils.CopyString(c.Get("tracestate"))
		}
		ctx, span := tracer.Start(prop.Extract(c.UserContext(), carrier), "HTTP", trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		c.SetUserContext(ctx)
		err := c.Next()
		if !span.IsRecording() {
			// Not sampled: nothing it is given is kept, so give it nothing.
			return err
		}
		method := utils.CopyString(c.Method())
		route := c.Route().Path
		status := c.Response().StatusCode()
		span.SetName(method + " " + route)
		span.SetAttributes(attribute.String("http.request.method", method), attribute.String("http.route", route),
			attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		return err
	}
}
