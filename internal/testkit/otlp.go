package testkit

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// Collector is an OTLP/HTTP trace receiver, as an OpenTelemetry collector
// runs one: it decodes the protobuf export requests POSTed to URL and
// keeps their spans.
type Collector struct {
	// URL is the traces endpoint, for tracing.endpoint.
	URL string

	mu     sync.Mutex
	spans  []Span
	header http.Header
}

// Span is one received span, flattened for tests; ids are hex.
type Span struct {
	Name                          string
	TraceID, SpanID, ParentSpanID string
	// Kind is the OTLP kind, such as SPAN_KIND_SERVER.
	Kind string
	// Status is the OTLP status code, such as STATUS_CODE_ERROR.
	Status     string
	Attributes map[string]string
	// Resource holds the attributes of the span's resource (service.name).
	Resource map[string]string
}

// NewCollector starts a receiver, stopped when the test ends.
func NewCollector(t testing.TB) *Collector {
	c := &Collector{}
	ts := httptest.NewServer(http.HandlerFunc(c.receive))
	t.Cleanup(ts.Close)
	c.URL = ts.URL + "/v1/traces"
	return c
}

func (c *Collector) receive(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want a POST of application/x-protobuf to /v1/traces", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range req.ResourceSpans {
		res := attributes(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				got = append(got, Span{
					Name:         s.Name,
					TraceID:      hex.EncodeToString(s.TraceId),
					SpanID:       hex.EncodeToString(s.SpanId),
					ParentSpanID: hex.EncodeToString(s.ParentSpanId),
					Kind:         s.Kind.String(),
					Status:       s.GetStatus().GetCode().String(),
					Attributes:   attributes(s.Attributes),
					Resource:     res,
				})
			}
		}
	}
	c.mu.Lock()
	c.spans = append(c.spans, got...)
	c.header = r.Header.Clone()
	c.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// attributes renders OTLP attributes as strings: lists as [a b].
func attributes(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = anyValue(kv.Value)
	}
	return m
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case *commonpb.AnyValue_ArrayValue:
		var parts []string
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, anyValue(e))
		}
		return fmt.Sprint(parts)
	default:
		return v.String()
	}
}

// Spans returns the spans received so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Header returns the headers of the last export request.
func (c *Collector) Header() http.Header {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.header
}

// WaitForTrace waits until the spans of trace id include one named each
// of names, and returns that trace's spans.
func (c *Collector) WaitForTrace(t testing.TB, traceID string, names ...string) []Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var trace []Span
		seen := map[string]bool{}
		for _, s := range c.Spans() {
			if s.TraceID == traceID {
				trace = append(trace, s)
				seen[s.Name] = true
			}
		}
		all := true
		for _, n := range names {
			all = all && seen[n]
		}
		if all {
			return trace
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s: got spans %v, want %v", traceID, trace, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
