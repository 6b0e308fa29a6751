package proxy

import (
	"net/http/httptest"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/adapters/demo"
	"portcullis/adapters/openai"
	"portcullis/authn"
	"portcullis/authz"
)

// BenchmarkCallSpans measures what tracing adds to one call, alone: the
// server span and the authenticate, authorize, upstream and stream spans
// begun and ended as the request path does. With tracing off it must
// allocate nothing.
func BenchmarkCallSpans(b *testing.B) {
	rt := &route{upstreamModel: "gpt-4o-mini", provider: openai.New(openai.Options{Name: "upstream", BaseURL: "http://x", Transport: &demo.Transport{}})}
	id := &authn.Identity{Type: "apikey", Subject: "alice", Credential: "eng"}
	d := &authz.Decision{Allow: true, Revision: "r1"}
	for _, tc := range []struct {
		name   string
		tracer trace.Tracer
	}{
		{"tracing=off", nil},
		{"tracing=on", sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter()))).Tracer("bench")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := &Server{tracer: tc.tracer, log: zap.NewNop()}
			r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
			r.Pattern = "/v1/chat/completions"
			b.ReportAllocs()
			for b.Loop() {
				c := call{r: r, log: s.log}
				c.rec.Method, c.rec.Status = r.Method, 200
				s.startTrace(&c)
				endAuthnSpan(s.startSpan(&c, "authenticate", trace.SpanKindInternal), id, nil)
				endAuthzSpan(s.startSpan(&c, "authorize", trace.SpanKindInternal), d, nil)
				endAttemptSpan(s.startSpan(&c, "upstream", trace.SpanKindClient), rt, 1, 0, "upstream_unreachable")
				endStreamSpan(s.startSpan(&c, "stream", trace.SpanKindInternal), &c)
				s.endTrace(&c)
			}
		})
	}
}
