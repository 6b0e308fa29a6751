package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTracing(t *testing.T) {
	off, err := Parse("c.yaml", []byte("audit:\n  stdout: true\n"), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if tr := off.Tracing; tr.Enabled() || *tr.SampleRatio != 1 || tr.ServiceName != "portcullis" || tr.Timeout.Std() != 10*time.Second {
		t.Errorf("default tracing = %+v", tr)
	}
	if off.Audit.ContentMaxBytes != 32<<10 {
		t.Errorf("default audit.content_max_bytes = %d", off.Audit.ContentMaxBytes)
	}

	t.Setenv("TRACE_TOKEN", "s3cret")
	on, err := Parse("c.yaml", []byte(`audit:
  stdout: true
  content_max_bytes: 1000
tracing:
  endpoint: http://127.0.0.1:4318
  sample_ratio: 0
  service_name: gw-eu
  headers: {Authorization: "Bearer ${TRACE_TOKEN}"}
  timeout: 2s
`), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	tr := on.Tracing
	if !tr.Enabled() || tr.Endpoint != "http://127.0.0.1:4318/v1/traces" || *tr.SampleRatio != 0 || tr.ServiceName != "gw-eu" ||
		tr.Headers["Authorization"].Reveal() != "Bearer s3cret" || tr.Timeout.Std() != 2*time.Second || on.Audit.ContentMaxBytes != 1000 {
		t.Errorf("tracing = %+v, content_max_bytes %d", tr, on.Audit.ContentMaxBytes)
	}
	kept, err := Parse("c.yaml", []byte("audit:\n  stdout: true\ntracing:\n  endpoint: https://otel.example.com/otlp/v1/traces\n"), os.LookupEnv)
	if err != nil || kept.Tracing.Endpoint != "https://otel.example.com/otlp/v1/traces" {
		t.Errorf("endpoint with a path = %q, %v; want it kept", kept.Tracing.Endpoint, err)
	}

	for _, tc := range []struct{ src, path, text string }{
		{"tracing:\n  endpoint: 127.0.0.1:4318\n", "tracing.endpoint", "not an http(s) URL"},
		{"tracing:\n  endpoint: grpc://collector:4317\n", "tracing.endpoint", "not an http(s) URL"},
		{"tracing:\n  endpoint: http://c:4318\n  sample_ratio: 1.5\n", "tracing.sample_ratio", "not between 0 and 1"},
		{"tracing:\n  endpoint: http://c:4318\n  sample_ratio: -0.1\n", "tracing.sample_ratio", "not between 0 and 1"},
		{"tracing:\n  endpoint: http://c:4318\n  sample_ratio: all\n", "tracing.sample_ratio", "not a valid float64"},
		{"tracing:\n  endpoint: http://c:4318\n  timeout: soon\n", "tracing.timeout", "not a duration"},
		{"tracing:\n  headers: {X-Key: k}\n", "tracing.headers", "without tracing.endpoint"},
		{"tracing:\n  endpoint: http://c:4318\n  sampler: always\n", "tracing.sampler", "unknown field"},
		{"audit:\n  stdout: true\n  content_max_bytes: -1\n", "audit.content_max_bytes", "negative"},
	} {
		src := tc.src
		if !strings.Contains(src, "audit:") {
			src = "audit:\n  stdout: true\n" + src
		}
		_, err := Parse("c.yaml", []byte(src), os.LookupEnv)
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Errorf("%q: error %v", tc.src, err)
			continue
		}
		found := false
		for _, fe := range errs.List {
			found = found || (fe.Path == tc.path && strings.Contains(fe.Problem, tc.text) && fe.Line > 0)
		}
		if !found || errs.File != "c.yaml" {
			t.Errorf("%q: %v; want c.yaml, a line, %s: %s", tc.src, err, tc.path, tc.text)
		}
	}
}

// The commented tracing block of config.example.yaml loads once uncommented.
func TestExampleTracingBlock(t *testing.T) {
	src, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(src), "\n# tracing:\n")
	if !found {
		t.Fatal("config.example.yaml has no commented tracing block")
	}
	var lines []string
	for _, l := range strings.Split("# tracing:\n"+block, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
	}
	c := mustParse(t, minimal+strings.Join(lines, "\n")+"\n", map[string]string{"TRACING_TOKEN": "t0k"})
	if tr := c.Tracing; !tr.Enabled() || *tr.SampleRatio != 0.1 || tr.Headers["Authorization"].Reveal() != "Bearer t0k" {
		t.Errorf("tracing block = %+v", tr)
	}
}
