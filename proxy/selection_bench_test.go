package proxy

import "testing"

// BenchmarkSelectors measures choosing the order of a call's targets, for
// each strategy over three targets.
func BenchmarkSelectors(b *testing.B) {
	targets := targetsWithWeights(1, 3, 6)
	for _, strategy := range []string{"fallback", "weighted", "least-busy"} {
		b.Run(strategy, func(b *testing.B) {
			sel := newSelector(strategy)
			b.ReportAllocs()
			for b.Loop() {
				_ = sel.order(targets)
			}
		})
	}
}
