// Package audit owns the audit trail: the Record every call leaves behind,
// allowed, denied or failed, and the sinks it is written to. Records never
// hold credentials or message content.
package audit

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Record is what happened on one call.
type Record struct {
	Time      time.Time
	RequestID string
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
	Error            string
	PromptTokens     int
	CompletionTokens int
	// UsageReported says the token counts came from the provider.
	UsageReported bool
	// Latency is the whole call; TimeToFirstByte is until the first byte of
	// the response body reached the client.
	Latency         time.Duration
	TimeToFirstByte time.Duration
}

// Identity is the caller as audited.
type Identity struct {
	Type       string
	Subject    string
	Groups     []string
	Credential string
}

// Decision is the policy's answer as audited.
type Decision struct {
	// Evaluated is false when the call ended before the policy was asked.
	Evaluated bool
	Allow     bool
	Reasons   []string
	Revision  string
}

// MarshalLogObject encodes the record field by field, without reflection.
func (r *Record) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("kind", "call")
	e.AddString("request_id", r.RequestID)
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
	e.AddInt("prompt_tokens", r.PromptTokens)
	e.AddInt("completion_tokens", r.CompletionTokens)
	e.AddBool("usage_reported", r.UsageReported)
	e.AddFloat64("latency_ms", ms(r.Latency))
	e.AddFloat64("ttfb_ms", ms(r.TimeToFirstByte))
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (i *Identity) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddString("type", i.Type)
	e.AddString("subject", i.Subject)
	_ = e.AddArray("groups", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, g := range i.Groups {
			a.AppendString(g)
		}
		return nil
	}))
	e.AddString("credential", i.Credential)
	return nil
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (d *Decision) MarshalLogObject(e zapcore.ObjectEncoder) error {
	e.AddBool("evaluated", d.Evaluated)
	e.AddBool("allow", d.Allow)
	_ = e.AddArray("reasons", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, r := range d.Reasons {
			a.AppendString(r)
		}
		return nil
	}))
	e.AddString("policy_revision", d.Revision)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Log writes records as JSON lines to its sinks. It is safe for concurrent use.
type Log struct {
	logger *zap.Logger
	close  func() error
}

// Options choose the sinks.
type Options struct {
	// Stdout writes records to standard output.
	Stdout bool
	// File appends records to this path (created with mode 0600).
	File string
}

// Open opens the sinks.
func Open(o Options) (*Log, error) {
	var sinks []zapcore.WriteSyncer
	closeFile := func() error { return nil }
	if o.File != "" {
		f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("open audit file: %w", err)
		}
		sinks = append(sinks, f)
		closeFile = f.Close
	}
	if o.Stdout {
		sinks = append(sinks, zapcore.Lock(os.Stdout))
	}
	if len(sinks) == 0 {
		return nil, fmt.Errorf("open audit log: no sink enabled")
	}
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		TimeKey:    "time",
		EncodeTime: zapcore.RFC3339NanoTimeEncoder,
	})
	core := zapcore.NewCore(enc, zapcore.NewMultiWriteSyncer(sinks...), zapcore.InfoLevel)
	logger := zap.New(core)
	return &Log{logger: logger, close: func() error {
		_ = logger.Sync()
		return closeFile()
	}}, nil
}

// Write records one call.
func (l *Log) Write(r *Record) {
	if ce := l.logger.Check(zapcore.InfoLevel, ""); ce != nil {
		ce.Time = r.Time
		ce.Write(zap.Inline(r))
	}
}

// Close flushes and closes the sinks.
func (l *Log) Close() error { return l.close() }
