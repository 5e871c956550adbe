package worker

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"phoenix/store"
)

// TestTraceBatch checks the batch span: a child of the first traced
// event's request, linked to every traced event's request, a root span
// when no event was traced, and no span at all without a tracer.
func TestTraceBatch(t *testing.T) {
	const (
		a = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		b = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	batch := func(tps ...string) store.Batch {
		var bt store.Batch
		for i, tp := range tps {
			bt.Events = append(bt.Events, store.Event{ID: string(rune('1'+i)) + "-0", TraceParent: tp})
		}
		return bt
	}

	t.Run("OK", func(t *testing.T) {
		exp.Reset()
		w := &Sync{Tracer: tp}
		_, end := w.traceBatch(context.Background(), batch("", a, b))
		end()
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans, want 1 (a sampled parent keeps the batch even under NeverSample)", len(spans))
		}
		s := spans[0]
		if s.SpanKind != trace.SpanKindConsumer || s.Parent.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" ||
			s.Parent.SpanID().String() != "b7ad6b7169203331" || !s.Parent.IsRemote() {
			t.Errorf("span kind %v, parent %v; want a consumer span under the first traced request", s.SpanKind, s.Parent)
		}
		if len(s.Links) != 2 || s.Links[0].SpanContext.SpanID().String() != "b7ad6b7169203331" ||
			s.Links[1].SpanContext.SpanID().String() != "00f067aa0ba902b7" {
			t.Errorf("links %v, want one per traced event", s.Links)
		}
	})
	t.Run("NoTracedEvent", func(t *testing.T) {
		exp.Reset()
		always := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		defer func() { _ = always.Shutdown(context.Background()) }()
		_, end := (&Sync{Tracer: always}).traceBatch(context.Background(), batch("", ""))
		end()
		spans := exp.GetSpans()
		if len(spans) != 1 || spans[0].Parent.IsValid() || len(spans[0].Links) != 0 {
			t.Fatalf("spans %v; want one root span with no links", spans)
		}
	})
	t.Run("Off", func(t *testing.T) {
		ctx := context.Background()
		got, end := (&Sync{}).traceBatch(ctx, batch(a))
		end()
		if got != ctx {
			t.Error("tracing off changed the batch's context")
		}
	})
}
