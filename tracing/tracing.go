// Package tracing sets up OpenTelemetry tracing for the gateway: when the
// configuration names an OTLP endpoint, a tracer whose spans are batched
// and exported over OTLP/HTTP, sampled by the configured ratio unless the
// caller's traceparent decided; otherwise none at all, so that the request
// path starts no spans.
package tracing

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/config"
)

// InstrumentationName names the gateway's tracer in exported spans.
const InstrumentationName = "portcullis"

// Exporter is the gateway's tracing: the tracer the request path uses and
// the batch exporter behind it. The zero value, and a nil *Exporter, are
// tracing off.
type Exporter struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	endpoint string
}

// New builds the tracing the configuration asks for. With no endpoint it
// returns tracing off, which exports nothing and whose Tracer is nil.
// Export failures are logged to log, one line each.
func New(cfg config.Tracing, version string, log *zap.Logger) (*Exporter, error) {
	if !cfg.Enabled() {
		return &Exporter{}, nil
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpointURL(cfg.Endpoint),
		otlptracehttp.WithTimeout(cfg.Timeout.Std()),
	}
	if len(cfg.Headers) > 0 {
		headers := make(map[string]string, len(cfg.Headers))
		for k, v := range cfg.Headers {
			headers[k] = v.Reveal()
		}
		opts = append(opts, otlptracehttp.WithHeaders(headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.Endpoint, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", version),
	))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	endpoint := cfg.Endpoint
	if u, err := url.Parse(endpoint); err == nil {
		endpoint = u.Redacted()
	}
	// The exporter reports failed exports through OpenTelemetry's one
	// global error handler; they belong in the application log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed", zap.String("endpoint", endpoint), zap.Error(err))
	}))
	e := newExporter(sdktrace.NewBatchSpanProcessor(exp), *cfg.SampleRatio, res)
	e.endpoint = endpoint
	return e, nil
}

// NewForTest is tracing that hands every span, sampled by ratio, to sp
// (such as a tracetest.SpanRecorder) at once.
func NewForTest(sp sdktrace.SpanProcessor, ratio float64) *Exporter {
	return newExporter(sp, ratio, resource.Empty())
}

func newExporter(sp sdktrace.SpanProcessor, ratio float64, res *resource.Resource) *Exporter {
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithSpanProcessor(sp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(res),
	)
	return &Exporter{provider: provider, tracer: provider.Tracer(InstrumentationName)}
}

// Tracer is the tracer of the gateway's spans; nil when tracing is off.
func (e *Exporter) Tracer() trace.Tracer {
	if e == nil {
		return nil
	}
	return e.tracer
}

// Endpoint is where spans go, with any password in it hidden, for logs.
func (e *Exporter) Endpoint() string {
	if e == nil {
		return ""
	}
	return e.endpoint
}

// Enabled reports whether spans are recorded and exported.
func (e *Exporter) Enabled() bool { return e != nil && e.provider != nil }

// Shutdown exports the spans still queued, waiting until ctx ends at most,
// and stops the exporter.
func (e *Exporter) Shutdown(ctx context.Context) error {
	if !e.Enabled() {
		return nil
	}
	if err := e.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shut down: %w", err)
	}
	return nil
}
