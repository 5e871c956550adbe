package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"

	"phoenix/loadgen"
)

// The report: BENCHMARKS.md is written from the results alone, so the
// experiments measure and this file words.

func (b *bench) header(w io.Writer) {
	host, _ := os.Hostname()
	model := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(data); m != nil {
			model = string(m[1])
		}
	}
	var mem string
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1] + " kB"
	}
	fmt.Fprintf(w, `# Benchmarks

Written by `+"`make bench`"+` (tools/bench) on %s. Rerun it to refresh every figure.

Machine: %d cores (%s), %s memory, %s/%s, %s, host %s. Load average at the start: %s.
The load generators (wrk, tools/bench's Go client) run on the same cores as the servers. The machine is
shared with other work: read figures together with the load average.

Throughput figures are medians of %d runs of %s each; ratios compare figures of this same run.
Servers: private redis-server and PostgreSQL 15 (fsync on) started by supervise; phoenix and
tools/ceiling built with `+"`CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'`"+`.

`, time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH,
		runtime.Version(), host, loadavg(), b.runs, b.duration)
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// writeHTTP writes the HTTP, freshness, live and footprint sections.
func (b *bench) writeHTTP(w io.Writer, r *results) {
	fmt.Fprintf(w, "## HTTP (wrk %s, %s)\n\n", wrkArgs, "Lua scripts in tools/bench")
	fmt.Fprintf(w, "| what | req/s | p50 | p99 | errors | command |\n|---|---:|---:|---:|---:|---|\n")
	row := func(name string, r wrkResult, cmdline string) {
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %d | `%s` |\n", name, r.rps, ms(r.p50), ms(r.p99), r.bad, cmdline)
	}
	row("ceiling: plain Fiber GET", r.plain, "wrk "+wrkArgs+" -d "+b.duration.String()+" http://ceiling/plain")
	row("ceiling: Fiber POST + 1 Redis round trip (INCR)", r.oneRT, "wrk "+wrkArgs+" -s tools/bench/post.lua http://ceiling/redis")
	row("ceiling: Fiber POST + the Like's own script (EVALSHA, each a change)", r.script, "wrk "+wrkArgs+" -s tools/bench/post.lua http://ceiling/script")
	row("Like (htmx POST; CSRF, 2 rate limits, JSON logs)", r.like, "wrk "+wrkArgs+" -s tools/bench/like.lua http://shop/")
	row("Like, `phoenix shop` alone (no worker moving its Likes into PostgreSQL on these cores)", r.likeAlone,
		"wrk "+wrkArgs+" -s tools/bench/like.lua http://shop-alone/")
	row("catalog page 1, full, 48 parts (24 on the page, with counts)", r.page, "wrk "+wrkArgs+" -H 'Cookie: …' http://shop/")
	row("catalog grid fragment (htmx)", r.grid, "wrk "+wrkArgs+" -H 'Cookie: …' -H 'HX-Request: true' -H 'HX-Target: product-grid' http://shop/")
	for _, c := range r.catalogs {
		row(c.name, c.res, c.cmdline)
	}
	fmt.Fprintf(w, "\nLike / one-round-trip ceiling: **%.0f%%** (target ≥ 50%%); Like / own-script ceiling: **%.0f%%** (target ≥ 80%%); "+
		"the shop alone: %.0f%% and %.0f%%. The mall's Like (`phoenix all`) also pays, on the same two cores, for its worker and "+
		"PostgreSQL writing each Like to the record, which the ceilings and the shop alone do not. "+
		"%d shoppers (cookie + CSRF token fetched beforehand), each request a real change (like, then unlike), rate limits 10/s "+
		"per shopper and 1,000,000/s per address.\n\n",
		100*r.like.rps/r.oneRT.rps, 100*r.like.rps/r.script.rps, 100*r.likeAlone.rps/r.oneRT.rps, 100*r.likeAlone.rps/r.script.rps, nShoppers)
	fmt.Fprintf(w, "Like at a fixed %d/s (half the maximum) for 10 s, tools/bench's open-loop Go client (latency from the "+
		"scheduled send time, so a stall is not hidden): %s (target p99 < 5 ms).\n\n", r.half, spread(r.fixed))
	fmt.Fprintf(w, "The same load on the shop alone (no worker and no PostgreSQL writes on these cores): %s.\n\n", spread(r.fixedAlone))
	fmt.Fprintf(w, "## Freshness (tools/bench)\n\nFrom a Like's 200 to its presence in product_counters, under %d Likes/s "+
		"sustained for %s (open-loop Go client; one probe Like at a time on a product the load does not touch, "+
		"product_counters polled every 2 ms): p50 %s, p99 **%s**, max %s over %d probes; load: %d requests, %d errors. "+
		"The admin page polls every 2 s on top of this (target p99 < 1 s + the poll interval).\n\n",
		freshRate, freshFor, ms(r.fresh.probe.Pct(50)), ms(r.fresh.probe.Pct(99)), ms(r.fresh.probe.Pct(100)), r.fresh.probe.Len(),
		r.fresh.load.Len(), r.fresh.load.Errors())
	fmt.Fprintf(w, "## Live dashboard (tools/bench)\n\nFrom a Like's 200 to the admin's Server-Sent Events client receiving "+
		"the products fragment that counts it, under %d Likes/s sustained for %s (as above; the stream filtered to the probe's "+
		"product): p50 %s, p99 **%s**, max %s over %d probes, %d probe errors; load: %d requests, %d errors (target p99 < 1 s).\n\n",
		freshRate, freshFor, ms(r.live.probe.Pct(50)), ms(r.live.probe.Pct(99)), ms(r.live.probe.Pct(100)), r.live.probe.Len(),
		r.live.probe.Errors(), r.live.load.Len(), r.live.load.Errors())
	fmt.Fprintf(w, "Cost of open dashboards: %d idle live streams add %.1f KB of RSS each; `phoenix all` idle uses %.4f CPU "+
		"seconds per second without them and %.4f with them (10 s each, no data changing).\n\n",
		r.live.streams, r.live.rssPerStreamKB, r.live.cpuIdle, r.live.cpuStreams)
	fmt.Fprintf(w, "## Footprint\n\n| what | value |\n|---|---:|\n| phoenix binary (stripped) | %.1f MB |\n"+
		"| `phoenix all` RSS, idle after start | %.1f MB |\n| `phoenix all` RSS, peak under the Like load | %.1f MB |\n\n",
		float64(r.binSize)/1e6, float64(r.idleRSS)/1024, float64(r.peakRSS)/1024)
}

// spread words the latencies of a fixed-rate load.
func spread(l *loadgen.Latencies) string {
	return fmt.Sprintf("p50 %s, p90 %s, p99 **%s**, max %s; %d requests, %d errors",
		ms(l.Pct(50)), ms(l.Pct(90)), ms(l.Pct(99)), ms(l.Pct(100)), l.Len(), l.Errors())
}

// writeGo writes one Go benchmark's section: its command and its lines.
func writeGo(w io.Writer, title string, args []string, out string) {
	fmt.Fprintf(w, "## %s (go test)\n\n`go %s`\n\n```\n", title, strings.Join(quoteArgs(args), " "))
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "Benchmark") {
			fmt.Fprint(w, line)
		}
	}
	fmt.Fprintf(w, "```\n\n")
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, "|$^ ") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
