package proxy

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"time"

	"portcullis/adapters"
	"portcullis/config"
)

// retryPolicy is how a model tries a failing target again
// (models[].retry): Attempts tries per target, waits growing from Backoff.
type retryPolicy struct {
	attempts      int
	backoff       time.Duration
	maxBackoff    time.Duration
	maxRetryAfter time.Duration
}

func newRetryPolicy(r config.Retry) retryPolicy {
	return retryPolicy{attempts: max(r.Attempts, 1), backoff: r.Backoff.Std(), maxBackoff: r.MaxBackoff.Std(), maxRetryAfter: r.MaxRetryAfter.Std()}
}

// wait is the pause before retry n (1 for the first retry) after a
// failure that asked for retryAfter (0: it did not say). The provider's
// Retry-After is honoured when it is at most maxRetryAfter; a longer one
// means this target is done (ok false). Otherwise the wait is exponential
// backoff with jitter: drawn between half and all of backoff·2ⁿ⁻¹, capped.
func (p retryPolicy) wait(n int, retryAfter time.Duration) (d time.Duration, ok bool) {
	if retryAfter > 0 {
		return retryAfter, retryAfter <= p.maxRetryAfter
	}
	d = p.backoff
	for i := 1; i < n && d < p.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.maxBackoff)
	if half := d / 2; half > 0 {
		d = half + rand.N(half+1)
	}
	return d, true
}

// pause waits for d, or until ctx ends; it reports whether the wait ran
// its course. A wait that would outlast ctx's deadline is not begun.
func pause(ctx context.Context, d time.Duration) bool {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// failure is an attempt that got no usable answer, with what it means for
// the next one.
type failure struct {
	// class is the audit error class: upstream_rate_limited,
	// upstream_server_error, upstream_unreachable, upstream_timeout, ...
	class string
	// retry says the same target may answer if asked again; next that
	// another target may.
	retry, next bool
	// contextLength is the provider saying the prompt is too long for it.
	contextLength bool
	retryAfter    time.Duration
	// resp is the provider's error answer, its body read into memory, to
	// relay if no later attempt answers; nil when there was none.
	resp *http.Response
	// err is why there was no answer, when there was none.
	err error
	// timeout is the attempt's own time-out that ran out, if one did.
	timeout error
}

// Attempt time-outs, as the causes of an attempt's context.
var (
	errFirstByteTimeout = errors.New("no first byte within the target's first_byte time-out")
	errIdleTimeout      = errors.New("no stream data within the target's idle time-out")
	errTotalTimeout     = errors.New("the attempt ran past the target's total time-out")
)

// isAttemptTimeout reports whether err is one of the attempt time-outs.
func isAttemptTimeout(err error) bool {
	return errors.Is(err, errFirstByteTimeout) || errors.Is(err, errIdleTimeout) || errors.Is(err, errTotalTimeout)
}

// classifyError says what an upstream's error answer means for the call:
// 429, 5xx and 529 may pass (retry, then fall back); an exhausted quota
// will not pass on this target but may on another; a prompt too long may
// go to the model's context fallback; anything else (400, 401, 403, a
// content policy) is the answer.
func classifyError(status int, e *adapters.UpstreamError) *failure {
	f := &failure{class: upstreamErrorClass(status), retryAfter: e.RetryAfter}
	switch {
	case e.Kind == adapters.ErrQuota:
		f.next = true
	case e.Kind == adapters.ErrContextLength:
		f.contextLength = true
	case e.Retryable, e.Kind == adapters.ErrRateLimit, e.Kind == adapters.ErrOverloaded, e.Kind == adapters.ErrServer,
		status == http.StatusTooManyRequests, status >= 500:
		f.retry, f.next = true, true
	}
	return f
}

// counts says whether the failure counts against the target's health:
// only the failures that may pass do, never a refusal of the request.
func (f *failure) counts() bool { return f.retry }
