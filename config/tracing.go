package config

import (
	"net/url"
	"time"
)

// Tracing configures OpenTelemetry traces of calls, exported with OTLP over
// HTTP. Tracing is off, and costs the request path nothing, unless
// Endpoint is set.
type Tracing struct {
	// Endpoint is the OTLP/HTTP traces URL of a collector, such as
	// http://127.0.0.1:4318/v1/traces; a URL without a path gets
	// /v1/traces. https URLs are exported over TLS. Zero value: tracing off.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of new traces that are recorded, from 0 to
	// 1. A call whose caller sent a W3C traceparent follows the caller's
	// sampling decision instead. Zero value (left out): 1, every trace.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is the service.name of the spans. Zero value: portcullis.
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export, such as a tracing backend's API key.
	Headers map[string]Secret `yaml:"headers"`
	// Timeout bounds one export. Zero value: 10s.
	Timeout Duration `yaml:"timeout"`
}

// Defaults of the tracing section.
const (
	DefaultTraceServiceName = "portcullis"
	DefaultTraceTimeout     = 10 * time.Second
	DefaultTracesPath       = "/v1/traces"
)

// Enabled reports whether traces are exported.
func (t *Tracing) Enabled() bool { return t.Endpoint != "" }

func (t *Tracing) applyDefaults() {
	if t.ServiceName == "" {
		t.ServiceName = DefaultTraceServiceName
	}
	if t.SampleRatio == nil {
		one := 1.0
		t.SampleRatio = &one
	}
	if t.Timeout == 0 {
		t.Timeout = Duration(DefaultTraceTimeout)
	}
	if u, err := url.Parse(t.Endpoint); err == nil && t.Endpoint != "" && (u.Path == "" || u.Path == "/") {
		u.Path = DefaultTracesPath
		t.Endpoint = u.String()
	}
}

func (c *Config) validateTracing(l *loader) {
	t := &c.Tracing
	if t.Endpoint != "" {
		if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.fail("tracing.endpoint", "%q is not an http(s) URL; give the collector's OTLP/HTTP traces URL, such as http://127.0.0.1:4318/v1/traces, or leave it out to trace nothing", t.Endpoint)
		}
	}
	if r := *t.SampleRatio; !(r >= 0 && r <= 1) {
		l.fail("tracing.sample_ratio", "%v is not between 0 and 1; give the share of traces to record, such as 0.1, or 1 for all", r)
	}
	if t.Timeout < 0 {
		l.fail("tracing.timeout", "must not be negative; write it like 10s")
	}
	if t.Endpoint == "" && len(t.Headers) > 0 {
		l.fail("tracing.headers", "are sent with trace exports, and there are none without tracing.endpoint; set the endpoint or remove the headers")
	}
}
