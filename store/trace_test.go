package store_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"phoenix/store"
	"phoenix/testkit"
)

// TestLikes_TraceParent checks that a Like's event carries the request's
// traceparent exactly when the request is traced and sampled, so that
// tracing off (or a request not sampled) adds no bytes to the stream, and
// that ParseEvent reads it back.
func TestLikes_TraceParent(t *testing.T) {
	ctx := context.Background()
	sampled := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	}))
	unsampled := trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(sampled).WithTraceFlags(0))
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"Off", ctx, ""},
		{"NotSampled", unsampled, ""},
		{"Sampled", sampled, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			likes := testkit.Likes(t)
			if _, err := likes.Set(tc.ctx, store.LikeInput{Shopper: "0123456789abcdef0123456789abcdef", Product: "brake-pads", Action: store.ActionLike}); err != nil {
				t.Fatal(err)
			}
			msgs, err := likes.Client().XRange(ctx, likes.StreamKey(), "-", "+").Result()
			if err != nil || len(msgs) != 1 {
				t.Fatalf("stream: %v, %v; want one entry", msgs, err)
			}
			got, ok := msgs[0].Values["traceparent"]
			if tc.want == "" && ok {
				t.Fatalf("entry %v has a traceparent; want none", msgs[0].Values)
			}
			if tc.want != "" && got != tc.want {
				t.Fatalf("entry's traceparent %v, want %s", got, tc.want)
			}
			e, err := store.ParseEvent(msgs[0].ID, msgs[0].Values)
			if err != nil {
				t.Fatal(err)
			}
			if e.TraceParent != tc.want {
				t.Errorf("parsed traceparent %q, want %q", e.TraceParent, tc.want)
			}
		})
	}
}

// TestParseEvent_TraceParent checks that a bad traceparent costs the event
// its link, never the event.
func TestParseEvent_TraceParent(t *testing.T) {
	for _, tp := range []any{"junk", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", 42} {
		e, err := store.ParseEvent("1-0", map[string]any{"product": "brake-pads", "shopper": "0123456789abcdef0123456789abcdef",
			"action": "like", "at": "1700000000123", "likes": "1", "traceparent": tp})
		if err != nil {
			t.Errorf("traceparent %v: %v; want the event without it", tp, err)
		} else if e.TraceParent != "" {
			t.Errorf("traceparent %v kept as %q", tp, e.TraceParent)
		}
	}
}
