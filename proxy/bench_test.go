package proxy_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"portcullis/tracing"
	"portcullis/usage"
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

// BenchmarkChatMetered is BenchmarkChat's non-streamed call under a
// policy that sets two budgets and rate limits, without the meter (the
// limits only audited) and with it over the in-memory store (reserved
// and settled on every call).
func BenchmarkChatMetered(b *testing.B) {
	dir := b.TempDir()
	rego := `package portcullis

decision := {"allow": true, "budgets": [{"key": "group:engineering", "window": "day", "tokens": 1000000000000}, {"key": "user:alice", "window": "month", "usd": 1000000}], "rate_limits": {"requests_per_minute": 1000000000, "tokens_per_minute": 1000000000000}}
`
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rego), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, metered := range []bool{false, true} {
		name, o := "meter=off", harnessOptions{policyDir: dir}
		if metered {
			prices, _ := usage.NewPrices(nil)
			name, o.meter = "meter=on", usage.NewMeter(usage.NewMemoryStore(), prices, usage.Options{})
		}
		b.Run(name, func(b *testing.B) {
			h := newHarness(b, o)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(chatBody))
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
