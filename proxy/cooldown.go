package proxy

import (
	"sync"
	"time"
)

// health is a target's passive health, a circuit breaker fed by the
// target's own answers: closed while it answers; open (out of rotation)
// for a period once it failed so many times in a row; then half-open,
// when exactly one call probes it, whose success closes it again and whose
// failure opens it for another period. No requests are sent only to check.
type health struct {
	// threshold is the consecutive failures that open it; 0 never opens.
	threshold int
	period    time.Duration
	// now is the clock; tests replace it.
	now func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time // zero: closed
	probing   bool      // the half-open probe is out
	cooldowns uint64    // times it opened
}

// The states of a target, as /readyz and the metrics name them.
const (
	stateClosed   = "closed"
	stateOpen     = "open"
	stateHalfOpen = "half-open"
)

// admit says whether a call may try the target now, and whether that call
// is the probe of a half-open target, whose verdict the call must give
// (succeeded, failed or released).
func (h *health) admit() (ok, probe bool) {
	if h.threshold == 0 {
		return true, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.openUntil.IsZero():
		return true, false
	case h.now().Before(h.openUntil), h.probing:
		return false, false
	}
	h.probing = true
	return true, true
}

// succeeded records an answer: the target is closed again.
func (h *health) succeeded() {
	if h.threshold == 0 {
		return
	}
	h.mu.Lock()
	h.failures, h.openUntil, h.probing = 0, time.Time{}, false
	h.mu.Unlock()
}

// failed records a retryable failure; it opens the target when it is the
// threshold's failure in a row, or a probe's.
func (h *health) failed() {
	if h.threshold == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failures++
	if h.probing || (h.openUntil.IsZero() && h.failures >= h.threshold) {
		h.openUntil = h.now().Add(h.period)
		h.probing = false
		h.cooldowns++
	}
}

// released gives up a probe that ended without a verdict (the client went
// away), so the next call probes instead.
func (h *health) released(probe bool) {
	if !probe {
		return
	}
	h.mu.Lock()
	h.probing = false
	h.mu.Unlock()
}

// state is the target's state now, how long it stays open, and how many
// times it opened.
func (h *health) state() (state string, openFor time.Duration, cooldowns uint64) {
	if h.threshold == 0 {
		return stateClosed, 0, 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.openUntil.IsZero():
		return stateClosed, 0, h.cooldowns
	case h.now().Before(h.openUntil):
		return stateOpen, h.openUntil.Sub(h.now()), h.cooldowns
	}
	return stateHalfOpen, 0, h.cooldowns
}
