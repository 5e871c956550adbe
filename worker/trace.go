package worker

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"phoenix/store"
)

// traceBatch starts the batch's span when the worker traces: a consumer
// span with a link to the request that produced each traced event. Its
// parent is the first of those requests, so that a trace viewer shows the
// Like's request, its Redis script, this batch and its PostgreSQL
// statements as one trace, and so that a parent-based sampler keeps the
// batch of every sampled Like (a batch sampled on its own, at 1 %, would
// leave the links of 99 % of sampled Likes pointing nowhere). With no
// traced event the batch is a root span, sampled as any. end ends the span.
func (w *Sync) traceBatch(ctx context.Context, b store.Batch) (_ context.Context, end func()) {
	if w.Tracer == nil {
		return ctx, func() {}
	}
	var links []trace.Link
	var parent trace.SpanContext
	for _, e := range b.Events {
		if e.TraceParent == "" {
			continue
		}
		sc := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
			propagation.MapCarrier{"traceparent": e.TraceParent}))
		if !sc.IsValid() {
			continue
		}
		if !parent.IsValid() {
			parent = sc
		}
		links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{
			attribute.String("messaging.message.id", e.ID)}})
	}
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	ctx, span := w.Tracer.Tracer("phoenix/worker").Start(ctx, "worker batch", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...), trace.WithAttributes(
			attribute.String("messaging.system", "redis"),
			attribute.String("messaging.operation.type", "process"),
			attribute.Int("messaging.batch.message_count", len(b.Events)),
			attribute.Int("phoenix.shard", b.Shard)))
	return ctx, func() { span.End() }
}
