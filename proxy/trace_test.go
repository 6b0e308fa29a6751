package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"portcullis/internal/testkit"
	"portcullis/tracing"
)

// A caller's W3C trace context, sampled.
const (
	callerTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpanID  = "00f067aa0ba902b7"
	traceparent   = "00-" + callerTraceID + "-" + callerSpanID + "-01"
)

// tracedHarness is a harness whose calls are traced into an in-memory
// recorder, every trace sampled.
func tracedHarness(t *testing.T, o harnessOptions) (*harness, *tracetest.SpanRecorder) {
	spans := tracetest.NewSpanRecorder()
	o.tracer = tracing.NewForTest(spans, 1).Tracer()
	return newHarness(t, o), spans
}

// call sends a chat completions request with the given key, body and
// traceparent (none when empty).
func (h *harness) call(key, body, parent string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if parent != "" {
		req.Header.Set("Traceparent", parent)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	readAll(h.t, resp.Body)
	resp.Body.Close()
	return resp
}

// Each call is a server span with a child for each step it took, named
// and attributed as docs/operations.md says, in the caller's trace when it
// sent a traceparent; the audit record carries the trace id.
func TestTracesEveryStep(t *testing.T) {
	for _, tc := range []struct {
		name, key, body, parent string
		status                  int
		upstreamStatus          int
		// steps are the child spans, in order.
		steps []string
		// attrs are expected attributes by span name.
		attrs map[string]map[string]string
		// failed are the spans whose status is Error.
		failed []string
	}{
		{name: "allowed", key: engKey, body: chatBody, parent: traceparent, status: 200,
			steps: []string{"authenticate", "authorize", "upstream"},
			attrs: map[string]map[string]string{
				"POST /v1/chat/completions": {"gen_ai.request.model": "smart", "portcullis.provider": "upstream", "portcullis.decision": "allow",
					"http.response.status_code": "200", "http.route": "/v1/chat/completions", "portcullis.outcome": "success",
					"gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": "27", "gen_ai.usage.output_tokens": "7"},
				"authenticate": {"portcullis.authn.result": "ok", "portcullis.identity.type": "apikey", "portcullis.credential": "eng"},
				"authorize":    {"portcullis.decision": "allow", "portcullis.decision.log_content": "false"},
				"upstream":     {"portcullis.provider": "upstream", "gen_ai.request.model": "gpt-4o-mini", "http.response.status_code": "200"},
			}},
		{name: "stream", key: engKey, body: `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`, status: 200,
			steps: []string{"authenticate", "authorize", "upstream", "stream"},
			attrs: map[string]map[string]string{
				"POST /v1/chat/completions": {"portcullis.stream": "true", "portcullis.decision": "allow", "gen_ai.usage.output_tokens": "7"},
				"stream":                    {"gen_ai.usage.output_tokens": "7"},
			}},
		{name: "denied", key: demoKey, body: chatBody, parent: traceparent, status: 403,
			steps: []string{"authenticate", "authorize"},
			attrs: map[string]map[string]string{
				"POST /v1/chat/completions": {"portcullis.decision": "deny", "http.response.status_code": "403", "portcullis.outcome": "denied", "error.type": "policy_denied"},
				"authorize":                 {"portcullis.decision": "deny"},
			}},
		{name: "unknown key", key: "pcx_nobody", body: chatBody, status: 401,
			steps: []string{"authenticate"},
			attrs: map[string]map[string]string{
				"authenticate": {"portcullis.authn.result": "refused"},
			}},
		{name: "upstream failure", key: engKey, body: chatBody, status: 503, upstreamStatus: 503,
			steps: []string{"authenticate", "authorize", "upstream"},
			attrs: map[string]map[string]string{
				"upstream": {"http.response.status_code": "503", "error.type": "upstream_server_error"},
			},
			failed: []string{"POST /v1/chat/completions", "upstream"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, spans := tracedHarness(t, harnessOptions{})
			if tc.upstreamStatus != 0 {
				h.upstream.Status, h.upstream.Body = tc.upstreamStatus, []byte(`{"error":{"message":"overloaded","type":"server_error"}}`)
			}
			resp := h.call(tc.key, tc.body, tc.parent)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			rec := h.records.last(t, 1)
			ended := spans.Ended()
			if len(ended) != len(tc.steps)+1 {
				t.Fatalf("spans %v, want %v and the server span", names(ended), tc.steps)
			}
			server := ended[len(ended)-1]
			if server.Name() != "POST /v1/chat/completions" || server.SpanKind() != trace.SpanKindServer {
				t.Errorf("last span %q (%s), want the server span", server.Name(), server.SpanKind())
			}
			if got := server.SpanContext().TraceID().String(); got != rec.TraceID {
				t.Errorf("audit trace_id %q, span trace id %q", rec.TraceID, got)
			}
			if tc.parent != "" && (rec.TraceID != callerTraceID || server.Parent().SpanID().String() != callerSpanID || !server.Parent().IsRemote()) {
				t.Errorf("trace %s parent %s: want the caller's trace %s and span %s", rec.TraceID, server.Parent().SpanID(), callerTraceID, callerSpanID)
			}
			if tc.parent == "" && server.Parent().IsValid() {
				t.Errorf("server span has parent %s without a traceparent", server.Parent().SpanID())
			}
			for i, want := range tc.steps {
				s := ended[i]
				if s.Name() != want || s.Parent().SpanID() != server.SpanContext().SpanID() || s.SpanContext().TraceID() != server.SpanContext().TraceID() {
					t.Errorf("span %d is %q under %s, want %q under the server span %s", i, s.Name(), s.Parent().SpanID(), want, server.SpanContext().SpanID())
				}
			}
			for _, s := range ended {
				if s.Name() == "upstream" && s.SpanKind() != trace.SpanKindClient {
					t.Errorf("upstream span kind %s, want client", s.SpanKind())
				}
				got := attrMap(s.Attributes())
				for k, v := range tc.attrs[s.Name()] {
					if got[k] != v {
						t.Errorf("span %q: %s = %q, want %q (all: %v)", s.Name(), k, got[k], v, got)
					}
				}
				wantErr := false
				for _, f := range tc.failed {
					wantErr = wantErr || f == s.Name()
				}
				if (s.Status().Code == codes.Error) != wantErr {
					t.Errorf("span %q status %v, want error %v", s.Name(), s.Status(), wantErr)
				}
			}
		})
	}
}

// A log line about a call carries the call's trace id beside its request id.
func TestLogLinesCarryTraceID(t *testing.T) {
	h, _ := tracedHarness(t, harnessOptions{})
	h.upstream.Status, h.upstream.Body = http.StatusUnauthorized, []byte(`{"error":{"message":"bad key","type":"invalid_request_error"}}`)
	resp := h.call(engKey, chatBody, traceparent)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d", resp.StatusCode)
	}
	rec := h.records.last(t, 1)
	var found bool
	for _, line := range strings.Split(strings.TrimSpace(h.logs.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["msg"] == "provider refused the gateway's credentials" {
			found = true
			if l["trace_id"] != callerTraceID || l["request_id"] != rec.RequestID {
				t.Errorf("log line %s: want trace_id %s and request_id %s", line, callerTraceID, rec.RequestID)
			}
		}
	}
	if !found {
		t.Fatalf("no log line about the refused credentials:\n%s", h.logs.String())
	}
}

// With tracing off no span exists, but a caller's trace id still goes into
// the audit record; without a traceparent the record has none. With
// tracing on and the caller's trace not sampled, no span is recorded and
// the record still has the trace id.
func TestTraceIDWithoutSpans(t *testing.T) {
	off := newHarness(t, harnessOptions{})
	off.call(engKey, chatBody, traceparent)
	if got := off.records.last(t, 1).TraceID; got != callerTraceID {
		t.Errorf("tracing off, traceparent sent: trace_id %q, want %q", got, callerTraceID)
	}
	off.call(engKey, chatBody, "")
	if got := off.records.last(t, 2).TraceID; got != "" {
		t.Errorf("tracing off, no traceparent: trace_id %q, want none", got)
	}
	off.call(engKey, chatBody, "00-zz-yy-01")
	if got := off.records.last(t, 3).TraceID; got != "" {
		t.Errorf("tracing off, malformed traceparent: trace_id %q, want none", got)
	}

	on, spans := tracedHarness(t, harnessOptions{})
	on.call(engKey, chatBody, strings.TrimSuffix(traceparent, "01")+"00")
	if got := on.records.last(t, 1).TraceID; got != callerTraceID {
		t.Errorf("not sampled: trace_id %q, want %q", got, callerTraceID)
	}
	if n := len(spans.Ended()); n != 0 {
		t.Errorf("not sampled: %d spans recorded: %v", n, names(spans.Ended()))
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = fmt.Sprint(kv.Value.AsInterface())
	}
	return m
}

// Each upstream attempt is a span of its own, numbered, with its status
// and, for a failed one, its error class.
func TestOneUpstreamSpanPerAttempt(t *testing.T) {
	h, spans := tracedHarness(t, harnessOptions{models: `
  - name: retried
    provider: upstream
    upstream_model: gpt-4o-mini
    retry: {attempts: 3, backoff: 1ms, max_backoff: 1ms}`})
	fail := testkit.Fault{Status: 500, Body: []byte(`{"error":{"message":"boom","type":"server_error"}}`)}
	h.upstream.Script(fail, fail)
	if resp := h.call(engKey, `{"model":"retried","messages":[{"role":"user","content":"hi"}]}`, ""); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h.records.last(t, 1)
	var got []string
	for _, s := range spans.Ended() {
		if s.Name() != "upstream" {
			continue
		}
		a := attrMap(s.Attributes())
		got = append(got, a["portcullis.attempt"]+":"+a["http.response.status_code"]+":"+a["error.type"]+":"+s.Status().Code.String())
	}
	want := []string{"1:500:upstream_server_error:Error", "2:500:upstream_server_error:Error", "3:200::Unset"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("upstream spans %v, want %v", got, want)
	}
}
