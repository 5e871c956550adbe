package main

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"phoenix/store"
	"phoenix/testkit"
)

// TestTracing_LikeToPostgres runs phoenix all with tracing on (an in-memory
// exporter instead of OTLP, every trace sampled), likes a part through the
// shop and checks that the Like makes one trace: the request's server span,
// its Redis script as a child, the worker's batch span as a child of the
// request with a link to it, and the batch's PostgreSQL statements as the
// batch's children; and that the request's log line carries its trace_id.
func TestTracing_LikeToPostgres(t *testing.T) {
	rs := testkit.RedisServer(t)
	pg := testkit.PostgresServer(t)
	if err := pg.CreateDatabase(context.Background(), "phoenix"); err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	vars := map[string]string{
		"PHOENIX_REDIS_URL":      rs.URL(),
		"PHOENIX_DATABASE_URL":   pg.URL("phoenix"),
		"PHOENIX_METRICS_ADDR":   "off",
		"PHOENIX_WORKER_BLOCK":   "50ms",
		"PHOENIX_ADMIN_PASSWORD": "a-long-test-password-for-phoenix",
		"PHOENIX_LOG_FORMAT":     "json", // the trace_id is looked for as JSON
		"PHOENIX_LOG_LEVEL":      "info",
	}
	p := startPhoenix(t, "all", vars, func(e *env) { e.tracer = tp })
	logs, shop := p.logs, p.addr("shop")

	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	id := cat.IDs()[0]
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	token, err := fetchCSRF(client, "http://"+shop+"/products/"+id)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.PostForm("http://"+shop+"/products/"+id+"/like", url.Values{"csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("like: status %d, want 303", resp.StatusCode)
	}

	// The request's span ends before its answer is written; the batch's
	// once the worker has applied and acknowledged it.
	var like, script, batch tracetest.SpanStub
	var sql []tracetest.SpanStub
	deadline := time.Now().Add(30 * time.Second)
	for {
		spans := exp.GetSpans()
		like = find(spans, func(s tracetest.SpanStub) bool { return s.Name == "POST /products/:id/like" })
		if like.SpanContext.IsValid() {
			batch = find(spans, func(s tracetest.SpanStub) bool {
				return s.Name == "worker batch" && s.SpanContext.TraceID() == like.SpanContext.TraceID()
			})
		}
		if batch.SpanContext.IsValid() {
			script = find(spans, func(s tracetest.SpanStub) bool {
				return s.Parent.SpanID() == like.SpanContext.SpanID() && strings.HasPrefix(s.Name, "evalsha")
			})
			sql = nil
			for _, s := range spans {
				if s.Parent.SpanID() == batch.SpanContext.SpanID() && strings.HasPrefix(s.Name, "sql.") {
					sql = append(sql, s)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no batch span in the Like's trace; spans: %v", names(spans))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if like.SpanKind != trace.SpanKindServer || !hasAttr(like, "http.response.status_code", "303") || !hasAttr(like, "http.route", "/products/:id/like") {
		t.Errorf("like span: kind %v, attributes %v; want a server span with route and status 303", like.SpanKind, like.Attributes)
	}
	if !script.SpanContext.IsValid() {
		t.Errorf("no Redis script span under the Like's request; spans: %v", names(exp.GetSpans()))
	}
	if batch.Parent.SpanID() != like.SpanContext.SpanID() {
		t.Errorf("batch span's parent %v, want the Like's request %v", batch.Parent.SpanID(), like.SpanContext.SpanID())
	}
	linked := false
	for _, l := range batch.Links {
		linked = linked || l.SpanContext.SpanID() == like.SpanContext.SpanID()
	}
	if !linked {
		t.Errorf("batch span's links %v: none to the Like's request %v", batch.Links, like.SpanContext.SpanID())
	}
	wrote := false
	for _, s := range sql {
		for _, a := range s.Attributes {
			// A drain's batch copies its history in; a batch that may hold
			// replays inserts it.
			v := a.Value.String()
			wrote = wrote || strings.Contains(v, "COPY like_events") || strings.Contains(v, "INSERT INTO like_events")
		}
	}
	if !wrote {
		t.Errorf("no PostgreSQL statement span writing the event under the batch; its children: %v", names(sql))
	}
	if want := `"trace_id":"` + like.SpanContext.TraceID().String() + `"`; !strings.Contains(logs.String(), want) {
		t.Errorf("no request log line with %s", want)
	}

	// The admin's dashboard: its queries are the children of its request.
	admin := p.addr("admin")
	token, err = fetchCSRF(client, "http://"+admin+"/login")
	if err != nil {
		t.Fatal(err)
	}
	resp, err = client.PostForm("http://"+admin+"/login", url.Values{"csrf": {token}, "password": {vars["PHOENIX_ADMIN_PASSWORD"]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	resp, err = client.Get("http://" + admin + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: status %d, want 200", resp.StatusCode)
	}
	spans := exp.GetSpans()
	dash := find(spans, func(s tracetest.SpanStub) bool { return s.Name == "GET /admin" })
	queries := find(spans, func(s tracetest.SpanStub) bool {
		return dash.SpanContext.IsValid() && s.Parent.SpanID() == dash.SpanContext.SpanID() && strings.HasPrefix(s.Name, "sql.conn.query")
	})
	if !queries.SpanContext.IsValid() {
		t.Errorf("no PostgreSQL query span under the dashboard's request; spans: %v", names(spans))
	}
}

func find(spans tracetest.SpanStubs, ok func(tracetest.SpanStub) bool) tracetest.SpanStub {
	for _, s := range spans {
		if ok(s) {
			return s
		}
	}
	return tracetest.SpanStub{}
}

func names(spans []tracetest.SpanStub) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key && a.Value.String() == value {
			return true
		}
	}
	return false
}
