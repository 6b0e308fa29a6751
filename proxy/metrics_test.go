package proxy_test

import (
	"io"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"portcullis/audit"
	"portcullis/metrics"
)

// A scrape after a mixed workload shows every call in the right series.
func TestMetricsAfterMixedWorkload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	records, err := audit.Open(audit.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	reg.WatchAudit(records.Stats)
	h := newHarness(t, harnessOptions{audit: records, observer: reg})
	stream := `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	send := func(key, body string) {
		resp := h.post(key, body)
		readAll(t, resp.Body)
		resp.Body.Close()
	}
	for range 3 {
		send(engKey, chatBody)
	}
	for range 2 {
		send(engKey, stream)
	}
	for range 2 {
		send(demoKey, chatBody)
	}
	send("", chatBody)
	send(engKey, `{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}`)
	h.upstream.Status, h.upstream.Body = 429, []byte(`{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
	send(engKey, chatBody)
	h.upstream.Status = 0
	req := httptest.NewRequest("POST", "/v1/nothing", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+engKey)
	h.srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
	h.ts.Close()
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	out := string(b)
	sink := `mode="fail-closed",sink="file ` + path + `"`
	for _, want := range []string{
		`portcullis_requests_total{decision="allow",endpoint="/v1/chat/completions",model="smart",provider="upstream",status="200"} 5`,
		`portcullis_requests_total{decision="allow",endpoint="/v1/chat/completions",model="smart",provider="upstream",status="429"} 1`,
		`portcullis_requests_total{decision="deny",endpoint="/v1/chat/completions",model="smart",provider="",status="403"} 2`,
		`portcullis_requests_total{decision="none",endpoint="/v1/chat/completions",model="",provider="",status="401"} 1`,
		`portcullis_requests_total{decision="none",endpoint="/v1/chat/completions",model="",provider="",status="404"} 1`,
		`portcullis_requests_total{decision="none",endpoint="other",model="",provider="",status="404"} 1`,
		`portcullis_tokens_total{kind="prompt",model="smart",provider="upstream"} 135`,
		`portcullis_tokens_total{kind="completion",model="smart",provider="upstream"} 35`,
		`portcullis_request_duration_seconds_count{endpoint="/v1/chat/completions"} 10`,
		`portcullis_request_duration_seconds_count{endpoint="other"} 1`,
		`portcullis_time_to_first_token_seconds_count{model="smart",provider="upstream"} 2`,
		`portcullis_upstream_duration_seconds_count{provider="upstream"} 6`,
		`portcullis_policy_evaluation_seconds_count 8`,
		`portcullis_authentication_seconds_count 10`,
		`portcullis_audit_records_written_total{` + sink + `} 11`,
		`portcullis_audit_records_dropped_total{` + sink + `} 0`,
		`portcullis_audit_queue_depth{` + sink + `} 0`,
		`portcullis_audit_queue_capacity{` + sink + `} 8192`,
		`portcullis_audit_sink_failing{` + sink + `} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "portcullis_") && !strings.Contains(l, "_bucket") {
				t.Log(l)
			}
		}
	}
}
