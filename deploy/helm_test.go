package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// helmModule is the Helm command, built from its Go module at a pinned
// version through the module proxy (no release binary is downloaded).
// Compiling it takes a few CPU-minutes once; the Go build cache keeps the
// binary for every later run.
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

var (
	chartDir       = filepath.Join("helm", "phoenix")
	externalValues = filepath.Join(chartDir, "ci", "external-values.yaml")
)

// helm runs the pinned Helm with args and returns its standard output and
// error; stderr is in the error.
func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"run", helmModule}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &helmError{args: args, err: err, stderr: stderr.String()}
	}
	return out, nil
}

type helmError struct {
	args   []string
	err    error
	stderr string
}

func (e *helmError) Error() string {
	return "helm " + strings.Join(e.args, " ") + ": " + e.err.Error() + "\n" + e.stderr
}

func render(t *testing.T, args ...string) *manifests {
	t.Helper()
	out, err := helm(t, append([]string{"template", "phoenix", chartDir}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	m := newManifests()
	m.decode(t, "helm template "+strings.Join(args, " "), out)
	return m
}

// TestHelm_Lint: the chart lints clean, with warnings as errors, under its
// defaults and under the production-like values.
func TestHelm_Lint(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", externalValues}} {
		out, err := helm(t, append([]string{"lint", "--strict", chartDir}, args...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
}

// TestHelm_Template: the chart's output decodes strictly and passes the
// platform rules of the Kustomize base. With the defaults it renders the
// base's objects with the same specs; with external stores and an ingress
// it drops the StatefulSets and serves both hosts over TLS.
func TestHelm_Template(t *testing.T) {
	t.Run("defaults are the Kustomize base", func(t *testing.T) {
		m := render(t)
		checkRoles(t, m)
		checkStateful(t, m)
		sameObjects(t, loadBase(t), m)
	})

	t.Run("external stores and ingress", func(t *testing.T) {
		m := render(t, "-f", externalValues)
		checkRoles(t, m)
		if len(m.statefulSets) != 0 {
			t.Errorf("StatefulSets %v rendered with external Redis and PostgreSQL", keys(m.statefulSets))
		}
		for _, name := range []string{"redis", "postgres"} {
			if _, ok := m.services[name]; ok {
				t.Errorf("Service %s rendered with an external server", name)
			}
		}
		if got := m.configMaps["phoenix-config"].Data["PHOENIX_REDIS_URL"]; got != "rediss://redis.example.internal:6380/0" {
			t.Errorf("PHOENIX_REDIS_URL %q, want the external URL", got)
		}
		for name, d := range m.deployments {
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "registry.example.com/phoenix:1.2.3" {
				t.Errorf("%s image %q", name, c.Image)
			}
			if len(c.EnvFrom) != 2 || c.EnvFrom[1].SecretRef == nil || c.EnvFrom[1].SecretRef.Name != "phoenix-prod" {
				t.Errorf("%s does not read the existing Secret phoenix-prod: %+v", name, c.EnvFrom)
			}
		}
		if r := m.deployments["shop"].Spec.Replicas; r == nil || *r != 6 {
			t.Errorf("shop replicas %v, want 6", r)
		}
		if hpa, ok := m.hpas["worker"]; !ok || hpa.Spec.MaxReplicas != 8 {
			t.Error("want the worker autoscaled up to 8")
		}
		if pdb := m.pdbs["shop"]; pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 4 {
			t.Errorf("shop PDB minAvailable %v, want 4", pdb.Spec.MinAvailable)
		}
		checkIngress(t, m)
	})

	t.Run("no secret named", func(t *testing.T) {
		_, err := helm(t, "template", "phoenix", chartDir, "--set", "existingSecret=")
		if err == nil || !strings.Contains(err.Error(), "existingSecret: name the Secret") {
			t.Errorf("want a clear error naming existingSecret, got %v", err)
		}
	})
}

// checkIngress: every host is served over TLS and routes to a Service that
// exists, on its named http port.
func checkIngress(t *testing.T, m *manifests) {
	t.Helper()
	ing, ok := m.ingresses["phoenix"]
	if !ok {
		t.Fatal("no Ingress phoenix")
	}
	var tlsHosts []string
	for _, tls := range ing.Spec.TLS {
		if tls.SecretName == "" {
			t.Error("a TLS entry without a Secret")
		}
		tlsHosts = append(tlsHosts, tls.Hosts...)
	}
	var hosts []string
	for _, rule := range ing.Spec.Rules {
		hosts = append(hosts, rule.Host)
		if !slices.Contains(tlsHosts, rule.Host) {
			t.Errorf("host %q is not covered by TLS", rule.Host)
		}
		for _, p := range rule.HTTP.Paths {
			svc := p.Backend.Service
			if svc == nil || m.services[svc.Name] == nil || svc.Port.Name != "http" {
				t.Errorf("host %q routes to %+v, not to a Service's http port", rule.Host, p.Backend)
			}
		}
	}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"admin.example.com", "shop.example.com"}) {
		t.Errorf("hosts %v, want the admin and the shop", hosts)
	}
}

// sameObjects: the chart renders the base's objects, by kind and name, with
// the same specs where the platform is concerned (replicas, pods'
// containers, ports, probes, resources, security, budgets, autoscaling,
// settings). Names, images and Helm's own labels and annotations may differ.
func sameObjects(t *testing.T, base, chart *manifests) {
	t.Helper()
	sameKeys := func(kind string, a, b []string) {
		if !slices.Equal(a, b) {
			t.Errorf("%s: base has %v, chart has %v", kind, a, b)
		}
	}
	sameKeys("Deployments", keys(base.deployments), keys(chart.deployments))
	sameKeys("StatefulSets", keys(base.statefulSets), keys(chart.statefulSets))
	sameKeys("Services", keys(base.services), keys(chart.services))
	sameKeys("HorizontalPodAutoscalers", keys(base.hpas), keys(chart.hpas))
	sameKeys("PodDisruptionBudgets", keys(base.pdbs), keys(chart.pdbs))
	sameKeys("ConfigMaps", keys(base.configMaps), keys(chart.configMaps))
	same := func(what string, a, b any) {
		if !equality.Semantic.DeepEqual(a, b) {
			t.Errorf("%s differs:\nbase:  %+v\nchart: %+v", what, a, b)
		}
	}
	for name, bd := range base.deployments {
		cd, ok := chart.deployments[name]
		if !ok {
			continue
		}
		same(name+" replicas", bd.Spec.Replicas, cd.Spec.Replicas)
		same(name+" selector", bd.Spec.Selector, cd.Spec.Selector)
		bp, cp := bd.Spec.Template.Spec, cd.Spec.Template.Spec
		same(name+" pod security", bp.SecurityContext, cp.SecurityContext)
		same(name+" grace period", bp.TerminationGracePeriodSeconds, cp.TerminationGracePeriodSeconds)
		same(name+" service account token", bp.AutomountServiceAccountToken, cp.AutomountServiceAccountToken)
		bc, cc := bp.Containers[0], cp.Containers[0]
		same(name+" args", bc.Args, cc.Args)
		same(name+" ports", bc.Ports, cc.Ports)
		same(name+" envFrom", bc.EnvFrom, cc.EnvFrom)
		same(name+" liveness", bc.LivenessProbe, cc.LivenessProbe)
		same(name+" readiness", bc.ReadinessProbe, cc.ReadinessProbe)
		same(name+" resources", bc.Resources, cc.Resources)
		same(name+" container security", bc.SecurityContext, cc.SecurityContext)
		for _, e := range bc.Env {
			if !slices.ContainsFunc(cc.Env, func(c corev1.EnvVar) bool { return equality.Semantic.DeepEqual(e, c) }) {
				t.Errorf("%s: the chart lacks env %s", name, e.Name)
			}
		}
		same(name+" annotations", bd.Spec.Template.Annotations["prometheus.io/port"], cd.Spec.Template.Annotations["prometheus.io/port"])
	}
	for name, bs := range base.statefulSets {
		if cs, ok := chart.statefulSets[name]; ok {
			same(name+" pod", bs.Spec.Template.Spec, cs.Spec.Template.Spec)
			same(name+" volumes", bs.Spec.VolumeClaimTemplates[0].Spec, cs.Spec.VolumeClaimTemplates[0].Spec)
		}
	}
	for name, b := range base.services {
		if c, ok := chart.services[name]; ok {
			same(name+" Service", b.Spec, c.Spec)
		}
	}
	for name, b := range base.hpas {
		if c, ok := chart.hpas[name]; ok {
			same(name+" HPA", b.Spec, c.Spec)
		}
	}
	for name, b := range base.pdbs {
		if c, ok := chart.pdbs[name]; ok {
			same(name+" PDB", b.Spec, c.Spec)
		}
	}
	for name, b := range base.configMaps {
		if c, ok := chart.configMaps[name]; ok {
			same(name+" settings", b.Data, c.Data)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
