// Package audit owns the audit trail: the Record every call leaves behind,
// allowed, denied or failed, and the sinks it is written to. Records never
// hold credentials, nor message content unless the policy's decision says
// log_content, and then with the secrets in it redacted (redact.go).
package audit

import (
	"time"

	"go.uber.org/zap/zapcore"
)

// Record is what happened on one call.
type Record struct {
	Time      time.Time
	RequestID string
	// TraceID is the call's W3C trace id (32 hex digits): the gateway's
	// own trace when tracing is on, else the caller's traceparent, if it
	// sent one; empty otherwise.
	TraceID string
	// Identity is empty when authentication failed.
	Identity  Identity
	ClientIP  string
	UserAgent string
	Method    string
	Endpoint  string
	// Model is the model the client asked for.
	Model string
	// Provider and UpstreamModel are where the gateway sent the call.
	Provider      string
	UpstreamModel string
	// ModelServed is the model the upstream says answered.
	ModelServed string
	// UpstreamRequestID is the upstream's own request id, for support cases.
	UpstreamRequestID string
	Decision          Decision
	Stream            bool
	Status            int
	// ErrorClass is empty on success; see docs/audit.md for the classes.
	ErrorClass string
	// Error is the gateway's own description of a failure.
	Error string
	// ToolsRemoved are the tools the policy stripped from the request.
	ToolsRemoved     []string
	PromptTokens     int
	CompletionTokens int
	// UsageReported says the token counts came from the provider.
	UsageReported bool
	// UsageEstimated says CompletionTokens counts the content events the
	// client received of a stream that broke off before the provider
	// reported its usage (about one token each), not the provider's count.
	UsageEstimated bool
	// Attempts are the upstream attempts the call made, in order: each
	// target tried, retries and fallbacks included. Empty when the call
	// ended before reaching a provider.
	Attempts []Attempt
	// CostUSD is what the call cost by the price table; PriceMissing says
	// the model has no price (the call was counted in tokens only).
	CostUSD      float64
	PriceMissing bool
	// StreamCut says why the gateway ended a stream before the provider
	// did (its budget ran out); empty otherwise.
	StreamCut string
	// Latency is the whole call; TimeToFirstByte is until the first byte of
	// the response body reached the client.
	Latency         time.Duration
	TimeToFirstByte time.Duration
	// TimeToFirstToken is, for a stream, until the first event that carries
	// content (text or a tool call) went to the client; 0 otherwise.
	TimeToFirstToken time.Duration
	// UpstreamLatency is from sending the request upstream until the
	// provider's response headers arrived; 0 when nothing was sent.
	UpstreamLatency time.Duration
	// AuthLatency is the time spent authenticating the caller, and
	// PolicyLatency the time the policy took to decide.
	AuthLatency   time.Duration
	PolicyLatency time.Duration
	// Content is the prompt and completion, only when the decision says
	// log_content; nil otherwise.
	Content *Content
}

// Outcome sorts the call into one of a few kinds by its error class: see
// docs/audit.md.
func (r *Record) Outcome() string {
	switch r.ErrorClass {
	case "":
		return "success"
	case "authentication", "policy_denied", "policy_error", "tool_denied", "budget_exceeded", "rate_limited":
		return "denied"
	case "bad_request", "request_too_large", "method_not_allowed", "not_found", "model_not_found":
		return "invalid"
	case "client_disconnected", "shutdown":
		return "cancelled"
	default:
		return "failed"
	}
}

// Attempt is one request the gateway sent upstream for a call.
type Attempt struct {
	// Provider and UpstreamModel are the target tried.
	Provider      string
	UpstreamModel string
	// Status is the provider's HTTP status; 0 when it sent none.
	Status int
	// ErrorClass is empty for the attempt that answered the call, else
	// why it did not: upstream_rate_limited, upstream_server_error,
	// upstream_unreachable, upstream_timeout, upstream_broken, ...
	ErrorClass string
	// Wait is the back-off the gateway paused before the attempt.
	Wait time.Duration
	// Duration is from sending the request to the attempt's end: its
	// failure, or the end of the answer it relayed.
	Duration time.Duration
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (a *Attempt) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("provider", a.Provider)
	e.AddString("upstream_model", a.UpstreamModel)
	e.AddInt("status", a.Status)
	e.AddString("error_class", a.ErrorClass)
	e.AddFloat64("wait_ms", ms(a.Wait))
	e.AddFloat64("duration_ms", ms(a.Duration))
	return nil
}

// Identity is the caller as audited.
type Identity struct {
	Type       string
	Subject    string
	Groups     []string
	Credential string
}

// Decision is the policy's answer as audited: what it allowed and every
// limit it set, enforced yet or not.
type Decision struct {
	// Evaluated is false when the call ended before the policy was asked.
	Evaluated bool
	Allow     bool
	Reasons   []string
	Revision  string
	// MaxTokens is the output cap the policy set; 0 for none.
	MaxTokens  int
	Budgets    []Budget
	RateLimits RateLimits
	Tools      Tools
	LogContent bool
}

// Budget is a spending limit the decision set.
type Budget struct {
	Key          string
	Window       string
	Tokens       int64
	USD          float64
	OnStoreError string
}

// RateLimits are the pace limits the decision set; 0 for none.
type RateLimits struct {
	RequestsPerMinute int
	TokensPerMinute   int
}

// Tools is the decision's rule for function tools.
type Tools struct {
	// Restricted is false when any tool is allowed.
	Restricted  bool
	Allowed     []string
	OnViolation string
}

// MarshalLogObject encodes the record field by field, without reflection.
func (r *Record) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("kind", "call")
	e.AddString("request_id", r.RequestID)
	e.AddString("trace_id", r.TraceID)
	_ = e.AddObject("identity", &r.Identity)
	e.AddString("client_ip", r.ClientIP)
	e.AddString("user_agent", r.UserAgent)
	e.AddString("method", r.Method)
	e.AddString("endpoint", r.Endpoint)
	e.AddString("model", r.Model)
	e.AddString("provider", r.Provider)
	e.AddString("upstream_model", r.UpstreamModel)
	e.AddString("model_served", r.ModelServed)
	e.AddString("upstream_request_id", r.UpstreamRequestID)
	_ = e.AddObject("decision", &r.Decision)
	e.AddBool("stream", r.Stream)
	e.AddInt("status", r.Status)
	e.AddString("error_class", r.ErrorClass)
	e.AddString("error", r.Error)
	_ = e.AddArray("tools_removed", stringArray(r.ToolsRemoved))
	e.AddInt("prompt_tokens", r.PromptTokens)
	e.AddInt("completion_tokens", r.CompletionTokens)
	e.AddBool("usage_reported", r.UsageReported)
	e.AddBool("usage_estimated", r.UsageEstimated)
	_ = e.AddArray("attempts", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for i := range r.Attempts {
			_ = a.AppendObject(&r.Attempts[i])
		}
		return nil
	}))
	e.AddFloat64("cost_usd", r.CostUSD)
	e.AddBool("price_missing", r.PriceMissing)
	if r.StreamCut != "" {
		e.AddString("stream_cut", r.StreamCut)
	}
	e.AddFloat64("latency_ms", ms(r.Latency))
	e.AddFloat64("ttfb_ms", ms(r.TimeToFirstByte))
	e.AddFloat64("ttft_ms", ms(r.TimeToFirstToken))
	e.AddFloat64("upstream_ms", ms(r.UpstreamLatency))
	e.AddFloat64("authn_ms", ms(r.AuthLatency))
	e.AddFloat64("policy_ms", ms(r.PolicyLatency))
	e.AddString("outcome", r.Outcome())
	if c := r.Content; c != nil {
		_ = e.AddObject("content", c)
		e.AddBool("content_truncated", c.Truncated)
		_ = e.AddArray("redactions", redactions(c.Redactions))
	}
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (i *Identity) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("type", i.Type)
	e.AddString("subject", i.Subject)
	_ = e.AddArray("groups", stringArray(i.Groups))
	e.AddString("credential", i.Credential)
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (d *Decision) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddBool("evaluated", d.Evaluated)
	e.AddBool("allow", d.Allow)
	_ = e.AddArray("reasons", stringArray(d.Reasons))
	e.AddString("policy_revision", d.Revision)
	e.AddInt("max_tokens", d.MaxTokens)
	_ = e.AddArray("budgets", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for i := range d.Budgets {
			_ = a.AppendObject(&d.Budgets[i])
		}
		return nil
	}))
	_ = e.AddObject("rate_limits", zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
		o.AddInt("requests_per_minute", d.RateLimits.RequestsPerMinute)
		o.AddInt("tokens_per_minute", d.RateLimits.TokensPerMinute)
		return nil
	}))
	_ = e.AddObject("tools", zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
		o.AddBool("restricted", d.Tools.Restricted)
		_ = o.AddArray("allowed", stringArray(d.Tools.Allowed))
		o.AddString("on_violation", d.Tools.OnViolation)
		return nil
	}))
	e.AddBool("log_content", d.LogContent)
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (b *Budget) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("key", b.Key)
	e.AddString("window", b.Window)
	e.AddInt64("tokens", b.Tokens)
	e.AddFloat64("usd", b.USD)
	if b.OnStoreError != "" {
		e.AddString("on_store_error", b.OnStoreError)
	}
	return nil
}

// stringArray encodes a list of strings, [] when empty.
func stringArray(ss []string) zapcore.ArrayMarshaler {
	return zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, s := range ss {
			a.AppendString(s)
		}
		return nil
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
