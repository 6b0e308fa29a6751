package proxy

import (
	"math"
	"testing"
)

func targetsWithWeights(weights ...int) []*route {
	out := make([]*route, len(weights))
	for i, w := range weights {
		out[i] = &route{upstreamModel: string(rune('a' + i)), weight: w, health: &health{}}
	}
	return out
}

// Over 10,000 calls, each target of a weighted model comes first in
// proportion to its weight, within 2 points; the rest follow in order.
func TestWeightedSelectorOver10000Calls(t *testing.T) {
	targets := targetsWithWeights(1, 3, 6)
	sel := newSelector("weighted")
	first := map[*route]int{}
	const n = 10000
	for range n {
		order := sel.order(targets)
		if len(order) != 3 {
			t.Fatalf("order has %d targets", len(order))
		}
		first[order[0]]++
		// The fallbacks keep their configured order.
		var rest []*route
		for _, rt := range targets {
			if rt != order[0] {
				rest = append(rest, rt)
			}
		}
		if order[1] != rest[0] || order[2] != rest[1] {
			t.Fatal("fallbacks out of configured order")
		}
	}
	for i, rt := range targets {
		got, want := float64(first[rt])/n, float64(rt.weight)/10
		if math.Abs(got-want) > 0.02 {
			t.Errorf("target %d (weight %d) first in %.3f of calls, want %.2f±0.02", i, rt.weight, got, want)
		}
	}
}

// Least-busy under uneven latency: a simulation in steps, where a call on
// the slow target lasts 10 steps and on the fast one 1, and a call
// arrives at every step. The in-flight counts never differ by more than
// one, and the fast target serves most calls.
func TestLeastBusySelectorKeepsInFlightLevel(t *testing.T) {
	targets := targetsWithWeights(1, 1)
	slow, fast := targets[0], targets[1]
	lasts := map[*route]int{slow: 10, fast: 1}
	sel := newSelector("least-busy")
	type running struct {
		rt  *route
		end int
	}
	var live []running
	served := map[*route]int{}
	for step := range 1000 {
		kept := live[:0]
		for _, r := range live {
			if r.end <= step {
				r.rt.inflight.Add(-1)
				continue
			}
			kept = append(kept, r)
		}
		live = kept
		rt := sel.order(targets)[0]
		rt.inflight.Add(1)
		served[rt]++
		live = append(live, running{rt, step + lasts[rt]})
		if d := slow.inflight.Load() - fast.inflight.Load(); d > 1 || d < -1 {
			t.Fatalf("step %d: in flight %d (slow) and %d (fast)", step, slow.inflight.Load(), fast.inflight.Load())
		}
	}
	if served[fast] <= 5*served[slow] {
		t.Errorf("served slow %d, fast %d: the fast target should take most", served[slow], served[fast])
	}
}

// The fallback strategy keeps the configured order.
func TestFallbackSelectorKeepsOrder(t *testing.T) {
	targets := targetsWithWeights(1, 1, 1)
	order := newSelector("fallback").order(targets)
	for i := range targets {
		if order[i] != targets[i] {
			t.Fatalf("order changed at %d", i)
		}
	}
}

// Back-off doubles from its start up to the cap, drawn between half and
// all of it; a Retry-After within the cap is the wait, beyond it ends the
// target's retries.
func TestRetryWait(t *testing.T) {
	p := retryPolicy{attempts: 5, backoff: 100_000_000, maxBackoff: 350_000_000, maxRetryAfter: 2_000_000_000}
	for n, full := range map[int]int64{1: 100_000_000, 2: 200_000_000, 3: 350_000_000, 4: 350_000_000} {
		for range 100 {
			d, ok := p.wait(n, 0)
			if !ok || int64(d) < full/2 || int64(d) > full {
				t.Fatalf("retry %d waits %v, want between %v and %v", n, d, full/2, full)
			}
		}
	}
	if d, ok := p.wait(1, 1_500_000_000); !ok || d != 1_500_000_000 {
		t.Errorf("Retry-After 1.5s: wait %v ok %v", d, ok)
	}
	if _, ok := p.wait(1, 3_000_000_000); ok {
		t.Error("a Retry-After over the cap should end the target's retries")
	}
}
