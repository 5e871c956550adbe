package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"phoenix/handlers"
	"phoenix/store"
)

// liveFixture is an admin with a live stream, served on a real listener
// (app.Test cannot read a response that never ends).
type liveFixture struct {
	*adminFixture
	base   string
	cookie string
	stop   context.CancelFunc // stops RunLive
	done   chan error         // RunLive's result
	now    time.Time          // the admin's clock, which stands still
}

func newLive(t *testing.T, l *handlers.Live) *liveFixture {
	t.Helper()
	// A clock that moves would change the chart at each minute, a push
	// that no Like caused.
	now := time.Now()
	f := newAdmin(t, func(a *handlers.Admin) {
		a.Stats = a.Stats.At(func() time.Time { return now })
		l.Listen = a.Stats.Listen
		a.Live = l
	})
	seed(t, f.stats)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.app.Listener(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	lf := &liveFixture{adminFixture: f, base: "http://" + ln.Addr().String(), cookie: f.login(t), stop: cancel, done: make(chan error, 1), now: now}
	go func() { lf.done <- f.admin.RunLive(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-lf.done
		_ = f.app.ShutdownWithTimeout(5 * time.Second)
	})
	return lf
}

// sse is one event read from a stream.
type sse struct {
	id, name, data string
	comment        bool
}

// stream is an open live stream; events delivers what it reads, and is
// closed when the stream ends.
type stream struct {
	resp   *http.Response
	events chan sse
}

func (f *liveFixture) open(t *testing.T, query string, header map[string]string) (*http.Response, *stream) {
	t.Helper()
	req, err := http.NewRequest("GET", f.base+"/admin/live"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "phoenix_admin", Value: f.cookie})
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	s := &stream{resp: resp, events: make(chan sse, 100)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var e sse
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" || e.comment {
					e.data = strings.Join(data, "\n")
					s.events <- e
				}
				e, data = sse{}, nil
			case strings.HasPrefix(line, ":"):
				e.comment = true
			case strings.HasPrefix(line, "id: "):
				e.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	return resp, s
}

// mustOpen opens a stream that the server must accept.
func (f *liveFixture) mustOpen(t *testing.T, query string, header map[string]string) *stream {
	t.Helper()
	resp, s := f.open(t, query, header)
	if s == nil {
		t.Fatalf("GET /admin/live%s: status %d, want 200", query, resp.StatusCode)
	}
	return s
}

// next returns the stream's fragment events until none arrives for quiet.
func (s *stream) next(t *testing.T, quiet time.Duration) []sse {
	t.Helper()
	var out []sse
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				return out
			}
			if !e.comment {
				out = append(out, e)
			}
		case <-time.After(quiet):
			return out
		}
	}
}

// names lists the events' names.
func names(events []sse) string {
	var n []string
	for _, e := range events {
		n = append(n, e.name)
	}
	return strings.Join(n, ",")
}

// like records a Like at the admin's clock.
func (f *liveFixture) like(t *testing.T, id string) {
	t.Helper()
	_, err := f.stats.ApplyBatch(context.Background(), []store.Event{{ID: id, ProductID: "wiper", ShopperID: "s-" + id,
		Action: store.ActionLike, At: f.now, ShopperLikes: 1}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAdmin_Live(t *testing.T) {
	f := newLive(t, &handlers.Live{Interval: 50 * time.Millisecond})
	resp, s := f.open(t, "", nil)
	if s == nil {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "X-Accel-Buffering": "no", "Cache-Control": "no-store"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	first := s.next(t, time.Second)
	if got, want := names(first), "flow,worker,totals,chart,categories,products"; got != want {
		t.Fatalf("first events: got %s, want %s", got, want)
	}
	if !strings.Contains(first[2].data, `id="stats-totals"`) || !strings.Contains(first[2].data, `sse-swap="totals"`) {
		t.Errorf("totals event is not the totals fragment: %s", first[2].data)
	}
	version := first[0].id

	t.Run("a like pushes what it changed", func(t *testing.T) {
		f.like(t, "9-0")
		got := s.next(t, time.Second)
		// The worker's row did not change, so its fragment is not sent.
		if names(got) != "totals,chart,categories,products" {
			t.Fatalf("got %s, want totals,chart,categories,products", names(got))
		}
		if got[0].id == version {
			t.Errorf("event id %s did not change with the data", got[0].id)
		}
		if !strings.Contains(got[0].data, ">12<") { // 11 seeded net likes + 1
			t.Errorf("totals do not show 12 likes: %s", got[0].data)
		}
		version = got[0].id
	})
	t.Run("nothing changed, nothing sent", func(t *testing.T) {
		if got := s.next(t, 500*time.Millisecond); len(got) > 0 {
			t.Fatalf("got %s, want nothing", names(got))
		}
	})
	t.Run("since the current version", func(t *testing.T) {
		s2 := f.mustOpen(t, "?since="+version, nil)
		if got := s2.next(t, 500*time.Millisecond); len(got) > 0 {
			t.Fatalf("got %s, want nothing: the page has this version", names(got))
		}
		f.like(t, "9-1")
		if got := s2.next(t, time.Second); names(got) != "totals,chart,categories,products" {
			t.Fatalf("after a like: got %s", names(got))
		}
	})
	t.Run("reconnect with Last-Event-ID", func(t *testing.T) {
		// An old id: everything that differs now is sent (all of it, as
		// the stream does not know which fragments that version had).
		s3 := f.mustOpen(t, "?since=none", map[string]string{"Last-Event-ID": version})
		if got := s3.next(t, time.Second); len(got) == 0 {
			t.Fatal("reconnect with an old id: got nothing")
		}
	})
	t.Run("query", func(t *testing.T) {
		s4 := f.mustOpen(t, "?category=Brakes&sort=name", nil)
		got := s4.next(t, time.Second)
		p := got[len(got)-1]
		if p.name != "products" || strings.Contains(p.data, "Wiper blade") || !strings.Contains(p.data, "Brake pads") {
			t.Fatalf("products for category Brakes: %s %s", p.name, p.data)
		}
	})
}

func TestAdmin_LiveCoalesces(t *testing.T) {
	const interval = 400 * time.Millisecond
	f := newLive(t, &handlers.Live{Interval: interval})
	s := f.mustOpen(t, "", nil)
	s.next(t, 500*time.Millisecond)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 40 {
		wg.Add(1)
		go func() { defer wg.Done(); f.like(t, fmt.Sprintf("8-%d", i)) }()
	}
	wg.Wait()
	got := s.next(t, 2*interval)
	ids := map[string]bool{}
	for _, e := range got {
		ids[e.id] = true
	}
	elapsed := time.Since(start)
	if max := int(elapsed/interval) + 1; len(ids) > max || len(ids) == 0 {
		t.Fatalf("40 batches in %v gave %d pushes, want 1..%d", elapsed, len(ids), max)
	}
	var last string
	for _, e := range got {
		if e.name == "totals" {
			last = e.data
		}
	}
	if !strings.Contains(last, ">51<") { // 11 + 40 likes
		t.Errorf("last totals do not show 51 likes: %s", last)
	}
}

func TestAdmin_LiveHeartbeat(t *testing.T) {
	f := newLive(t, &handlers.Live{Heartbeat: 100 * time.Millisecond})
	s := f.mustOpen(t, "", nil)
	deadline := time.After(3 * time.Second)
	for {
		select {
		case e := <-s.events:
			if e.comment {
				return
			}
		case <-deadline:
			t.Fatal("no heartbeat comment within 3 s")
		}
	}
}

func TestAdmin_LiveBounds(t *testing.T) {
	t.Run("per session", func(t *testing.T) {
		f := newLive(t, &handlers.Live{MaxPerSession: 2})
		for range 2 {
			if resp, _ := f.open(t, "", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
		}
		if resp, _ := f.open(t, "", nil); resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third stream of a session: status %d, want 429", resp.StatusCode)
		}
	})
	t.Run("overall", func(t *testing.T) {
		f := newLive(t, &handlers.Live{MaxStreams: 2, MaxPerSession: 10})
		var first *stream
		for range 2 {
			resp, s := f.open(t, "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			first = s
		}
		if resp, _ := f.open(t, "", nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("third stream: status %d, want 503", resp.StatusCode)
		}
		// A closed stream frees its place at once.
		first.resp.Body.Close()
		deadline := time.Now().Add(5 * time.Second)
		for f.admin.Live.Open() > 1 {
			if time.Now().After(deadline) {
				t.Fatalf("open streams: %d, want 1 after a client left", f.admin.Live.Open())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestAdmin_LiveRefuses(t *testing.T) {
	f := newLive(t, &handlers.Live{})
	tests := []struct {
		name   string
		query  string
		cookie string
		header map[string]string
		want   int
	}{
		{"no session", "", "none", nil, http.StatusSeeOther},
		{"bad sort", "?sort=evil", "", nil, http.StatusBadRequest},
		{"unknown product", "?product=%3Cscript%3E", "", nil, http.StatusBadRequest},
		{"huge Last-Event-ID", "", "", map[string]string{"Last-Event-ID": strings.Repeat("x", 100)}, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := *f
			if tt.cookie != "" {
				g.cookie = tt.cookie
			}
			resp, _ := g.open(t, tt.query, tt.header)
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusSeeOther && !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
				t.Errorf("redirect to %q, want the login form", resp.Header.Get("Location"))
			}
		})
	}
	t.Run("not running", func(t *testing.T) {
		f.stop()
		<-f.done
		f.done <- nil // for the cleanup
		if resp, _ := f.open(t, "", nil); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("got %d, want 503", resp.StatusCode)
		}
	})
}

func TestAdmin_LiveShutdown(t *testing.T) {
	f := newLive(t, &handlers.Live{})
	s := f.mustOpen(t, "", nil)
	s.next(t, 300*time.Millisecond)
	start := time.Now()
	f.stop()
	for range s.events { // drains until the server ends the stream
	}
	if err := f.app.ShutdownWithTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stream end and shutdown took %v, want well under the 10 s shutdown timeout", d)
	}
}
