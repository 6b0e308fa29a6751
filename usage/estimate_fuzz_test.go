package usage

import (
	"testing"
	"unicode/utf8"
)

// FuzzEstimate runs the estimates over arbitrary request bodies and
// stream events (outside input): they never panic, never go below the
// reply's priming (requests) or zero (events), and text costs at least a
// token per 32 bytes and at most one per byte.
func FuzzEstimate(f *testing.F) {
	f.Add([]byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"Hello, world!"}]}`))
	f.Add([]byte(`{"choices":[{"delta":{"content":" word","tool_calls":[{"function":{"arguments":"{\"a\":1}"}}]}}]}`))
	f.Add([]byte(`{"type":"content_block_delta","delta":{"type":"text_delta","text":"日本語のテキスト"}}`))
	f.Add([]byte(`"unterminated \"string`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n := EstimateRequest(b); n < primingTokens {
			t.Fatalf("request estimate %d", n)
		}
		if n := EstimateOutput(b); n < 0 {
			t.Fatalf("output estimate %d", n)
		}
		n := EstimateText(string(b))
		if n < 0 || n > int64(len(b)) {
			t.Fatalf("text estimate %d for %d bytes", n, len(b))
		}
		if utf8.Valid(b) && len(b) >= 64 && n == 0 {
			t.Fatalf("text estimate 0 for %d bytes", len(b))
		}
	})
}
