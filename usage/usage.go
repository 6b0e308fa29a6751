package usage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Meter reserves and settles calls against their budgets and rate limits.
type Meter struct {
	store  Store
	local  *LocalStore
	prices *Prices
	o      Options
	// warned is when the local fallback last warned (Unix nanoseconds):
	// once every warnEvery while the store is down, not once per call.
	warned atomic.Int64
	// reportWarned is when a failed Record last warned, likewise.
	reportWarned atomic.Int64
}

const warnEvery = 10 * time.Second

// Options configure a Meter.
type Options struct {
	// Location is the time zone of calendar windows. Zero value: UTC.
	Location *time.Location
	// DefaultOutputTokens is the output reserved for a call that sets no
	// max_tokens; the call's max_tokens is then set to it (or to what
	// fits). Zero value: 4096.
	DefaultOutputTokens int64
	// MinOutputTokens is the smallest answer worth sending: a call is
	// refused only when not even this much output fits. Zero value: 16.
	MinOutputTokens int64
	// InputMargin is added to the estimated input of a reservation, as a
	// share of it, so that an estimate that falls short does not let a
	// call's settlement pass the limit. Zero value: 0.25 (the estimate's
	// worst measured shortfall is 22%, docs/budgets.md); negative: none.
	InputMargin float64
	// OnStoreError is what a budget without its own rule does when the
	// store fails: OnStoreErrorFailClosed (the zero value) or
	// OnStoreErrorLocal. Rate limits always follow it.
	OnStoreError string
	// Warn reports a degraded mode (the local fallback taking over).
	Warn func(msg string, err error)
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
	// ReportRetention is how long report counters are kept (Record).
	// Zero value: DefaultReportRetention (400 days).
	ReportRetention time.Duration
}

// What a budget does when the store fails.
const (
	// OnStoreErrorFailClosed refuses calls counted against it.
	OnStoreErrorFailClosed = "fail-closed"
	// OnStoreErrorLocal counts them in this replica's memory instead,
	// against the same limit, so the limit holds per replica.
	OnStoreErrorLocal = "local"
)

// NewMeter returns a Meter keeping its counters in store.
func NewMeter(store Store, prices *Prices, o Options) *Meter {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.DefaultOutputTokens <= 0 {
		o.DefaultOutputTokens = 4096
	}
	if o.MinOutputTokens <= 0 {
		o.MinOutputTokens = 16
	}
	if o.OnStoreError == "" {
		o.OnStoreError = OnStoreErrorFailClosed
	}
	if o.InputMargin == 0 {
		o.InputMargin = 0.25
	}
	if o.Warn == nil {
		o.Warn = func(string, error) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReportRetention <= 0 {
		o.ReportRetention = DefaultReportRetention
	}
	return &Meter{store: store, local: NewMemoryStore(), prices: prices, o: o}
}

// Prices is the meter's price table.
func (m *Meter) Prices() *Prices { return m.prices }

// Budget is one spending limit from the policy's decision.
type Budget struct {
	// Key names who shares the budget, such as "user:alice".
	Key string
	// Window is minute, hour, day, week, month or rolling:<duration>.
	Window string
	// Tokens and USD are the limits; 0 for none in that unit.
	Tokens int64
	USD    float64
	// OnStoreError overrides Options.OnStoreError for this budget.
	OnStoreError string
}

// RateLimits are the decision's pace limits for one caller, over a rolling minute.
type RateLimits struct {
	// Key names the caller they apply to.
	Key               string
	RequestsPerMinute int64
	TokensPerMinute   int64
}

// Request is what a call asks to reserve.
type Request struct {
	Budgets []Budget
	Rate    RateLimits
	// Model prices the call (the upstream model name).
	Model string
	// InputTokens is the estimated input (see Estimate).
	InputTokens int64
	// MaxOutputTokens is the call's output cap; 0 when it has none.
	MaxOutputTokens int64
	// InputOnly is a call that generates no output (embeddings).
	InputOnly bool
}

// Limited reports whether the request counts against any limit.
func (r *Request) Limited() bool {
	return len(r.Budgets) > 0 || r.Rate.RequestsPerMinute > 0 || r.Rate.TokensPerMinute > 0
}

// limit is one counter's meaning, for refusals and reports.
type limit struct {
	kind   string // "budget" or "rate_limit"
	key    string
	window string
	reset  time.Time
}

// Reservation is what a call holds between Reserve and Settle.
type Reservation struct {
	meter    *Meter
	store    Store
	ask      Ask
	limits   []limit
	reserved Amount
	rates    rates
	priced   bool
	used     []Amount
	settled  bool
}

// OutputTokens is the output reserved: the most the call may generate.
func (r *Reservation) OutputTokens() int64 { return r.ask.MaxOutput }

// InputTokens is the input reserved: the estimate with its margin.
func (r *Reservation) InputTokens() int64 { return r.ask.Input }

// LimitError is a call refused because a limit has no room for it.
type LimitError struct {
	// Kind is "budget" or "rate_limit".
	Kind   string
	Key    string
	Window string
	Unit   Unit
	// Limit and Remaining are in Unit (dollars for UnitUSD).
	Limit, Remaining float64
	// Reset is when the window next frees room.
	Reset time.Time
	// RetryAfter is how long until Reset, at least a second.
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	what := "budget " + e.Key + " (" + e.Window + ")"
	if e.Kind == "rate_limit" {
		what = "rate limit of " + string(e.Unit) + " per minute"
	}
	return fmt.Sprintf("%s is used up: %s of %s %s left, not enough for this call; try again in %s",
		what, formatAmount(e.Remaining, e.Unit), formatAmount(e.Limit, e.Unit), e.Unit, e.RetryAfter.Round(time.Second))
}

// Code is the error code a client sees: budget_exceeded or rate_limit_exceeded.
func (e *LimitError) Code() string {
	if e.Kind == "rate_limit" {
		return "rate_limit_exceeded"
	}
	return "budget_exceeded"
}

// SetHeaders writes Retry-After and the x-ratelimit-limit-, -remaining-
// and -reset- headers of the refusing limit's unit.
func (e *LimitError) SetHeaders(h http.Header) {
	h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(e.RetryAfter.Seconds())), 10))
	h.Set("X-Ratelimit-Limit-"+string(e.Unit), formatAmount(e.Limit, e.Unit))
	h.Set("X-Ratelimit-Remaining-"+string(e.Unit), formatAmount(e.Remaining, e.Unit))
	h.Set("X-Ratelimit-Reset-"+string(e.Unit), e.RetryAfter.Round(time.Millisecond).String())
	h.Set("X-Portcullis-Limit", e.Kind+" "+e.Key+" "+e.Window)
}

func formatAmount(v float64, u Unit) string {
	if u == UnitUSD {
		return strconv.FormatFloat(v, 'f', 6, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// StoreError is a call refused because the store failed and a limit it
// counts against fails closed.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return "usage store unavailable: " + e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

// Reserve reserves a call's estimated input plus its output cap against
// every limit. When a limit has less room than the cap, the reservation's
// OutputTokens is lowered to what fits; only when not even the minimal
// answer fits is the call refused, with a *LimitError. A store failure is
// a *StoreError unless every budget of the call falls back to local counting.
func (m *Meter) Reserve(ctx context.Context, req *Request) (*Reservation, error) {
	now := m.o.Now()
	r := &Reservation{meter: m, store: m.store}
	r.rates, r.priced = m.prices.lookup(req.Model)
	input := max(req.InputTokens, 0)
	input += int64(math.Ceil(float64(input) * max(m.o.InputMargin, 0)))
	r.ask = Ask{
		Input:     input,
		MaxOutput: req.MaxOutputTokens,
		MinOutput: m.o.MinOutputTokens,
		InPico:    r.rates.input,
		OutPico:   max(r.rates.output, r.rates.reasoning),
	}
	switch {
	case req.InputOnly:
		r.ask.MaxOutput = 0
	case r.ask.MaxOutput <= 0:
		r.ask.MaxOutput = m.o.DefaultOutputTokens
	}
	r.ask.MinOutput = min(r.ask.MinOutput, r.ask.MaxOutput)
	var local bool
	var err error
	if r.ask.Counters, r.limits, local, err = m.plan(req, now); err != nil {
		return nil, err
	}
	g, err := r.store.Reserve(ctx, &r.ask)
	if err != nil {
		if !local {
			return nil, &StoreError{Err: err}
		}
		if last := m.warned.Load(); now.UnixNano()-last >= int64(warnEvery) && m.warned.CompareAndSwap(last, now.UnixNano()) {
			m.o.Warn("usage store unavailable; counting calls against this replica's local limits (warned at most every 10s)", err)
		}
		r.store = m.local
		if g, err = r.store.Reserve(ctx, &r.ask); err != nil {
			return nil, &StoreError{Err: err}
		}
	}
	r.used = g.Used
	if g.Refused >= 0 {
		return nil, r.refusal(g, now)
	}
	r.ask.MaxOutput = g.Output
	r.reserved = r.ask.amount(g.Output)
	return r, nil
}

// plan turns a request's limits into the counters they are kept in at
// now, and says whether all of them may fall back to local counting.
func (m *Meter) plan(req *Request, now time.Time) ([]Counter, []limit, bool, error) {
	n := len(req.Budgets) + 1
	counters, limits := make([]Counter, 0, n), make([]limit, 0, n)
	local := true
	for _, b := range req.Budgets {
		w, err := parseWindow(b.Window)
		if err != nil {
			return nil, nil, false, fmt.Errorf("budget %s: %w", b.Key, err)
		}
		sl := w.slot(now, m.o.Location)
		counters = append(counters, Counter{
			Key: sl.key("b|", b.Key), Bucket: sl.bucket, Span: sl.span, TTL: sl.ttl,
			Limit: Amount{Tokens: b.Tokens, Pico: usdToPico(b.USD)},
		})
		limits = append(limits, limit{kind: "budget", key: b.Key, window: b.Window, reset: sl.reset})
		rule := b.OnStoreError
		if rule == "" {
			rule = m.o.OnStoreError
		}
		local = local && rule == OnStoreErrorLocal
	}
	if req.Rate.RequestsPerMinute > 0 || req.Rate.TokensPerMinute > 0 {
		sl := window{rolling: time.Minute, buckets: rateBuckets}.slot(now, m.o.Location)
		counters = append(counters, Counter{
			Key: sl.key("rate|", req.Rate.Key), Bucket: sl.bucket, Span: sl.span, TTL: sl.ttl,
			Limit: Amount{Requests: req.Rate.RequestsPerMinute, Tokens: req.Rate.TokensPerMinute},
		})
		limits = append(limits, limit{kind: "rate_limit", key: req.Rate.Key, window: "rolling:1m", reset: sl.reset})
		local = local && m.o.OnStoreError == OnStoreErrorLocal
	}
	return counters, limits, local, nil
}

func (r *Reservation) refusal(g Grant, now time.Time) *LimitError {
	c, l, u := r.ask.Counters[g.Refused], r.limits[g.Refused], r.used[g.Refused]
	e := &LimitError{Kind: l.kind, Key: l.key, Window: l.window, Unit: g.Unit, Reset: l.reset}
	switch g.Unit {
	case UnitRequests:
		e.Limit, e.Remaining = float64(c.Limit.Requests), float64(c.Limit.Requests-u.Requests)
	case UnitTokens:
		e.Limit, e.Remaining = float64(c.Limit.Tokens), float64(c.Limit.Tokens-u.Tokens)
	case UnitUSD:
		e.Limit, e.Remaining = float64(c.Limit.Pico)/1e12, float64(c.Limit.Pico-u.Pico)/1e12
	}
	e.Remaining = max(e.Remaining, 0)
	e.RetryAfter = max(l.reset.Sub(now), time.Second)
	return e
}

func usdToPico(usd float64) int64 { return int64(math.Round(usd * 1e12)) }

// Settle charges the call what it used (the provider's reported usage, or
// what the gateway counted where the provider reported none) and releases
// the rest of the reservation. It returns the call's cost. A reservation
// is settled once; later calls return the cost without charging again.
func (r *Reservation) Settle(ctx context.Context, used Tokens) (Cost, error) {
	return r.SettleAs(ctx, "", used)
}

// SettleAs is Settle for a call that another model served than the one it
// was reserved for (a fallback target): it is priced as model, and
// charged that. An empty model is the reservation's own.
func (r *Reservation) SettleAs(ctx context.Context, model string, used Tokens) (Cost, error) {
	rt, priced := r.rates, r.priced
	if model != "" {
		rt, priced = r.meter.prices.lookup(model)
	}
	cost := Cost{PriceMissing: !priced}
	if priced {
		cost.Pico = rt.cost(used)
	}
	if r.settled {
		return cost, nil
	}
	r.settled = true
	actual := Amount{Requests: 1, Tokens: used.Total(), Pico: cost.Pico}
	if err := r.store.Settle(ctx, r.ask.Counters, actual.sub(r.reserved)); err != nil {
		return cost, fmt.Errorf("settle: %w", err)
	}
	return cost, nil
}

// Cost prices usage under model, for a call that reserved nothing.
func (m *Meter) Cost(model string, used Tokens) Cost { return m.prices.Cost(model, used) }

// Standing is one limit's state, for usage reports.
type Standing struct {
	// Kind is "budget" or "rate_limit"; Key and Window name the limit.
	Kind, Key, Window string
	// LimitTokens, LimitUSD and LimitRequests are the limits; 0 for none.
	LimitTokens   int64   `json:"limit_tokens,omitempty"`
	LimitUSD      float64 `json:"limit_usd,omitempty"`
	LimitRequests int64   `json:"limit_requests,omitempty"`
	// Used is what the window holds now, reservations in flight included.
	UsedTokens   int64
	UsedUSD      float64
	UsedRequests int64
	// Reset is when the current calendar period ends (rolling windows:
	// when their next bucket leaves).
	Reset time.Time
}

// Standings reads where each of the request's limits stands now.
func (m *Meter) Standings(ctx context.Context, req *Request) ([]Standing, error) {
	counters, limits, _, err := m.plan(req, m.o.Now())
	if err != nil {
		return nil, err
	}
	used, err := m.store.Read(ctx, counters)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, &StoreError{Err: err}
	}
	out := make([]Standing, len(used))
	for i, u := range used {
		c, l := counters[i], limits[i]
		out[i] = Standing{Kind: l.kind, Key: l.key, Window: l.window,
			LimitTokens: c.Limit.Tokens, LimitUSD: float64(c.Limit.Pico) / 1e12, LimitRequests: c.Limit.Requests,
			UsedTokens: u.Tokens, UsedUSD: float64(u.Pico) / 1e12, UsedRequests: u.Requests, Reset: l.reset}
	}
	return out, nil
}

// KeyFor is the rate-limit key of a caller: its identity type and subject.
func KeyFor(identityType, subject string) string {
	return strings.Join([]string{identityType, subject}, ":")
}
