package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"phoenix/loadgen"
	"phoenix/store"
	"phoenix/supervise"
	"phoenix/testkit"
)

// The HTTP experiments: each measures one thing and leaves its figures in
// results, which report.go words.

const (
	nShoppers = 4000 // shoppers of the wrk Like load (cookie and token fetched beforehand)
	freshRate = 5000 // Likes a second under which freshness is measured
	freshFor  = 15 * time.Second
	// liveStreams is how many idle live streams the bench opens.
	liveStreams = 200
)

// results is what the experiments measured.
type results struct {
	plain, oneRT, script, like, likeAlone, page, grid wrkResult
	catalogs                                          []catalogRow
	half                                              int // the fixed rate: half the Like maximum
	fixed, fixedAlone                                 *loadgen.Latencies
	fresh                                             freshResult
	live                                              liveResult
	idleRSS, peakRSS                                  int
	binSize                                           int64
}

// stage is what the experiments share: phoenix all, running with every
// protection on, and its shoppers.
type stage struct {
	phx              *proc
	env              []string // phoenix's settings, for a second shop
	base, admin      string   // the shop's and the admin's base URLs
	catalog          *store.Catalog
	ids              []string // the catalog's products; ids[0] is the probes' alone
	shoppers, probes []*loadgen.Shopper
	luaEnv           []string // where like.lua finds the shoppers
}

// experiment is one row of the table the bench runs in order.
type experiment struct {
	name string
	run  func(context.Context, *stage, *results) error
}

// experiments are the HTTP measurements against phoenix all, in order (a
// later one may use an earlier one's figures).
func (b *bench) experiments() []experiment {
	return []experiment{
		{"Like at full speed", b.likeMax},
		{"Like at a fixed rate", b.likeFixed},
		{"Like at full speed and at the fixed rate, shop alone", b.likeAlone},
		{"catalog page and grid", b.catalogPage},
		{"catalog by size and compression", b.catalogs},
		{"freshness", b.freshness},
		{"live dashboard", b.liveDashboard},
	}
}

// http measures the ceilings first (nothing else running), then starts
// phoenix all and runs the experiments against it.
func (b *bench) http(ctx context.Context, r *results) error {
	if err := b.ceilings(ctx, r); err != nil {
		return err
	}
	st, err := b.startStage(ctx, r)
	if err != nil {
		return err
	}
	defer st.phx.stop()
	for _, e := range b.experiments() {
		b.logf("%s", e.name)
		if err := e.run(ctx, st, r); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	info, err := os.Stat(b.phoenix)
	if err != nil {
		return err
	}
	r.binSize = info.Size()
	return nil
}

func (b *bench) lua(name string) string { return filepath.Join(b.here, "tools", "bench", name) }

// ceilings measures a plain Fiber GET, a POST with one Redis round trip and
// a POST running the Like's own script.
func (b *bench) ceilings(ctx context.Context, r *results) error {
	addrs, err := supervise.FreeAddrs(1)
	if err != nil {
		return err
	}
	caddr := addrs[0]
	ceil, err := b.start(ctx, "http://"+caddr+"/plain", b.ceiling, nil, "-addr", caddr, "-redis-url", b.redis.URL())
	if err != nil {
		return err
	}
	defer ceil.stop()
	if r.plain, err = b.wrkMedian(nil, "http://"+caddr+"/plain"); err != nil {
		return err
	}
	if r.oneRT, err = b.wrkMedian(nil, "-s", b.lua("post.lua"), "http://"+caddr+"/redis"); err != nil {
		return err
	}
	r.script, err = b.wrkMedian(nil, "-s", b.lua("post.lua"), "http://"+caddr+"/script")
	return err
}

// startStage starts phoenix all and fetches the shoppers.
func (b *bench) startStage(ctx context.Context, r *results) (*stage, error) {
	addrs, err := supervise.FreeAddrs(3)
	if err != nil {
		return nil, err
	}
	shopAddr, adminAddr, workerAddr := addrs[0], addrs[1], addrs[2]
	st := &stage{base: "http://" + shopAddr, admin: "http://" + adminAddr, env: []string{
		"PHOENIX_REDIS_URL=" + b.redis.URL(), "PHOENIX_DATABASE_URL=" + b.postgres.URL("phoenix"),
		"PHOENIX_SHOP_ADDR=" + shopAddr, "PHOENIX_ADMIN_ADDR=" + adminAddr, "PHOENIX_WORKER_ADDR=" + workerAddr,
		"PHOENIX_ADMIN_PASSWORD=" + benchPassword, "PHOENIX_SECRET=bench-secret-0123456789abcdef0123456789abcdef",
		"PHOENIX_SHOPPER_RATE_PER_IP=0", // every simulated shopper comes from 127.0.0.1
		"PHOENIX_LOG_FORMAT=json", "PHOENIX_LOG_LEVEL=info",
		// Limits sized for many shoppers behind one address (the load
		// generator): both rules are checked on every Like, none binds.
		"PHOENIX_LIKE_RATE_PER_SHOPPER=10", "PHOENIX_LIKE_RATE_PER_IP=1000000",
		// One session opens every measured live stream.
		"PHOENIX_LIVE_STREAMS=" + strconv.Itoa(liveStreams+10), "PHOENIX_LIVE_STREAMS_PER_SESSION=" + strconv.Itoa(liveStreams+10),
	}}
	if st.phx, err = b.start(ctx, st.base+"/readyz", b.phoenix, st.env, "all"); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			st.phx.stop()
		}
	}()
	time.Sleep(2 * time.Second)
	r.idleRSS = st.phx.rssKB()
	if st.catalog, err = store.DefaultCatalog(); err != nil {
		return nil, err
	}
	st.ids = st.catalog.IDs()
	shoppers, err := fetchShoppers(ctx, st.base, nShoppers+200)
	if err != nil {
		return nil, err
	}
	st.probes, st.shoppers = shoppers[nShoppers:], shoppers[:nShoppers]
	data := filepath.Join(b.dir, "shoppers.lua")
	if err := writeLuaData(data, st.shoppers, st.ids[1:]); err != nil {
		return nil, err
	}
	st.luaEnv, ok = []string{"BENCH_DATA=" + data}, true
	return st, nil
}

// likeMax measures Likes at full speed, sampling RSS meanwhile.
func (b *bench) likeMax(_ context.Context, st *stage, r *results) error {
	stopRSS := make(chan struct{})
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		for {
			select {
			case <-stopRSS:
				return
			case <-time.After(200 * time.Millisecond):
				r.peakRSS = max(r.peakRSS, st.phx.rssKB())
			}
		}
	}()
	var err error
	r.like, err = b.wrkMedian(st.luaEnv, "-s", b.lua("like.lua"), st.base)
	close(stopRSS)
	<-rssDone
	return err
}

// likeAlone measures Likes at full speed, then at the mall's fixed rate,
// on a phoenix shop of its own, whose Likes no worker moves into
// PostgreSQL on these cores (its keys have their own prefix, and no
// backlog bound refuses them): the Like as the ceilings measure it, and
// how much of the mall's tail latency its worker's batches cause.
func (b *bench) likeAlone(ctx context.Context, st *stage, r *results) error {
	shop, base, err := b.startShop(ctx, st.env, "PHOENIX_REDIS_PREFIX=bench-alone:", "PHOENIX_MAX_BACKLOG=0")
	if err != nil {
		return err
	}
	defer shop.stop()
	if r.likeAlone, err = b.wrkMedian(st.luaEnv, "-s", b.lua("like.lua"), base); err != nil {
		return err
	}
	shoppers := make([]*loadgen.Shopper, len(st.shoppers))
	for i, s := range st.shoppers {
		shoppers[i] = s.At(base)
	}
	r.fixedAlone, err = openLoop(ctx, shoppers, st.ids[1:], r.half, 10*time.Second)
	return err
}

// startShop starts a phoenix shop of its own with env and extra settings,
// and returns it with its base URL.
func (b *bench) startShop(ctx context.Context, env []string, extra ...string) (*proc, string, error) {
	addrs, err := supervise.FreeAddrs(2)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addrs[0]
	env = append(append(slices.Clone(env), "PHOENIX_SHOP_ADDR="+addrs[0], "PHOENIX_METRICS_ADDR="+addrs[1]), extra...)
	shop, err := b.start(ctx, base+"/readyz", b.phoenix, env, "shop")
	return shop, base, err
}

// likeFixed measures Likes at half the maximum, open loop, for 10 s.
func (b *bench) likeFixed(ctx context.Context, st *stage, r *results) error {
	r.half = int(r.like.rps / 2)
	var err error
	r.fixed, err = openLoop(ctx, st.shoppers, st.ids[1:], r.half, 10*time.Second)
	return err
}

// catalogPage measures the full catalog page and its htmx grid fragment.
func (b *bench) catalogPage(_ context.Context, st *stage, r *results) error {
	cookie := "Cookie: " + st.shoppers[0].Cookie()
	var err error
	if r.page, err = b.wrkMedian(nil, "-H", cookie, st.base+"/"); err != nil {
		return err
	}
	r.grid, err = b.wrkMedian(nil, "-H", cookie, "-H", "HX-Request: true", "-H", "HX-Target: product-grid",
		"-H", "HX-Current-URL: "+st.base+"/", st.base+"/")
	return err
}

// freshness times Likes into product_counters under a sustained load.
func (b *bench) freshness(ctx context.Context, st *stage, r *results) error {
	var err error
	r.fresh, err = freshness(ctx, b.postgres.URL("phoenix"), st.shoppers, st.probes, st.ids[0], st.ids[1:], freshRate, freshFor)
	return err
}

// liveDashboard times Likes into a live dashboard's stream under the same
// load, and the cost of idle streams.
func (b *bench) liveDashboard(ctx context.Context, st *stage, r *results) error {
	probes, err := fetchShoppers(ctx, st.base, 200)
	if err != nil {
		return err
	}
	r.live, err = liveFreshness(ctx, st.phx, st.admin, benchPassword, st.shoppers, probes,
		st.ids[0], st.catalog.Products()[0].Name, st.ids[1:], freshRate, liveStreams, freshFor)
	return err
}

// catalogRow is one wrk figure of the catalog.
type catalogRow struct {
	name, cmdline string
	res           wrkResult
}

// catalogs measures a catalog page and a one-part search with the embedded
// catalog (the shop at base) and with a generated 10,000-part one (a second
// shop, started here), each plain and, for the embedded one, compressed.
func (b *bench) catalogs(ctx context.Context, st *stage, r *results) error {
	var err error
	r.catalogs, err = b.catalogRows(ctx, st.env, st.base, st.shoppers[0], st.catalog)
	return err
}

func (b *bench) catalogRows(ctx context.Context, env []string, base string, s *loadgen.Shopper, small *store.Catalog) ([]catalogRow, error) {
	big, doc, err := testkit.GenerateCatalog(10000)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(b.dir, "catalog-10000.json")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		return nil, err
	}
	shop, bigBase, err := b.startShop(ctx, env, "PHOENIX_CATALOG="+file)
	if err != nil {
		return nil, err
	}
	defer shop.stop()
	one := map[string]string{"48": url.QueryEscape(small.Products()[7].Name), "10000": url.QueryEscape(testkit.CatalogPart(4242))}
	for name, c := range map[string]*store.Catalog{"48": small, "10000": big} {
		q, _ := url.QueryUnescape(one[name])
		if n := c.Search("", q).Len(); n != 1 {
			return nil, fmt.Errorf("catalog of %s: %q finds %d parts, want 1", name, q, n)
		}
	}
	var rows []catalogRow
	for _, m := range []struct {
		name, base, path, parts string
		header                  []string
	}{
		{"catalog page 1, 10,000 parts", bigBase, "/", "10000", nil},
		{"catalog page 2 by load more (htmx), 10,000 parts", bigBase, "/?page=2", "10000",
			[]string{"HX-Request: true", "HX-Target: product-cards", "HX-Current-URL: http://shop/"}},
		{"search for one part, 48 parts", base, "/?q=" + one["48"], "48", nil},
		{"search for one part, 10,000 parts", bigBase, "/?q=" + one["10000"], "10000", nil},
		{"catalog page 1, 48 parts, Accept-Encoding: br", base, "/", "48", []string{"Accept-Encoding: br"}},
		{"catalog page 1, 48 parts, Accept-Encoding: gzip", base, "/", "48", []string{"Accept-Encoding: gzip"}},
	} {
		args := []string{"-H", "Cookie: " + s.Cookie()}
		shown := "wrk " + wrkArgs + " -H 'Cookie: …'"
		for _, h := range m.header {
			args = append(args, "-H", h)
			shown += " -H '" + h + "'"
		}
		r, err := b.wrkMedian(nil, append(args, m.base+m.path)...)
		if err != nil {
			return nil, err
		}
		rows = append(rows, catalogRow{name: m.name, res: r, cmdline: shown + " http://shop-" + m.parts + m.path})
	}
	return rows, nil
}

// fetchShoppers visits the catalog as n new shoppers, eight at a time, and
// keeps what each was given (cookie and CSRF token).
func fetchShoppers(ctx context.Context, base string, n int) ([]*loadgen.Shopper, error) {
	out := make([]*loadgen.Shopper, n)
	t := loadgen.NewTransport(512, 5*time.Second)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		out[i] = loadgen.NewShopper(base, t, 5*time.Second)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := out[i].Arrive(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return out, <-errs
}

func writeLuaData(path string, shoppers []*loadgen.Shopper, ids []string) error {
	var sb strings.Builder
	sb.WriteString("shoppers = {\n")
	for _, s := range shoppers {
		fmt.Fprintf(&sb, "{%q, %q},\n", s.Cookie(), s.Token)
	}
	sb.WriteString("}\nproducts = {")
	for _, id := range ids {
		fmt.Fprintf(&sb, "%q, ", id)
	}
	sb.WriteString("}\n")
	return os.WriteFile(path, []byte(sb.String()), 0o600)
}

// likeRequest sends one htmx Like or Unlike and fails on any other status
// than 200.
func likeRequest(ctx context.Context, s *loadgen.Shopper, id string, like bool) error {
	_, status, err := s.Set(ctx, id, like)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("like=%v %s: status %d", like, id, status)
	}
	return err
}

// openLoop sends Likes at a fixed rate for d, whatever the answers' pace
// (an open loop), and measures each from its scheduled send time. The
// Likes follow like.lua's pattern, starting where it is unlikely to be.
func openLoop(ctx context.Context, shoppers []*loadgen.Shopper, ids []string, rate int, d time.Duration) (*loadgen.Latencies, error) {
	tickets := loadgen.Schedule(ctx, rate, int(float64(rate)*d.Seconds()), 100000)
	res := &loadgen.Latencies{}
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range tickets {
				s := shoppers[t.N%len(shoppers)]
				round := t.N / len(shoppers)
				err := likeRequest(ctx, s, ids[(round/2+len(ids)/2)%len(ids)], round%2 == 0)
				res.Add(time.Since(t.Due), err)
			}
		}()
	}
	wg.Wait()
	return res, ctx.Err()
}

type freshResult struct{ load, probe *loadgen.Latencies }

// freshness runs a fixed-rate Like load on ids and, meanwhile, one probe
// Like at a time on probeID (which the load leaves alone) by a new shopper,
// timing each from its confirmation until product_counters counts it.
func freshness(ctx context.Context, dbURL string, shoppers, probes []*loadgen.Shopper, probeID string, ids []string, rate int, d time.Duration) (freshResult, error) {
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return freshResult{}, err
	}
	defer db.Close()
	count := func() (int64, error) {
		var n int64
		err := db.QueryRowContext(ctx, "SELECT coalesce((SELECT likes FROM product_counters WHERE product_id = $1), 0)", probeID).Scan(&n)
		return n, err
	}
	res := freshResult{probe: &loadgen.Latencies{}}
	loadDone := make(chan error, 1)
	go func() {
		l, err := openLoop(ctx, shoppers, ids, rate, d)
		res.load = l
		loadDone <- err
	}()
	time.Sleep(time.Second) // let the load settle
	deadline := time.Now().Add(d - 2*time.Second)
	for _, s := range probes {
		if time.Now().After(deadline) {
			break
		}
		before, err := count()
		if err != nil {
			return res, err
		}
		if err := likeRequest(ctx, s, probeID, true); err != nil {
			res.probe.Add(0, err)
			continue
		}
		confirmed := time.Now()
		for {
			n, err := count()
			if err != nil {
				return res, err
			}
			if n > before {
				res.probe.Add(time.Since(confirmed), nil)
				break
			}
			if time.Since(confirmed) > 10*time.Second {
				res.probe.Add(0, fmt.Errorf("like not synced after 10 s"))
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return res, <-loadDone
}
