package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkChat measures one call through the whole request path (API key,
// policy, passthrough, audit to memory) against a local fake upstream.
func BenchmarkChat(b *testing.B) {
	for _, tc := range []struct{ name, body string }{
		{"non-stream", chatBody},
		{"stream", `{"model":"smart","stream":true,"messages":[{"role":"user","content":"Name the three primary colors."}]}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newHarness(b, harnessOptions{})
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
