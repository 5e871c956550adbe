package store

import (
	"context"
	"strings"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceParent is the W3C traceparent of ctx's span when it is sampled, for
// the Like's event; "" otherwise, so that tracing off (or a request not
// sampled) writes nothing more into the stream.
func traceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c["traceparent"]
}

// validTraceParent accepts what traceParent writes: version 00, 55
// characters (the worker parses it fully when it links to it).
func validTraceParent(s string) bool {
	return len(s) == 55 && strings.HasPrefix(s, "00-")
}

// Trace adds a span, from tp, for every script the client runs (the Like,
// the new-shopper limit), alone or in a pipeline (the Like with WAIT):
// that is the Like's Redis call. Other commands (page reads, heartbeats,
// the worker's stream reads) get none, so that background calls do not
// start traces of their own. The span carries neither the command's text
// (its keys and arguments hold shopper ids) nor the caller's line (a stack
// walk per call).
func (s *Likes) Trace(tp trace.TracerProvider) error {
	isScript := func(c redis.Cmder) bool {
		n := c.Name()
		return n == "evalsha" || n == "eval"
	}
	return redisotel.InstrumentTracing(s.rdb, redisotel.WithTracerProvider(tp), redisotel.WithDialFilter(true),
		redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false),
		redisotel.WithCommandFilter(func(c redis.Cmder) bool { return !isScript(c) }),
		redisotel.WithCommandsFilter(func(cs []redis.Cmder) bool {
			for _, c := range cs {
				if isScript(c) {
					return false
				}
			}
			return true
		}))
}
