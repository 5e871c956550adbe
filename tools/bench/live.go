package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"phoenix/loadgen"
)

// liveAdmin is a logged-in admin client.
type liveAdmin struct {
	base   string
	client *http.Client
}

func loginAdmin(base, password string) (*liveAdmin, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := loadgen.Token(string(body))
	if token == "" {
		return nil, fmt.Errorf("admin login form: no CSRF field")
	}
	resp, err = c.PostForm(base+"/login", url.Values{"password": {password}, "csrf": {token}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("admin login: status %d", resp.StatusCode)
	}
	return &liveAdmin{base: base, client: c}, nil
}

// stream opens the live stream of the dashboard at query; events gets the
// data of each event named name (the HTML, lines joined).
func (a *liveAdmin) stream(ctx context.Context, query, name string, events chan<- string) (io.Closer, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", a.base+"/admin/live?"+query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("live stream: status %d", resp.StatusCode)
	}
	if events == nil {
		return resp.Body, nil
	}
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev string
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev == name {
					events <- strings.Join(data, "\n")
				}
				ev, data = "", nil
			case strings.HasPrefix(line, "event: "):
				ev = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	return resp.Body, nil
}

// liveResult is what liveFreshness measured.
type liveResult struct {
	load, probe         *loadgen.Latencies
	streams             int
	rssPerStreamKB      float64
	cpuIdle, cpuStreams float64 // CPU seconds per second, without and with the idle streams
}

// liveFreshness times, under rate Likes/s, each probe Like from its
// confirmation until an SSE client of the admin receives the products
// fragment that counts it, and first measures the cost of n idle streams.
func liveFreshness(ctx context.Context, phx *proc, admin, password string, shoppers, probes []*loadgen.Shopper, probeID, probeName string,
	ids []string, rate, n int, d time.Duration) (liveResult, error) {
	a, err := loginAdmin(admin, password)
	if err != nil {
		return liveResult{}, err
	}
	res := liveResult{probe: &loadgen.Latencies{}, streams: n}

	// Idle streams: memory and CPU (heartbeats, reads) while nothing changes.
	const window = 10 * time.Second
	res.cpuIdle = cpuOver(phx, window)
	before := phx.rssKB()
	var idle []io.Closer
	for range n {
		c, err := a.stream(ctx, "", "", nil)
		if err != nil {
			return res, err
		}
		idle = append(idle, c)
	}
	time.Sleep(2 * time.Second)
	res.rssPerStreamKB = float64(phx.rssKB()-before) / float64(n)
	res.cpuStreams = cpuOver(phx, window)
	for _, c := range idle {
		c.Close()
	}

	events := make(chan string, 1000)
	probeRow := regexp.MustCompile(`id="product-row-` + regexp.QuoteMeta(probeID) + `"[\s\S]*?class="num likes">([\d,]+)<`)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body, err := a.stream(sctx, url.Values{"q": {probeName}}.Encode(), "products", events)
	if err != nil {
		return res, err
	}
	defer body.Close()
	likes := func(html string) int64 {
		m := probeRow.FindStringSubmatch(html)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
		return v
	}
	current := int64(-1)
	select {
	case html := <-events:
		current = likes(html)
	case <-time.After(5 * time.Second):
		return res, fmt.Errorf("live stream: no first products fragment")
	}

	loadDone := make(chan error, 1)
	go func() {
		l, err := openLoop(ctx, shoppers, ids, rate, d)
		res.load = l
		loadDone <- err
	}()
	time.Sleep(time.Second)
	deadline := time.Now().Add(d - 2*time.Second)
	for _, s := range probes {
		if time.Now().After(deadline) {
			break
		}
		if err := likeRequest(ctx, s, probeID, true); err != nil {
			res.probe.Add(0, err)
			continue
		}
		confirmed := time.Now()
		for got := false; !got; {
			select {
			case html := <-events:
				if v := likes(html); v > current {
					current, got = v, true
					res.probe.Add(time.Since(confirmed), nil)
				}
			case <-time.After(10 * time.Second):
				res.probe.Add(0, fmt.Errorf("like not pushed after 10 s"))
				got = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return res, <-loadDone
}

// cpuOver returns the CPU seconds per second the process used over d.
func cpuOver(p *proc, d time.Duration) float64 {
	start := p.cpuTicks()
	time.Sleep(d)
	return float64(p.cpuTicks()-start) / 100 / d.Seconds() // USER_HZ is 100 on Linux
}

// cpuTicks reads the process's user+system time in clock ticks.
func (p *proc) cpuTicks() int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}
