package proxy

import (
	"cmp"
	"math/rand/v2"
	"slices"
)

// A selector orders a model's targets for one call: the first is where
// the call goes, the others are its fallbacks, in the order tried. Each
// strategy of the configuration (models[].strategy) is one selector.
type selector interface {
	order(targets []*route) []*route
}

var (
	_ selector = fallbackSelector{}
	_ selector = (*weightedSelector)(nil)
	_ selector = (*leastBusySelector)(nil)
)

// newSelector returns the selector of a configured strategy.
func newSelector(strategy string) selector {
	switch strategy {
	case "weighted":
		return &weightedSelector{}
	case "least-busy":
		return &leastBusySelector{}
	}
	return fallbackSelector{}
}

// fallbackSelector tries the targets in the order configured.
type fallbackSelector struct{}

func (fallbackSelector) order(targets []*route) []*route { return targets }

// weightedSelector sends each call first to a target drawn at random in
// proportion to its weight; the others follow in the order configured.
type weightedSelector struct {
	// intn draws in [0, n); nil is math/rand/v2's IntN.
	intn func(n int) int
}

func (w *weightedSelector) order(targets []*route) []*route {
	if len(targets) < 2 {
		return targets
	}
	total := 0
	for _, t := range targets {
		total += t.weight
	}
	if total <= 0 {
		return targets
	}
	draw := rand.IntN
	if w.intn != nil {
		draw = w.intn
	}
	n := draw(total)
	first := len(targets) - 1
	for i, t := range targets {
		if n < t.weight {
			first = i
			break
		}
		n -= t.weight
	}
	return moveFirst(targets, first)
}

// leastBusySelector sends each call first to the target with the fewest
// calls in flight on this gateway (the earliest configured among equals);
// the others follow by their load. A call counts as in flight on a target
// from its attempt's start to the end of its answer, stream included.
type leastBusySelector struct{}

func (*leastBusySelector) order(targets []*route) []*route {
	if len(targets) < 2 {
		return targets
	}
	out := slices.Clone(targets)
	slices.SortStableFunc(out, func(a, b *route) int {
		return cmp.Compare(a.inflight.Load(), b.inflight.Load())
	})
	return out
}

// moveFirst returns targets with the one at i first, the rest in order.
func moveFirst(targets []*route, i int) []*route {
	if i == 0 {
		return targets
	}
	out := make([]*route, 0, len(targets))
	out = append(out, targets[i])
	out = append(out, targets[:i]...)
	return append(out, targets[i+1:]...)
}
