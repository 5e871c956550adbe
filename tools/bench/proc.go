package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"phoenix/supervise"
)

// The processes the bench starts and the wrk runs it makes.

// proc is a started server process.
type proc struct{ *supervise.Process }

// start runs bin with args and env, its output in b.dir, until ready
// answers 200.
func (b *bench) start(ctx context.Context, ready string, bin string, env []string, args ...string) (*proc, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := supervise.StartProcess(ctx, supervise.ProcessOptions{
		Name: filepath.Base(bin), Path: bin, Args: args, Env: env, Dir: b.dir, Ready: supervise.HTTPReady(ready),
	})
	if err != nil {
		return nil, err
	}
	return &proc{p}, nil
}

func (p *proc) stop() { _ = p.Stop() }

// rssKB reads the resident set size of the process.
func (p *proc) rssKB() int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+)`).FindSubmatch(data)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// wrkResult is what one wrk run reports.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	bad      int // non-2xx/3xx answers and socket errors
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkPct     = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

const wrkArgs = "-t1 -c64 --latency"

func (b *bench) wrk(env []string, args ...string) (wrkResult, error) {
	all := append(strings.Fields(wrkArgs), "-d", b.duration.String())
	cmd := exec.Command("wrk", append(all, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %v: %w\n%s", args, err, out)
	}
	var r wrkResult
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk: no Requests/sec in\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, m := range wrkPct.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		d := time.Duration(v * float64(unit))
		if string(m[1]) == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		r.bad, _ = strconv.Atoi(string(m[1]))
	}
	if m := wrkSockErr.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(string(g))
			r.bad += n
		}
	}
	return r, nil
}

// wrkMedian runs wrk b.runs times and returns the run of median throughput.
func (b *bench) wrkMedian(env []string, args ...string) (wrkResult, error) {
	var rs []wrkResult
	for range b.runs {
		r, err := b.wrk(env, args...)
		if err != nil {
			return r, err
		}
		b.logf("wrk %s: %.0f req/s, p99 %v, %d bad", args[len(args)-1], r.rps, r.p99, r.bad)
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(x, y wrkResult) int { return cmp.Compare(x.rps, y.rps) })
	return rs[len(rs)/2], nil
}
