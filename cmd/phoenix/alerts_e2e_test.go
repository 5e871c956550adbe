package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"phoenix/store"
)

// alertRules is the rule file that operators load, relative to this package.
var alertRules = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yaml")

// promServer is a real Prometheus (Debian's prometheus package) on a free
// 127.0.0.1 port with its data in a temporary folder.
type promServer struct {
	base   string
	client *http.Client
}

// startPrometheus runs Prometheus scraping target every second and
// evaluating the operators' alert rules every second, with each rule's
// "for" cut to 2s so that an alert fires within a test. The expressions
// are the operators' own. Cleanup stops it.
func startPrometheus(t *testing.T, target string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prometheus not found (Debian package prometheus; make test installs it): %v", err)
		}
		t.Skipf("prometheus not found (apt-get install prometheus): %v", err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []map[string]any `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatalf("%s: %v", alertRules, err)
	}
	for _, g := range rules.Groups {
		g["interval"] = "1s"
		for _, r := range g["rules"].([]any) {
			if r := r.(map[string]any); r["alert"] != nil {
				r["for"] = "2s"
			}
		}
	}
	fast, err := yaml.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yaml]
scrape_configs:
  - job_name: phoenix
    static_configs: [{targets: [%q]}]
`, target)
	for name, body := range map[string][]byte{"rules.yaml": fast, "prometheus.yml": []byte(config)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addr := freeAddr(t)
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	p := &promServer{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	p.waitFor(t, "Prometheus ready", func() bool {
		select {
		case <-exited:
			t.Fatalf("prometheus exited during start:\n%s", logs.String())
		default:
		}
		resp, err := p.client.Get(p.base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// freeAddr returns a 127.0.0.1 address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// api GETs a Prometheus API path into v (the "data" member of the answer).
func (p *promServer) api(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("GET %s: status %d %q %s (%v)", path, resp.StatusCode, body.Status, body.Error, err)
	}
	if err := json.Unmarshal(body.Data, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// query returns the value of an instant query with one result, or false
// when it has none.
func (p *promServer) query(t *testing.T, q string) (float64, bool) {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	p.api(t, "/api/v1/query?query="+url.QueryEscape(q), &data)
	if len(data.Result) == 0 {
		return 0, false
	}
	if len(data.Result) > 1 {
		t.Fatalf("query %s: %d results, want 1", q, len(data.Result))
	}
	s, _ := data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %v: %v", q, data.Result[0].Value, err)
	}
	return v, true
}

// alertState is an alert's state in Prometheus: "pending", "firing", or
// "" when it is inactive.
func (p *promServer) alertState(t *testing.T, name string) string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", &data)
	for _, a := range data.Alerts {
		if a.Labels["alertname"] == name {
			return a.State
		}
	}
	return ""
}

// waitFor polls cond until it holds, failing the test after 30 seconds
// with the alerts and the values of the show queries.
func (p *promServer) waitFor(t *testing.T, what string, cond func() bool, show ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var alerts json.RawMessage
			p.api(t, "/api/v1/alerts", &alerts)
			state := "alerts: " + string(alerts)
			for _, q := range show {
				v, ok := p.query(t, q)
				state += fmt.Sprintf("\n%s = %v (found %v)", q, v, ok)
			}
			t.Fatalf("%s: not within 30s\n%s", what, state)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAlerts_BacklogFires: a real Prometheus with the operators' rules
// scrapes a shop while no worker runs. With one event in the stream the
// backlog alert is silent; once the shop has accepted some 150 Likes that
// nothing syncs, it fires, and the missing worker heartbeat with it.
func TestAlerts_BacklogFires(t *testing.T) {
	vars, _ := sharedRedis(t)
	vars["PHOENIX_LIKE_RATE_PER_SHOPPER"] = "0" // one shopper clicks fast
	shop := startPhoenix(t, "shop", vars)
	cat, err := store.DefaultCatalog()
	if err != nil {
		t.Fatal(err)
	}
	ids := cat.IDs()
	s := newShopper(t, shop)
	s.like(t, ids[0])
	liked := map[string]bool{ids[0]: true}

	prom := startPrometheus(t, shop.addr("metrics"))
	prom.waitFor(t, "the rules evaluated over two scrapes", func() bool {
		_, ok := prom.query(t, "phoenix:backlog_growth:increase10m")
		return ok
	})
	// Its value is the handlers' tests' business: a loaded machine may
	// time a Redis ping out here.
	if _, ok := prom.query(t, `phoenix_ready{role="shop"}`); !ok {
		t.Error(`Prometheus has no phoenix_ready{role="shop"}`)
	}
	if st := prom.alertState(t, "PhoenixBacklogGrowing"); st != "" {
		t.Fatalf("PhoenixBacklogGrowing is %s with one event in the stream", st)
	}

	for range 3 {
		for _, id := range ids {
			action := "like"
			if liked[id] {
				action = "unlike"
			}
			s.post(t, action, id)
			liked[id] = !liked[id]
		}
	}
	prom.waitFor(t, "PhoenixBacklogGrowing firing", func() bool {
		return prom.alertState(t, "PhoenixBacklogGrowing") == "firing"
	}, "phoenix:backlog_growth:increase10m", "phoenix:stream_in:increase10m", `up{job="phoenix"}`)
	// Every event counts, the first Unlike's too: the accepted series
	// exist from the shop's start.
	if growth, _ := prom.query(t, "phoenix:backlog_growth:increase10m"); growth < float64(3*len(ids)) {
		t.Errorf("backlog growth %v, want at least the %d events since the first scrape", growth, 3*len(ids))
	}
	if st := prom.alertState(t, "PhoenixWorkerHeartbeatMissing"); st != "firing" {
		t.Errorf("PhoenixWorkerHeartbeatMissing is %q with no worker, want firing", st)
	}
	for _, name := range []string{"PhoenixHTTP5xx", "PhoenixLikesUnavailable", "PhoenixLikesBusy"} {
		if st := prom.alertState(t, name); st != "" {
			t.Errorf("%s is %s on a shop that answered no 5xx", name, st)
		}
	}
}
