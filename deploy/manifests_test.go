// Package deploy holds the deployment files; its tests check that the
// Kubernetes manifests decode strictly into the API types and meet the
// platform rules (probes, resources, a locked-down container).
package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// manifests is every object of one rendering (the Kustomize base, or the
// Helm chart's output), decoded strictly.
type manifests struct {
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	services     map[string]*corev1.Service
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	configMaps   map[string]*corev1.ConfigMap
	ingresses    map[string]*networkingv1.Ingress
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

func newManifests() *manifests {
	return &manifests{
		deployments:  map[string]*appsv1.Deployment{},
		statefulSets: map[string]*appsv1.StatefulSet{},
		services:     map[string]*corev1.Service{},
		hpas:         map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs:         map[string]*policyv1.PodDisruptionBudget{},
		configMaps:   map[string]*corev1.ConfigMap{},
		ingresses:    map[string]*networkingv1.Ingress{},
	}
}

func loadBase(t *testing.T) *manifests {
	t.Helper()
	var kust struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Labels     []json   `json:"labels"`
		Resources  []string `json:"resources"`
	}
	readStrict(t, filepath.Join("k8s", "base", "kustomization.yaml"), &kust)
	m := newManifests()
	for _, res := range kust.Resources {
		data, err := os.ReadFile(filepath.Join("k8s", "base", res))
		if err != nil {
			t.Fatal(err)
		}
		m.decode(t, res, data)
	}
	return m
}

// decode adds each YAML document of data, strictly decoded into its API
// type; an unknown kind, field or duplicate name fails the test.
func (m *manifests) decode(t *testing.T, source string, data []byte) {
	t.Helper()
	for i, doc := range docSeparator.Split(string(data), -1) {
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		where := fmt.Sprintf("%s document %d", source, i+1)
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		switch meta.Kind {
		case "Deployment":
			add(t, where, doc, m.deployments)
		case "StatefulSet":
			add(t, where, doc, m.statefulSets)
		case "Service":
			add(t, where, doc, m.services)
		case "HorizontalPodAutoscaler":
			add(t, where, doc, m.hpas)
		case "PodDisruptionBudget":
			add(t, where, doc, m.pdbs)
		case "ConfigMap":
			add(t, where, doc, m.configMaps)
		case "Ingress":
			add(t, where, doc, m.ingresses)
		default:
			t.Fatalf("%s: unexpected kind %q", where, meta.Kind)
		}
	}
}

// stripComments drops whole-line comments, so that a document of only
// comments (as helm template prints for an empty template) counts as empty.
func stripComments(doc string) []byte {
	var out []byte
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out = append(out, line...)
		}
	}
	return out
}

// json is any JSON value, for the parts of kustomization.yaml not checked here.
type json = map[string]any

// object is a Kubernetes object with a name.
type object interface{ GetName() string }

func add[T any, PT interface {
	*T
	object
}](t *testing.T, where, doc string, into map[string]PT) {
	t.Helper()
	obj := PT(new(T))
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatalf("%s: strict decode: %v", where, err)
	}
	if obj.GetName() == "" {
		t.Fatalf("%s: no metadata.name", where)
	}
	if _, dup := into[obj.GetName()]; dup {
		t.Fatalf("%s: a second object named %q", where, obj.GetName())
	}
	into[obj.GetName()] = obj
}

func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("%s: strict decode: %v", path, err)
	}
}

func TestManifests_Roles(t *testing.T) {
	m := loadBase(t)
	checkRoles(t, m)
	t.Run("stateful servers", func(t *testing.T) { checkStateful(t, m) })
}

// checkRoles applies the platform rules to the three Phoenix roles: locked-
// down pods with probes and resources, disruption budgets, enough replicas,
// an autoscaled shop, and Services that select pods.
func checkRoles(t *testing.T, m *manifests) {
	t.Helper()
	ports := map[string]int32{"shop": 8080, "admin": 8081, "worker": 8082}
	for role, port := range ports {
		t.Run(role, func(t *testing.T) {
			d, ok := m.deployments[role]
			if !ok {
				t.Fatalf("no Deployment %q", role)
			}
			pod := d.Spec.Template.Spec
			if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
				sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod must run as non-root with the RuntimeDefault seccomp profile")
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("want one container, got %d", len(pod.Containers))
			}
			c := pod.Containers[0]
			if !slices.Equal(c.Args, []string{role}) {
				t.Errorf("args %v, want [%s]", c.Args, role)
			}
			checkContainer(t, c, port)
			if _, ok := m.pdbs[role]; !ok {
				t.Errorf("no PodDisruptionBudget for %s", role)
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Errorf("want at least 2 replicas")
			}
			if !matches(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				t.Error("selector does not match the pod labels")
			}
		})
	}
	t.Run("shop autoscales", func(t *testing.T) {
		hpa, ok := m.hpas["shop"]
		if !ok || hpa.Spec.ScaleTargetRef.Name != "shop" || hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas {
			t.Fatal("want a HorizontalPodAutoscaler scaling the shop Deployment")
		}
	})
	t.Run("services select pods", func(t *testing.T) {
		for name, svc := range m.services {
			found := false
			for _, d := range m.deployments {
				found = found || matches(svc.Spec.Selector, d.Spec.Template.Labels)
			}
			for _, s := range m.statefulSets {
				found = found || matches(svc.Spec.Selector, s.Spec.Template.Labels)
			}
			if !found {
				t.Errorf("Service %s selects no pods", name)
			}
		}
	})
}

// checkStateful applies the platform rules to the in-cluster Redis and
// PostgreSQL: probes, limits and a volume for the data.
func checkStateful(t *testing.T, m *manifests) {
	t.Helper()
	for _, name := range []string{"redis", "postgres"} {
		s, ok := m.statefulSets[name]
		if !ok {
			t.Fatalf("no StatefulSet %s", name)
		}
		c := s.Spec.Template.Spec.Containers[0]
		if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s needs probes and limits", name)
		}
		if len(s.Spec.VolumeClaimTemplates) == 0 {
			t.Errorf("%s keeps no data", name)
		}
	}
	// Bounded, and never evicting: an evicted key is a lost Like.
	args := strings.Join(m.statefulSets["redis"].Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--maxmemory ") || !strings.Contains(args, "--maxmemory-policy noeviction") {
		t.Errorf("Redis args %q lack --maxmemory and --maxmemory-policy noeviction", args)
	}
}

// checkContainer applies the platform rules to one Phoenix container.
func checkContainer(t *testing.T, c corev1.Container, port int32) {
	t.Helper()
	named := map[string]int32{}
	for _, p := range c.Ports {
		named[p.Name] = p.ContainerPort
	}
	if named["http"] != port {
		t.Errorf("http port %d, want %d", named["http"], port)
	}
	for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if named[probe.HTTPGet.Port.String()] == 0 {
			t.Errorf("%s probe port %q is not a named container port", name, probe.HTTPGet.Port.String())
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness path %q, want /healthz", c.LivenessProbe.HTTPGet.Path)
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness path %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	r := c.Resources
	if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Cpu().IsZero() || r.Limits.Memory().IsZero() {
		t.Error("want CPU and memory requests and limits")
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("no container securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation must be off")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("root filesystem must be read-only")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Error("capabilities must drop ALL")
	}
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestManifests_Overlay(t *testing.T) {
	var kust struct {
		APIVersion      string   `json:"apiVersion"`
		Kind            string   `json:"kind"`
		Namespace       string   `json:"namespace"`
		Resources       []string `json:"resources"`
		Images          []json   `json:"images"`
		SecretGenerator []json   `json:"secretGenerator"`
		Patches         []json   `json:"patches"`
	}
	dir := filepath.Join("k8s", "overlays", "example")
	readStrict(t, filepath.Join(dir, "kustomization.yaml"), &kust)
	for _, res := range kust.Resources {
		if _, err := os.Stat(filepath.Join(dir, res)); err != nil {
			t.Errorf("overlay resource %s: %v", res, err)
		}
	}
	var ns corev1.Namespace
	readStrict(t, filepath.Join(dir, "namespace.yaml"), &ns)
	if ns.Name != kust.Namespace {
		t.Errorf("namespace %q, overlay uses %q", ns.Name, kust.Namespace)
	}
}

func TestCompose(t *testing.T) {
	var compose struct {
		Services map[string]json `json:"services"`
	}
	data, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"phoenix", "shop", "admin", "worker", "redis", "postgres"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("compose has no service %q", name)
		}
	}
	for _, name := range []string{"redis", "postgres"} {
		if _, ok := compose.Services[name]["healthcheck"]; !ok {
			t.Errorf("service %s has no health check", name)
		}
	}
	if !bytes.Contains(data, []byte("--appendonly")) {
		t.Error("compose Redis must run with the append-only file on")
	}
	if !bytes.Contains(data, []byte(`"--maxmemory-policy", "noeviction"`)) {
		t.Error("compose Redis must be bounded with --maxmemory and never evict")
	}
}
