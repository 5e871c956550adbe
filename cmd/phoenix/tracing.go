package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"phoenix/telemetry"
)

// tracingFlushTimeout bounds the flush of the last spans at exit.
const tracingFlushTimeout = 5 * time.Second

// startTracing starts the tracing the OTEL_* variables ask for (see
// telemetry.Enabled), naming the process service. Off, the provider is nil
// and the roles install nothing. stop flushes the spans not yet sent. The
// provider is passed to each role; none is installed globally.
func startTracing(ctx context.Context, e *env, log *slog.Logger, service string) (_ trace.TracerProvider, stop func(), _ error) {
	if e.tracer != nil {
		return e.tracer, func() {}, nil
	}
	t, err := telemetry.Start(ctx, e.getenv, service)
	if err != nil || t == nil {
		return nil, func() {}, err
	}
	log.Info("tracing on", "service", service)
	return t.Provider(), func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
		defer cancel()
		if err := t.Shutdown(ctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}, nil
}
