package authz

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"portcullis/authn"
)

// benchInput is a typical call: an API key in two groups asking for a
// model its groups allow.
func benchInput() *Input {
	return &Input{
		Identity: &authn.Identity{Type: authn.TypeAPIKey, Subject: "alice", Groups: []string{"analysts", "engineering"}},
		Request:  Request{API: "chat", Model: "gpt-4o-mini", Stream: true, ClientIP: "127.0.0.1", UserAgent: "bench"},
		Time:     time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	}
}

// benchEngine loads the repository's default policy, or the folder named by
// PORTCULLIS_BENCH_POLICY.
func benchEngine(b *testing.B) *Engine {
	dir := "../policies"
	if d := os.Getenv("PORTCULLIS_BENCH_POLICY"); d != "" {
		dir = d
	}
	e, err := Load(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkDecide measures one decision of the default policy on the
// request path, as a repeat call (answered from the decision cache) and as
// a new one (a full Rego evaluation through the prepared query), and
// reports p50 and p99 besides the mean.
func BenchmarkDecide(b *testing.B) {
	e := benchEngine(b)
	bundle := e.current.Load()
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		decide func(*Input) (Decision, error)
	}{
		{"cached", func(in *Input) (Decision, error) { return e.Decide(ctx, in) }},
		{"evaluated", func(in *Input) (Decision, error) { return bundle.evaluate(ctx, in) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := benchInput()
			times := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if d, err := tc.decide(in); err != nil || !d.Allow {
					b.Fatalf("decision %+v, %v", d, err)
				}
				times = append(times, time.Since(start))
			}
			slices.Sort(times)
			at := func(q float64) float64 { return float64(times[int(q*float64(len(times)-1))].Nanoseconds()) / 1000 }
			b.ReportMetric(at(0.50), "p50-µs")
			b.ReportMetric(at(0.99), "p99-µs")
		})
	}
}
