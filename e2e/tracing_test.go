package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"portcullis/authn"
	"portcullis/internal/testkit"
)

// Run as a process with tracing.endpoint set, the gateway exports each
// call's spans over OTLP/HTTP to a collector: the server span in the
// caller's trace, with its steps beneath it, attributed; the audit record
// and the call's log lines carry the same trace id. The policy says
// log_content, so the records hold the prompt and completion, redacted.
func TestTracesReachOTLPCollector(t *testing.T) {
	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
		secret      = "sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z"
	)
	col := testkit.NewCollector(t)
	up := testkit.NewUpstream(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package portcullis\n\ndecision := {\"allow\": true, \"log_content\": true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, hash := authn.GenerateKey()
	cfg := filepath.Join(dir, "config.yaml")
	auditFile := filepath.Join(dir, "audit.log")
	yaml := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN}
providers:
  - name: upstream
    type: openai
    base_url: %s/v1
    api_key: sk-upstream-e2e
models:
  - name: smart
    provider: upstream
    upstream_model: gpt-4o-mini
auth:
  api_keys:
    - name: alice
      hash: %s
      subject: alice
policy:
  dir: %s
audit:
  file: %s
tracing:
  endpoint: %s
  service_name: portcullis-e2e
  headers: {Authorization: "Bearer trace-backend-SECRET-41"}
`, up.URL, hash, dir, auditFile, col.URL)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg)
	send := func(body, traceparent string) int {
		req, _ := http.NewRequest(http.MethodPost, g.URL()+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		if traceparent != "" {
			req.Header.Set("Traceparent", traceparent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	prompt := `"messages":[{"role":"user","content":"Name the three primary colors. My key is ` + secret + `"}]`
	if s := send(`{"model":"smart",`+prompt+`}`, "00-"+callerTrace+"-"+callerSpan+"-01"); s != 200 {
		t.Fatalf("chat status %d", s)
	}
	if s := send(`{"model":"smart","stream":true,`+prompt+`}`, ""); s != 200 {
		t.Fatalf("stream status %d", s)
	}
	up.Status, up.Body = http.StatusUnauthorized, []byte(`{"error":{"message":"bad key","type":"invalid_request_error"}}`)
	if s := send(`{"model":"smart",`+prompt+`}`, ""); s != http.StatusBadGateway {
		t.Fatalf("refused upstream status %d", s)
	}
	// Stopping flushes the spans still batched.
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}

	records := readTracedRecords(t, auditFile)
	if len(records) != 3 {
		t.Fatalf("%d records, want 3", len(records))
	}
	if records[0].TraceID != callerTrace {
		t.Errorf("first record trace_id %q, want the caller's %s", records[0].TraceID, callerTrace)
	}
	for i, rec := range records {
		if len(rec.TraceID) != 32 {
			t.Fatalf("record %d trace_id %q", i, rec.TraceID)
		}
		steps := []string{"authenticate", "authorize", "upstream"}
		if i == 1 {
			steps = append(steps, "stream")
		}
		spans := col.WaitForTrace(t, rec.TraceID, append(steps, "POST /v1/chat/completions")...)
		var server testkit.Span
		for _, s := range spans {
			if s.Name == "POST /v1/chat/completions" {
				server = s
			}
		}
		if server.Kind != "SPAN_KIND_SERVER" || server.Resource["service.name"] != "portcullis-e2e" ||
			server.Attributes["gen_ai.request.model"] != "smart" || server.Attributes["portcullis.provider"] != "upstream" ||
			server.Attributes["portcullis.decision"] != "allow" || server.Attributes["portcullis.request_id"] != rec.RequestID ||
			server.Attributes["http.response.status_code"] != fmt.Sprint(rec.Status) {
			t.Errorf("record %d: server span %+v", i, server)
		}
		if wantParent := map[bool]string{true: callerSpan, false: ""}[i == 0]; server.ParentSpanID != wantParent {
			t.Errorf("record %d: server span parent %q, want %q", i, server.ParentSpanID, wantParent)
		}
		for _, s := range spans {
			if s.Name != server.Name && s.ParentSpanID != server.SpanID {
				t.Errorf("record %d: span %q has parent %s, want the server span %s", i, s.Name, s.ParentSpanID, server.SpanID)
			}
			if s.Name == "upstream" && (s.Kind != "SPAN_KIND_CLIENT" || s.Attributes["http.response.status_code"] != map[bool]string{true: "401", false: "200"}[i == 2]) {
				t.Errorf("record %d: upstream span %+v", i, s)
			}
			if s.Name == "authorize" && s.Attributes["portcullis.decision.log_content"] != "true" {
				t.Errorf("record %d: authorize span %+v", i, s)
			}
		}
		if rec.Content == nil || len(rec.Content.Messages) != 1 || strings.Contains(rec.Content.Messages[0].Text, secret) ||
			!strings.HasSuffix(rec.Content.Messages[0].Text, "[REDACTED:openai_api_key]") {
			t.Errorf("record %d content %+v", i, rec.Content)
		}
		if want := map[bool]string{true: "", false: "Red, yellow, and blue."}[i == 2]; rec.Content != nil && rec.Content.Completion != want {
			t.Errorf("record %d completion %q, want %q", i, rec.Content.Completion, want)
		}
	}

	// The call's error line names its request and trace.
	var logged bool
	for _, line := range strings.Split(g.stderr.String(), "\n") {
		if strings.Contains(line, "provider refused the gateway's credentials") {
			logged = strings.Contains(line, `"trace_id":"`+records[2].TraceID+`"`) && strings.Contains(line, `"request_id":"`+records[2].RequestID+`"`)
		}
	}
	if !logged {
		t.Errorf("no log line with the refused call's trace id %s:\n%s", records[2].TraceID, g.stderr.String())
	}
	if got := col.Header().Get("Authorization"); got != "Bearer trace-backend-SECRET-41" {
		t.Errorf("export Authorization header %q", got)
	}
	if strings.Contains(g.stderr.String(), "trace-backend-SECRET-41") {
		t.Error("the tracing header's secret is in the log")
	}
	if !strings.Contains(g.stderr.String(), `"msg":"tracing on"`) {
		t.Errorf("no start-up line for tracing:\n%s", g.stderr.String())
	}
}

// tracedRecord is what the tracing test reads of an audit record.
type tracedRecord struct {
	RequestID string `json:"request_id"`
	TraceID   string `json:"trace_id"`
	Status    int    `json:"status"`
	Content   *struct {
		Messages []struct {
			Role, Text string
		} `json:"messages"`
		Completion string `json:"completion"`
	} `json:"content"`
}

func readTracedRecords(t *testing.T, path string) []tracedRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tracedRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l tracedRecord
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if l.RequestID != "" {
			out = append(out, l)
		}
	}
	return out
}
