package openai

import (
	"strings"
	"testing"
)

// BenchmarkParseAndEncode measures reading a chat request and rewriting its
// model and stream options, for a small and a large (≈1 MiB) body.
func BenchmarkParseAndEncode(b *testing.B) {
	small := []byte(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"Name the three primary colors."}],"temperature":0.2}`)
	large := []byte(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("lorem ipsum ", 90000) + `"}]}`)
	for _, tc := range []struct {
		name string
		body []byte
	}{{"small", small}, {"1MiB", large}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				req, err := ParseChatRequest(tc.body)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := req.Encode("gpt-4o-mini", true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
