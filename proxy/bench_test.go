package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"portcullis/tracing"
)

// BenchmarkChat measures one call through the whole request path (API key,
// policy, passthrough, audit to memory) against a local fake upstream,
// with tracing off (the default) and on (every call sampled, its spans
// batched to an exporter that discards them).
func BenchmarkChat(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"non-stream", chatBody},
		{"stream", `{"model":"smart","stream":true,"messages":[{"role":"user","content":"Name the three primary colors."}]}`},
	} {
		for _, traced := range []bool{false, true} {
			name := tc.name + "/tracing=off"
			var tracer trace.Tracer
			if traced {
				name = tc.name + "/tracing=on"
				e := tracing.NewForTest(sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter()), 1)
				b.Cleanup(func() { _ = e.Shutdown(b.Context()) })
				tracer = e.Tracer()
			}
			b.Run(name, func(b *testing.B) {
				h := newHarness(b, harnessOptions{tracer: tracer})
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(tc.body))
					req.Header.Set("Authorization", "Bearer "+engKey)
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}
