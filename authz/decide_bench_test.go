package authz

import (
	"context"
	"os"
	"testing"
	"time"

	"portcullis/authn"
)

// BenchmarkDecide measures one evaluation of the repository's default
// policy through the prepared query. PORTCULLIS_BENCH_POLICY names another
// policy folder to measure.
func BenchmarkDecide(b *testing.B) {
	dir := "../policies"
	if d := os.Getenv("PORTCULLIS_BENCH_POLICY"); d != "" {
		dir = d
	}
	e, err := Load(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	in := &Input{
		Identity: &authn.Identity{Type: authn.TypeAPIKey, Subject: "alice", Groups: []string{"analysts", "engineering"}},
		Request:  Request{API: "chat", Model: "gpt-4o-mini", Stream: true, ClientIP: "127.0.0.1", UserAgent: "bench"},
		Time:     time.Now(),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(ctx, in)
		if err != nil || !d.Allow {
			b.Fatalf("decision %+v, %v", d, err)
		}
	}
}
