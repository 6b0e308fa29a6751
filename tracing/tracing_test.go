package tracing_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/config"
	"portcullis/internal/testkit"
	"portcullis/tracing"
)

func parse(t *testing.T, section string) config.Tracing {
	t.Helper()
	cfg, err := config.Parse("c.yaml", []byte("audit:\n  stdout: true\n"+section), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Tracing
}

// Without an endpoint there is no tracer, and nothing to shut down.
func TestOff(t *testing.T) {
	e, err := tracing.New(parse(t, ""), "v1", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if e.Enabled() || e.Tracer() != nil {
		t.Errorf("tracing is on without an endpoint: %+v", e)
	}
	if err := e.Shutdown(context.Background()); err != nil {
		t.Error(err)
	}
}

// With an endpoint, spans reach an OTLP/HTTP receiver with the service's
// name and version and the configured headers, and a ratio of 0 records
// only the traces whose caller sampled them.
func TestExportsOverOTLPHTTP(t *testing.T) {
	col := testkit.NewCollector(t)
	e, err := tracing.New(parse(t, "tracing:\n  endpoint: "+col.URL+"\n  service_name: gw-test\n  sample_ratio: 0\n  headers: {X-Api-Key: k3y}\n"), "v1.2.3", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !e.Enabled() || e.Tracer() == nil {
		t.Fatal("tracing is off with an endpoint")
	}
	ctx := context.Background()
	_, unsampled := e.Tracer().Start(ctx, "not sampled")
	unsampled.End()
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	_, span := e.Tracer().Start(trace.ContextWithRemoteSpanContext(ctx, parent), "sampled by the caller")
	span.End()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := col.WaitForTrace(t, "4bf92f3577b34da6a3ce929d0e0e4736", "sampled by the caller")
	if len(col.Spans()) != 1 {
		t.Errorf("received %v; want only the caller-sampled span (sample_ratio 0)", col.Spans())
	}
	s := spans[0]
	if s.ParentSpanID != "00f067aa0ba902b7" || s.Resource["service.name"] != "gw-test" || s.Resource["service.version"] != "v1.2.3" ||
		!strings.HasPrefix(s.Resource["telemetry.sdk.language"], "go") {
		t.Errorf("span %+v", s)
	}
	if got := col.Header().Get("X-Api-Key"); got != "k3y" {
		t.Errorf("export header X-Api-Key = %q", got)
	}
}
