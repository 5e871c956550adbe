package telemetry_test

import (
	"context"
	"strings"
	"testing"

	"phoenix/telemetry"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestEnabled checks the rule that turns tracing on, and that Start gives
// no provider at all when it is off.
func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		want bool
	}{
		{"NothingSet", nil, false},
		{"SamplerOnly", map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}, false},
		{"MetricsEndpointOnly", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318"}, false},
		{"Endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true},
		{"TracesEndpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true},
		{"ExporterOTLP", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"ExporterNoneWinsOverEndpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := telemetry.Enabled(env(tc.vars)); got != tc.want {
				t.Fatalf("Enabled = %v, want %v", got, tc.want)
			}
			tr, err := telemetry.Start(context.Background(), env(tc.vars), "phoenix-test")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tr.Shutdown(context.Background()) }()
			if on := tr.Provider() != nil; on != tc.want {
				t.Errorf("Start gave a provider: %v, want %v", on, tc.want)
			}
		})
	}
}

// TestStart_BadSettings checks that a bad setting stops the start with an
// error naming it.
func TestStart_BadSettings(t *testing.T) {
	on := "http://127.0.0.1:4318"
	for _, tc := range []struct {
		vars map[string]string
		name string
	}{
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": on, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": on, "OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": on, "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"},
	} {
		tr, err := telemetry.Start(context.Background(), env(tc.vars), "phoenix-test")
		if err == nil || !strings.HasPrefix(err.Error(), tc.name+":") {
			_ = tr.Shutdown(context.Background())
			t.Errorf("%v: error %v, want one naming %s", tc.vars, err, tc.name)
		}
	}
}

// TestSampler checks the samplers the specification names, and the ratio.
func TestSampler(t *testing.T) {
	for _, tc := range []struct {
		sampler, arg, want string
	}{
		{"", "", "ParentBased{root:AlwaysOnSampler"},
		{"always_off", "", "AlwaysOffSampler"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
		{"parentbased_traceidratio", "0.01", "ParentBased{root:TraceIDRatioBased{0.01}"},
	} {
		s, err := telemetry.Sampler(env(map[string]string{"OTEL_TRACES_SAMPLER": tc.sampler, "OTEL_TRACES_SAMPLER_ARG": tc.arg}))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.sampler, tc.arg, err)
		}
		if !strings.HasPrefix(s.Description(), tc.want) {
			t.Errorf("%s %s: %s, want %s…", tc.sampler, tc.arg, s.Description(), tc.want)
		}
	}
}
