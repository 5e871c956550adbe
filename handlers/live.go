package handlers

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"golang.org/x/sync/errgroup"
)

// Live defaults, used when the fields are zero.
const (
	defaultMaxStreams    = 200
	defaultMaxPerSession = 4
	defaultPushInterval  = 250 * time.Millisecond // at most 4 pushes a second
	defaultSSEHeartbeat  = 15 * time.Second
	defaultRecheck       = 2 * time.Second // the flow view greys a replica by time alone
	streamWriteTimeout   = 10 * time.Second
	sseRetry             = 2 * time.Second
	versionDown          = "down" // the data version while PostgreSQL cannot be read
)

// Live pushes the dashboard's changed fragments to the browsers that hold
// its Server-Sent Events stream (GET /admin/live). One Listen per process
// learns of new data from PostgreSQL; Admin.RunLive coalesces the
// notifications to at most one push per Interval and fans them out.
type Live struct {
	// Listen calls changed whenever the statistics may have changed
	// (store.Stats.Listen), until ctx is done.
	Listen        func(ctx context.Context, changed func()) error
	MaxStreams    int           // open streams in this process; beyond: 503
	MaxPerSession int           // open streams per admin session; beyond: 429
	Interval      time.Duration // the least time between two pushes
	Heartbeat     time.Duration // a comment this often, so dead clients are noticed
	Recheck       time.Duration // re-read the version this often without a notification

	mu        sync.Mutex
	stopped   bool          // RunLive has returned
	version   string        // the data version last read
	changed   chan struct{} // closed, and replaced, when version changes
	done      chan struct{} // closed when RunLive returns
	open      int
	bySession map[string]int

	renderMu     sync.Mutex            // one render at a time; held without mu
	cache        map[string][]sseEvent // fragments at cacheVersion, by dashboard query
	cacheVersion string
}

// sseEvent is one fragment to push: the event name, which the page's
// sse-swap attribute names, and the HTML.
type sseEvent struct {
	name string
	html []byte
}

// maxRendered bounds the render cache, should many queries be watched.
const maxRendered = 1000

// liveFragments are the dashboard's fragments, in the order they are pushed.
var liveFragments = []string{"flow", "worker", "totals", "chart", "categories", "products"}

// RunLive follows the data version until ctx is done, then ends every open
// stream, so that a shutdown does not wait for them.
func (h *Admin) RunLive(ctx context.Context) error {
	l := h.Live
	defer func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.setUp()
		l.stopped = true
		close(l.done)
	}()
	notes := make(chan struct{}, 1)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return l.Listen(gctx, func() {
			select {
			case notes <- struct{}{}:
			default: // one pending note stands for any number
			}
		})
	})
	g.Go(func() error { h.followVersion(gctx, notes); return nil })
	return g.Wait()
}

// followVersion re-reads the data version after each note (and every
// Recheck, since time alone changes it: the minute, an overdue worker),
// then waits Interval, so that a burst of notes costs one push.
func (h *Admin) followVersion(ctx context.Context, notes <-chan struct{}) {
	l := h.Live
	recheck := time.NewTicker(cmp.Or(l.Recheck, defaultRecheck))
	defer recheck.Stop()
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		h.readVersion(ctx)
		select {
		case <-ctx.Done():
			return
		case <-notes:
		case <-recheck.C:
		}
		pause.Reset(cmp.Or(l.Interval, defaultPushInterval))
		select {
		case <-ctx.Done():
			return
		case <-pause.C:
		}
	}
}

// readVersion reads the data version and, if it changed, wakes the streams.
func (h *Admin) readVersion(ctx context.Context) {
	v, err := h.dataVersion(ctx)
	if err != nil || h.dash().Down() {
		v = versionDown // the fragments then carry the stale notices
	}
	l := h.Live
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setUp()
	if v != l.version {
		l.version = v
		close(l.changed)
		l.changed = make(chan struct{})
	}
}

// liveURL is the stream's URL for the dashboard at q, carrying the data
// version the page shows, so that the stream sends only what changes
// after it. "" without a live stream: the page polls.
func (h *Admin) liveURL(ctx context.Context, q dashboardQuery) string {
	if h.Live == nil {
		return ""
	}
	v := q.values()
	if ver, err := h.dataVersion(ctx); err == nil && !h.dash().Down() {
		v.Set("since", ver)
	}
	return "/admin/live?" + v.Encode()
}

// Stream handles GET /admin/live?category=&q=&sort=&dir=&product=&since=:
// a Server-Sent Events stream of the fragments of the dashboard at that
// query that change, each event's id the data version. A reconnecting
// browser sends the last id it saw (Last-Event-ID), and gets only what
// changed since; since is that id for the first connection.
func (h *Admin) Stream(c *fiber.Ctx) error {
	q, err := parseDashboardQuery(c)
	if err != nil {
		return err
	}
	since := utils.CopyString(cmp.Or(c.Get("Last-Event-ID"), c.Query("since")))
	if len(since) > 64 {
		return refuse(fiber.StatusBadRequest, "error.bad_request")
	}
	release, err := h.Live.admit(sessionKey(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	c.Context().SetConnectionClose() // the connection ends with the stream; see clientGone
	// The fragments speak the page's language.
	conn, lang := c.Context().Conn(), langOf(c)
	views := liveViews{Views: lang.views, lang: lang.Code}
	ctx := context.WithoutCancel(c.UserContext()) // the handler's ctx ends when it returns
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer release()
		h.serveStream(ctx, w, conn, views, q, since)
	})
	return nil
}

// sessionKey identifies the admin session, for the per-session bound: the
// decrypted session cookie (its expiry tells logins apart).
func sessionKey(c *fiber.Ctx) string {
	sum := sha256.Sum256([]byte(c.Cookies(sessionCookie)))
	return hex.EncodeToString(sum[:8])
}

// admit counts a new stream against the bounds, or refuses it.
func (l *Live) admit(session string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.stopped:
		return nil, refuse(fiber.StatusServiceUnavailable, "error.live_unavailable")
	case l.open >= cmp.Or(l.MaxStreams, defaultMaxStreams):
		return nil, refuse(fiber.StatusServiceUnavailable, "error.live_full")
	case l.bySession[session] >= cmp.Or(l.MaxPerSession, defaultMaxPerSession):
		return nil, refuse(fiber.StatusTooManyRequests, "error.live_session_full")
	}
	if l.bySession == nil {
		l.bySession = map[string]int{}
	}
	l.open++
	l.bySession[session]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.open--
		if l.bySession[session]--; l.bySession[session] == 0 {
			delete(l.bySession, session)
		}
	}, nil
}

// setUp makes the channels on first use, so that a stream may open before
// RunLive starts (it waits for the first version). Call it with mu held.
func (l *Live) setUp() {
	if l.changed == nil {
		l.changed, l.done = make(chan struct{}), make(chan struct{})
	}
}

// Open returns the number of open streams.
func (l *Live) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// current returns the data version, the channel closed when it changes,
// and the channel closed when RunLive stops.
func (l *Live) current() (version string, changed, done <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setUp()
	return l.version, l.changed, l.done
}

// serveStream writes the stream until the client goes away or RunLive
// stops. sent holds a hash of each fragment as last sent, so an event
// carries only the fragments that differ.
func (h *Admin) serveStream(ctx context.Context, w *bufio.Writer, conn net.Conn, views liveViews, q dashboardQuery, since string) {
	l := h.Live
	gone := clientGone(conn)
	defer gone.stop()
	heartbeat := time.NewTicker(cmp.Or(l.Heartbeat, defaultSSEHeartbeat))
	defer heartbeat.Stop()
	flush := func() bool {
		// The server's write timeout is set once per response; a stream
		// extends it for each write, so only a stuck client times out.
		_ = conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		return w.Flush() == nil
	}
	_, _ = fmt.Fprintf(w, "retry: %d\n\n", sseRetry.Milliseconds()) // an error sticks; flush reports it
	if !flush() {
		return
	}
	sent := map[string][32]byte{}
	seen := ""
	for {
		version, changed, done := l.current()
		if version != "" && version != seen {
			events := h.fragmentsAt(ctx, views, q, version)
			for _, e := range events {
				sum := sha256.Sum256(e.html)
				if sent[e.name] == sum {
					continue
				}
				sent[e.name] = sum
				if version != since { // the page, or the browser, has it already
					writeEvent(w, e, version)
				}
			}
			seen, since = version, ""
			if !flush() {
				return
			}
		}
		select {
		case <-changed:
		case <-heartbeat.C:
			_, _ = w.WriteString(": keep-alive\n\n") // an error sticks; flush reports it
			if !flush() {
				return
			}
		case <-done:
			return
		case <-gone.c:
			return
		}
	}
}

// gone tells when the client has closed its side of a stream.
type gone struct {
	c    chan struct{}
	conn net.Conn
	wg   sync.WaitGroup
}

// clientGone reads the stream's connection, on which a browser sends
// nothing more, so that a closed EventSource (a tab closed, the dashboard
// swapped for a filtered one) frees its place at once rather than at the
// next failed write.
func clientGone(conn net.Conn) *gone {
	g := &gone{c: make(chan struct{}), conn: conn}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(g.c)
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				return
			}
		}
	}()
	return g
}

// stop ends the reader and waits for it.
func (g *gone) stop() {
	_ = g.conn.SetReadDeadline(time.Now())
	g.wg.Wait()
}

// writeEvent writes one fragment as an event; each line of the HTML is a
// data line, which the browser joins back with newlines. A write error
// sticks to w, and the flush after reports it.
func writeEvent(w *bufio.Writer, e sseEvent, id string) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "id: %s\nevent: %s\n", id, e.name)
	for line := range bytes.Lines(e.html) {
		b.WriteString("data: ")
		b.Write(bytes.TrimRight(line, "\r\n"))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, _ = w.Write(b.Bytes())
}

// liveViews are the templates of one language, named by its code.
type liveViews struct {
	fiber.Views
	lang string
}

// fragmentsAt renders the dashboard's fragments at q, once per data
// version, language and query however many streams show them.
func (h *Admin) fragmentsAt(ctx context.Context, views liveViews, q dashboardQuery, version string) []sseEvent {
	l := h.Live
	key := views.lang + " " + q.URL("")
	l.renderMu.Lock()
	defer l.renderMu.Unlock()
	if l.cacheVersion == version {
		if events, ok := l.cache[key]; ok {
			return events
		}
	}
	events := h.renderFragments(ctx, views, q)
	if l.cacheVersion != version || len(l.cache) >= maxRendered {
		l.cache, l.cacheVersion = map[string][]sseEvent{}, version
	}
	l.cache[key] = events
	return events
}

// renderFragments renders each live fragment of the dashboard at q, as the
// polled fragment handlers do. A fragment that fails to render is left
// out; its poll, or the next version, shows it.
func (h *Admin) renderFragments(ctx context.Context, views fiber.Views, q dashboardQuery) []sseEvent {
	table, err := h.products(ctx, q)
	parts := map[string]struct {
		name string
		data any
	}{
		"flow":       {"partials/flow", h.flow(ctx)},
		"worker":     {"partials/worker-status", h.worker(ctx)},
		"totals":     {"partials/stats-totals", h.totals(ctx)},
		"chart":      {"partials/stats-chart", h.chart(ctx, q, table.Options)},
		"categories": {"partials/stats-categories", h.categories(ctx)},
		"products":   {"partials/stats-products", table},
	}
	if err != nil { // q names a category or product gone from the data
		delete(parts, "products")
	}
	var out []sseEvent
	for _, name := range liveFragments {
		v, ok := parts[name]
		if !ok {
			continue
		}
		var buf bytes.Buffer
		if err := views.Render(&buf, v.name, v.data); err != nil {
			h.Log.Error("render live fragment", "fragment", name, "err", err)
			continue
		}
		out = append(out, sseEvent{name: name, html: buf.Bytes()})
	}
	return out
}
