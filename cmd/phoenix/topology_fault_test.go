package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"phoenix/loadgen"
	"phoenix/store"
	"phoenix/supervise"
	"phoenix/testkit"
)

// The topology fault tests break one part of the production-shaped mall
// (nginx, 2 shops, 2 admins, 2 workers, Redis Cluster, PostgreSQL) under
// load through the proxy, then prove that nothing was lost: every Like the
// shop answered "saved" is in PostgreSQL, phoenix audit is exact, and the
// admin dashboard's total is PostgreSQL's and Redis's.

const (
	topoShoppers = 60
	topoRate     = 200 // Like requests a second, all shoppers together
	topoProducts = 30  // enough pairs that a fault's refusals leave most of them certain
	topoLoad     = 8 * time.Second
)

// topoRig is the topology plus what the checks read: Redis's live counts,
// PostgreSQL's record and the admin through the proxy.
type topoRig struct {
	topo  *topology
	likes *store.Likes
	stats *store.Stats
	db    *sqlx.DB     // the same database, for the tests' checks
	admin *http.Client // logged in, through the proxy
	ids   []string
}

func newTopoRig(t *testing.T) *topoRig {
	t.Helper()
	topo := startTestTopology(t)
	ctx := context.Background()
	shards, _ := strconv.Atoi(topo.vars["PHOENIX_REDIS_SHARDS"])
	likes, err := store.OpenLikes(ctx, topo.vars["PHOENIX_REDIS_URL"], "phoenix:", store.LikesOptions{Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { likes.Close() })
	stats, err := store.OpenStats(ctx, topo.vars["PHOENIX_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stats.Close() })
	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	r := &topoRig{topo: topo, likes: likes, stats: stats, db: testkit.DB(t, topo.vars["PHOENIX_DATABASE_URL"]), admin: proxyClient(topo.proxy.Cert(), "127.0.0.1"), ids: cat.IDs()[:topoProducts]}
	r.login(t)
	return r
}

// login logs the admin client in through the proxy.
func (r *topoRig) login(t *testing.T) {
	t.Helper()
	base := r.topo.proxy.AdminURL()
	token, err := fetchCSRF(r.admin, base+"/login")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(url.Values{"password": {faultPassword}, "next": {"/admin"}, "csrf": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	req.Header.Set("Referer", base+"/login")
	resp, err := r.admin.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin login through the proxy: status %d, want 303", resp.StatusCode)
	}
}

// load runs simulated shoppers against the proxy's shop address.
func (r *topoRig) load(d time.Duration) *loadgen.Load {
	roots := r.admin.Transport.(*http.Transport).TLSClientConfig.RootCAs
	return loadgen.Start(context.Background(), loadgen.Config{
		URL: r.topo.proxy.ShopURL(), Products: r.ids, Shoppers: topoShoppers, Rate: topoRate,
		Duration: d, Browse: 0.02, Timeout: 20 * time.Second, RootCAs: roots,
	})
}

// stored is how many events PostgreSQL holds (0 while it is down).
func (r *topoRig) stored() int64 { return storedEvents(r.db) }

// waitStored waits until PostgreSQL holds more than n events.
func (r *topoRig) waitStored(t *testing.T, n int64) int64 {
	t.Helper()
	return waitStored(t, r.db, n)
}

// recovered ends a fault: a short clean load is answered in full, then
// phoenix audit is exact, the admin's total is Redis's and PostgreSQL's,
// and every certain answer of the runs is in PostgreSQL.
func (r *topoRig) recovered(t *testing.T, runs ...loadgen.Summary) {
	t.Helper()
	clean := r.load(2 * time.Second).Wait()
	if len(clean.Errors) > 0 || clean.Uncertain > 0 || clean.ConfirmedLikes == 0 {
		t.Errorf("after recovery: errors %v, %d uncertain, %d likes saved; want every Like saved", clean.Errors, clean.Uncertain, clean.ConfirmedLikes)
	}
	r.assertAudit(t)
	r.assertAdminTotal(t)
	r.assertSaved(t, append(runs, clean)...)
}

// run runs a phoenix command with the roles' settings.
func (r *topoRig) run(t *testing.T, args ...string) string {
	t.Helper()
	var out syncBuffer
	e := &env{getenv: func(k string) string { return r.topo.vars[k] }, stdout: &out, stderr: &out}
	if err := runEnv(context.Background(), e, args); err != nil {
		t.Errorf("phoenix %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// assertAudit runs phoenix audit -wait with the roles' settings.
func (r *topoRig) assertAudit(t *testing.T) {
	t.Helper()
	t.Logf("phoenix audit:\n%s", r.run(t, "audit", "-wait", recoverTimeout.String()))
}

// assertAdminTotal polls the admin's total through the proxy until it
// equals both PostgreSQL's counters and Redis's live counts, fresh.
func (r *topoRig) assertAdminTotal(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(recoverTimeout)
	for {
		counts, err := r.likes.Counts(context.Background())
		var inRedis, inPG int64
		for _, n := range counts {
			inRedis += n
		}
		if err == nil {
			err = r.db.Get(&inPG, `SELECT coalesce(sum(likes), 0) FROM product_counters`)
		}
		req, _ := http.NewRequest(http.MethodGet, r.topo.proxy.AdminURL()+"/admin/stats/totals", nil)
		req.Header.Set("HX-Request", "true")
		status, body := 0, ""
		if resp, rerr := r.admin.Do(req); rerr == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, body = resp.StatusCode, string(b)
		}
		got := ""
		if m := totalLikes.FindStringSubmatch(body); m != nil {
			got = strings.Map(func(c rune) rune {
				if c >= '0' && c <= '9' {
					return c
				}
				return -1
			}, m[1])
		}
		want := strconv.FormatInt(inPG, 10)
		if err == nil && status == http.StatusOK && inPG == inRedis && got == want && !strings.Contains(body, "stale") {
			t.Logf("admin total %s = PostgreSQL %d = Redis %d", got, inPG, inRedis)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin total: status %d, %q; PostgreSQL %d, Redis %d (%v); want all equal and fresh:\n%s", status, got, inPG, inRedis, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// assertSaved checks each shopper's answers against PostgreSQL: for each
// shopper and product whose answers were all certain and none refused, it
// holds exactly one like event per "saved" Like and one unlike per "saved"
// Unlike. A refusal through the proxy is not proof of nothing saved (nginx
// answers 502 when a shop dies mid-request, and a Like whose replica copy
// was not confirmed in time is applied all the same), so such pairs are
// left out and counted.
func (r *topoRig) assertSaved(t *testing.T, runs ...loadgen.Summary) {
	t.Helper()
	type pair struct{ shopper, product string }
	var rows []struct {
		Shopper string `db:"shopper_id"`
		Product string `db:"product_id"`
		Likes   int64  `db:"likes"`
		Unlikes int64  `db:"unlikes"`
	}
	if err := r.db.Select(&rows, `
SELECT shopper_id, product_id, count(*) FILTER (WHERE action = 'like') AS likes, count(*) FILTER (WHERE action = 'unlike') AS unlikes
FROM like_events GROUP BY shopper_id, product_id`); err != nil {
		t.Fatal(err)
	}
	inPG := map[pair][2]int64{}
	for _, row := range rows {
		inPG[pair{row.Shopper, row.Product}] = [2]int64{row.Likes, row.Unlikes}
	}
	shopURL, _ := url.Parse(r.topo.proxy.ShopURL())
	var checked, saved, left int64
	for _, sum := range runs {
		for _, s := range sum.Shoppers {
			id := ""
			for _, c := range s.Jar.Cookies(shopURL) {
				if c.Name == "phoenix_shopper" {
					id, _, _ = strings.Cut(c.Value, ".")
				}
			}
			for p, a := range s.Answers {
				if s.Unsure[p] || a.Refused > 0 {
					left++
					continue
				}
				checked++
				saved += a.Likes + a.Unlikes
				if got := inPG[pair{id, p}]; got != [2]int64{a.Likes, a.Unlikes} {
					t.Errorf("shopper %q, product %s: the shop saved %d likes and %d unlikes, PostgreSQL holds %d and %d",
						id, p, a.Likes, a.Unlikes, got[0], got[1])
				}
			}
		}
	}
	if checked == 0 || saved == 0 {
		t.Fatalf("checked %d pairs with %d saved answers: the load did nothing", checked, saved)
	}
	t.Logf("saved answers: %d pairs checked (%d answers), %d pairs with a refused or uncertain answer left out", checked, saved, left)
}

// faultRounds is how many rounds TestTopology_Faults runs: 1, or
// PHOENIX_FAULT_ROUNDS (make faults).
func faultRounds(t *testing.T) int {
	t.Helper()
	v := os.Getenv("PHOENIX_FAULT_ROUNDS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("PHOENIX_FAULT_ROUNDS: %q is not a positive number", v)
	}
	return n
}

// TestTopology_Faults breaks one part of the topology at a time under load
// through nginx, in rounds: a Redis primary killed (its replica takes over;
// with replica durability no saved Like is lost), a shop replica and a
// worker killed with SIGKILL and restarted, PostgreSQL restarted. Each
// fault ends in an exact audit and an exact admin total.
func TestTopology_Faults(t *testing.T) {
	r := newTopoRig(t)
	for round := range faultRounds(t) {
		name := func(fault string) string { return fmt.Sprintf("round %d: %s", round+1, fault) }
		if !t.Run(name("redis primary killed"), r.redisPrimaryKilled) ||
			!t.Run(name("shop and worker killed"), r.shopAndWorkerKilled) ||
			!t.Run(name("postgres restarted"), r.postgresRestarted) ||
			!t.Run(name("one primary flushed, then reconcile"), r.primaryFlushed) ||
			!t.Run(name("a shard's nodes killed after a burst"), r.shardKilledAfterBurst) {
			return
		}
	}
}

// primaries returns the cluster's primaries, failing t when it has none.
func (r *topoRig) primaries(t *testing.T) []int {
	t.Helper()
	primaries, err := r.topo.cluster.Primaries(context.Background())
	if err != nil || len(primaries) == 0 {
		t.Fatalf("primaries %v: %v", primaries, err)
	}
	return primaries
}

func (r *topoRig) redisPrimaryKilled(t *testing.T) {
	ctx := context.Background()
	load := r.load(topoLoad)
	r.waitStored(t, r.stored()+200)
	primaries := r.primaries(t)
	victim := primaries[0]
	if err := r.topo.cluster.Kill(victim); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed primary node %d (%s)", victim, r.topo.cluster.Node(victim).Addr())
	wait, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	if err := r.topo.cluster.WaitHealthy(wait); err != nil { // its replica promoted
		t.Fatal(err)
	}
	sum := load.Wait()
	t.Logf("load: %d requests, %d likes and %d unlikes saved, errors %v, %d uncertain", sum.Requests, sum.ConfirmedLikes, sum.ConfirmedUnlikes, sum.Errors, sum.Uncertain)
	if err := r.topo.cluster.Node(victim).Start(wait); err != nil { // back as a replica
		t.Fatal(err)
	}
	if err := r.topo.cluster.WaitHealthy(wait); err != nil {
		t.Fatal(err)
	}
	r.settle(t)
	r.recovered(t, sum)
}

func (r *topoRig) shopAndWorkerKilled(t *testing.T) {
	ctx := context.Background()
	load := r.load(topoLoad)
	r.waitStored(t, r.stored()+200)
	shop, worker := r.topo.shops[0], r.topo.workers[0]
	for _, p := range []*supervise.Process{shop, worker} {
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		t.Logf("killed %s with SIGKILL", p.Name())
	}
	time.Sleep(time.Second) // nginx meets the dead shop, the other worker claims what the dead one held
	wait, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	for _, p := range []*supervise.Process{shop, worker} {
		if err := p.Start(wait); err != nil {
			t.Fatal(err)
		}
	}
	sum := load.Wait()
	t.Logf("load: %d requests, %d likes and %d unlikes saved, errors %v, %d uncertain", sum.Requests, sum.ConfirmedLikes, sum.ConfirmedUnlikes, sum.Errors, sum.Uncertain)
	r.recovered(t, sum)
}

func (r *topoRig) postgresRestarted(t *testing.T) {
	load := r.load(topoLoad)
	r.waitStored(t, r.stored()+200)
	if err := r.topo.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the shops keep saving; events wait in the streams
	wait, cancel := context.WithTimeout(context.Background(), recoverTimeout)
	defer cancel()
	if err := r.topo.pg.Start(wait); err != nil {
		t.Fatal(err)
	}
	sum := load.Wait()
	unaffected(t, sum, "PostgreSQL's restart")
	r.recovered(t, sum)
}

func (r *topoRig) primaryFlushed(t *testing.T) {
	ctx := context.Background()
	load := r.load(topoLoad)
	r.waitStored(t, r.stored()+200)
	primaries := r.primaries(t)
	node := redis.NewClient(&redis.Options{Addr: r.topo.cluster.Node(primaries[0]).Addr()})
	defer node.Close()
	if err := node.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("flushed primary node %d: its shards lost every key", primaries[0])
	sum := load.Wait()
	t.Logf("load: %d requests, %d likes and %d unlikes saved, errors %v", sum.Requests, sum.ConfirmedLikes, sum.ConfirmedUnlikes, sum.Errors)
	t.Logf("phoenix reconcile:\n%s", r.run(t, "reconcile"))
	r.recovered(t) // the Likes Redis lost before a worker applied them are gone: no run's answers to check
}

func (r *topoRig) shardKilledAfterBurst(t *testing.T) {
	ctx := context.Background()
	r.load(2 * time.Second).Wait() // the burst: its last second may be only in memory (appendfsync everysec)
	primaries := r.primaries(t)
	replicas, err := r.topo.cluster.ReplicasOf(ctx, primaries[0])
	if err != nil {
		t.Fatal(err)
	}
	nodes := append([]int{primaries[0]}, replicas...)
	for _, i := range nodes { // no copy survives to be promoted: the nodes restart from their files
		if err := r.topo.cluster.Kill(i); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("killed nodes %v with SIGKILL right after a burst", nodes)
	wait, cancel := context.WithTimeout(ctx, recoverTimeout)
	defer cancel()
	for _, i := range nodes {
		if err := r.topo.cluster.Node(i).Start(wait); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.topo.cluster.WaitHealthy(wait); err != nil {
		t.Fatal(err)
	}
	r.settle(t)
	r.recovered(t) // as after the flush
}

// settle runs a short load after Redis nodes restarted, before recovered's
// clean load that must have no refusal: right after a node rejoins, the
// first Likes may still be answered 503 (a shop's slot map or connection
// not yet moved on, or a replica that has not yet confirmed a write within
// PHOENIX_LIKE_WAIT_TIMEOUT: "could not confirm", nothing lost, the shopper
// retries). Its saved Likes are in the audit that follows.
func (r *topoRig) settle(t *testing.T) {
	t.Helper()
	sum := r.load(2 * time.Second).Wait()
	t.Logf("settling after the restart: %d likes saved, errors %v", sum.ConfirmedLikes, sum.Errors)
}
