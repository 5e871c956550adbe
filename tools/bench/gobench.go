package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// goBenchmark is one go test benchmark run the report copies.
type goBenchmark struct{ title, pkg, pattern, benchtime string }

// goBenchmarks are the Go benchmarks of the report, in its order: one line each.
var goBenchmarks = []goBenchmark{
	{"Worker drain: 1,000,000 events from Redis into PostgreSQL (fsync on; one worker on one shard, one and two workers on two), a COPY of the same rows, and the two writes each event needs alone (one apply stream and two)", "./worker/", "BenchmarkSync_Drain/fsync=true/workers=1/batch=5000$|BenchmarkSync_Drain/fsync=true/shards=2/workers=(1|2)/batch=5000$|BenchmarkCopy|BenchmarkStateWrites", "1000000x"},
	{"Stats refresh: every read query of one dashboard refresh", "./store/", "BenchmarkStats_Refresh", "2s"},
	{"Highlights round with also liked (48 parts, 5,000 shoppers who like 12 each), from PostgreSQL into Redis", "./store/", "BenchmarkRefreshHighlights", "10x"},
	{"Admin stats fragment (products table, 500 products) and its 304, server time through app.Test", "./handlers/", "BenchmarkAdmin_Stats", "2s"},
	{"Shop handlers in process (Go client; catalog pages, and Likes by protection and by tracing: off, on at 1 % and 100 % sampled)", "./handlers/", "BenchmarkShop_Browse|BenchmarkShop_Like", "2s"},
	{"Likes on a 3-primary Redis Cluster: 1 vs 6 shards, durability none vs replica; CPU per Like on Redis (every node) and the client", "./store/", "BenchmarkLikes_Set", "3s"},
}

// runGo runs g b.runs times and returns its command's arguments and output.
func (b *bench) runGo(g goBenchmark) ([]string, string, error) {
	args := []string{"test", g.pkg, "-run", "^$", "-bench", g.pattern, "-benchtime", g.benchtime, "-benchmem", "-count", strconv.Itoa(b.runs)}
	b.logf("go %s", strings.Join(args, " "))
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CI=true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return args, string(out), nil
}
