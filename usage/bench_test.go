package usage

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// benchReserveSettle measures one call's accounting: a reservation
// against two budgets and the caller's rate limits, then its settlement.
func benchReserveSettle(b *testing.B, s Store) {
	ctx := context.Background()
	m := meterOn(s, Options{})
	req := &Request{
		Budgets: []Budget{
			{Key: "group:ml", Window: "day", Tokens: 1 << 60},
			{Key: "user:alice", Window: "month", USD: 1e6},
		},
		Rate:  RateLimits{Key: "user:alice", RequestsPerMinute: 1 << 40, TokensPerMinute: 1 << 60},
		Model: "gpt-4o-mini", InputTokens: 120, MaxOutputTokens: 512,
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := m.Reserve(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Settle(ctx, Tokens{Input: 118, Output: 240}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReserveSettle(b *testing.B) {
	b.Run("store=embedded", func(b *testing.B) {
		s, err := OpenLocalStore(filepath.Join(b.TempDir(), "usage.log"), FileOptions{FlushInterval: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchReserveSettle(b, s)
	})
	b.Run("store=redis", func(b *testing.B) {
		s, err := OpenRedisStore(startRedis(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchReserveSettle(b, s)
	})
}
