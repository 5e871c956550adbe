package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	"phoenix/handlers"
	"phoenix/worker"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Record      string            `json:"record"`
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// dashboard is the part of the Grafana dashboard the tests read.
type dashboard struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title       string `json:"title"`
		Type        string `json:"type"`
		Description string `json:"description"`
		Targets     []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

var (
	alertsFile    = filepath.Join("prometheus", "alerts.yaml")
	dashboardFile = filepath.Join("grafana", "phoenix.json")
)

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	readStrict(t, alertsFile, &rf)
	return rf
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// promtool returns the path of Debian's promtool; it skips the test where
// it is missing, except in CI.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found (Debian package prometheus; make test installs it): %v", err)
		}
		t.Skipf("promtool not found (apt-get install prometheus): %v", err)
	}
	return path
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// TestAlerts_Promtool: the rules load in Prometheus, and each alert passes
// its unit tests (alerts_test.yaml: firing on its failure, silent without).
func TestAlerts_Promtool(t *testing.T) {
	pt := promtool(t)
	run(t, pt, "check", "rules", alertsFile)
	run(t, pt, "test", "rules", filepath.Join("prometheus", "alerts_test.yaml"))
}

// TestAlerts_EachTested: every alert has a firing case in the promtool
// tests, a runbook entry in the README and a panel on the dashboard.
func TestAlerts_EachTested(t *testing.T) {
	var tests struct {
		RuleFiles          []string `json:"rule_files"`
		EvaluationInterval string   `json:"evaluation_interval"`
		Tests              []struct {
			Name          string `json:"name"`
			Interval      string `json:"interval"`
			InputSeries   []json `json:"input_series"`
			AlertRuleTest []struct {
				EvalTime  string `json:"eval_time"`
				Alertname string `json:"alertname"`
				ExpAlerts []json `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	readStrict(t, filepath.Join("prometheus", "alerts_test.yaml"), &tests)
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname] = true
			} else {
				silent[at.Alertname] = true
			}
		}
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var panels strings.Builder
	for _, p := range loadDashboard(t).Panels {
		panels.WriteString(p.Description + "\n")
	}
	var alerts []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("%s: want a promtool test where it fires and one where it does not (fires %v, silent %v)", r.Alert, fires[r.Alert], silent[r.Alert])
			}
			anchor := "README.md#" + strings.ToLower(r.Alert)
			if r.Annotations["runbook"] != anchor {
				t.Errorf("%s: runbook annotation %q, want %q", r.Alert, r.Annotations["runbook"], anchor)
			}
			if !strings.Contains(string(readme), "### "+r.Alert+"\n") {
				t.Errorf("%s: no runbook heading \"### %s\" in the README", r.Alert, r.Alert)
			}
			if !strings.Contains(panels.String(), r.Alert) {
				t.Errorf("%s: no dashboard panel names it", r.Alert)
			}
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
		}
	}
	if len(alerts) < 8 {
		t.Errorf("found %d alerts (%v), want the 8 of the runbook", len(alerts), alerts)
	}
}

// metricName finds the Phoenix series that a PromQL expression reads.
var metricName = regexp.MustCompile(`\bphoenix_[a-z0-9_]+\b`)

// TestAlerts_KnownMetrics: every phoenix_ series that the rules and the
// dashboard read is one the code registers, so that a renamed metric or a
// typo cannot leave an alert that never fires.
func TestAlerts_KnownMetrics(t *testing.T) {
	known := registeredMetrics(t)
	var exprs []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, e := range exprs {
		for _, name := range metricName.FindAllString(e, -1) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if known[strings.TrimSuffix(name, suffix)] {
					base = strings.TrimSuffix(name, suffix)
				}
			}
			if _, ok := known[base]; !ok {
				t.Errorf("%s: no metric of that name is registered in the code (expression %q)", name, e)
			}
		}
	}
}

// registeredMetrics maps each phoenix_ metric that the roles register to
// whether it is a histogram (whose series carry _bucket, _sum and _count).
// It asks the roles' own metric constructors, so a metric declared some
// other way is not missed silently: an alert on it fails this test.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := recorder{}
	worker.NewMetrics(known, 0)
	handlers.NewMetrics(known, "shop")
	handlers.NewLoginMetrics(known)
	new(handlers.Health).Export(known, "shop")
	for _, want := range []string{"phoenix_likes_total", "phoenix_worker_events_parked_total", "phoenix_worker_redis_repairs_total", "phoenix_ready"} {
		if _, ok := known[want]; !ok {
			t.Fatalf("found no metric %s: the descriptions no longer read as expected (found %v)", want, known)
		}
	}
	if !known["phoenix_http_request_duration_seconds"] || known["phoenix_likes_total"] {
		t.Fatalf("histograms not told apart from other metrics (found %v)", known)
	}
	return known
}

// recorder is a prometheus.Registerer that notes the name of every metric
// registered with it, and whether it is a histogram.
type recorder map[string]bool

// fqName reads a metric's name from its description.
var fqName = regexp.MustCompile(`fqName: "(phoenix_[a-z0-9_]+)"`)

func (r recorder) Register(c prometheus.Collector) error {
	_, histogram := c.(prometheus.Histogram)
	_, histograms := c.(*prometheus.HistogramVec)
	descs := make(chan *prometheus.Desc)
	go func() { c.Describe(descs); close(descs) }()
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r[m[1]] = histogram || histograms
		}
	}
	return nil
}

func (r recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r recorder) Unregister(prometheus.Collector) bool { return false }

// TestDashboard_Queries: each panel's queries parse as PromQL (promtool
// checks them as recording rules), read only the data source variable, and
// every rule-recorded series the dashboard reads is recorded.
func TestDashboard_Queries(t *testing.T) {
	pt := promtool(t)
	d := loadDashboard(t)
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatal("dashboard has no uid or no panels")
	}
	var recorded []string
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded = append(recorded, r.Record)
			}
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			// Grafana fills in $__rate_interval; promtool needs a duration.
			expr := strings.ReplaceAll(tg.Expr, "$__rate_interval", "5m")
			if strings.Contains(expr, "$") {
				t.Errorf("panel %q: query %q uses a variable other than $__rate_interval", p.Title, tg.Expr)
			}
			for _, name := range regexp.MustCompile(`\bphoenix:[a-z0-9_:]+`).FindAllString(expr, -1) {
				if !slices.Contains(recorded, name) {
					t.Errorf("panel %q reads %s, which no rule records", p.Title, name)
				}
			}
			n++
			fmt.Fprintf(&rules, "      - record: dashboard:query_%d\n        expr: %s\n", n, strconv.Quote(expr))
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, pt, "check", "rules", path)
}
