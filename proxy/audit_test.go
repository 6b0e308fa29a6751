package proxy_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/audit"
)

// auditKeys are the keys every audit line carries, whatever happened.
var auditKeys = []string{
	"time", "kind", "request_id", "trace_id", "identity", "client_ip", "user_agent", "method", "endpoint",
	"model", "provider", "upstream_model", "model_served", "upstream_request_id", "decision",
	"stream", "status", "error_class", "error", "prompt_tokens", "completion_tokens",
	"usage_reported", "usage_estimated", "attempts", "cost_usd", "price_missing", "latency_ms", "ttfb_ms", "ttft_ms", "upstream_ms", "authn_ms", "policy_ms", "outcome",
	"prev_hash", "hash",
}

// Written through the real audit log, every call — allowed, denied, or
// refused as bad input — leaves one JSON line with every field.
func TestAuditLineHasEveryField(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.log")
	records, err := audit.Open(audit.Options{File: auditFile})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{audit: records})
	cases := []struct {
		name, key, body string
		status          int
	}{
		{"allowed", engKey, chatBody, 200},
		{"allowed stream", engKey, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`, 200},
		{"denied", demoKey, chatBody, 403},
		{"malformed", engKey, `{"model"`, 400},
		{"missing model", engKey, `{"messages":[]}`, 400},
		{"unknown model", engKey, `{"model":"x","messages":[{"role":"user","content":"hi"}]}`, 404},
		{"too large", engKey, `{"model":"smart","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`, 413},
		{"no key", "", chatBody, 401},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		resp := h.post(tc.key, tc.body)
		readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		ids[i] = resp.Header.Get("X-Request-Id")
	}
	// Records are written as each handler returns; wait for all of them.
	waitForLines(t, auditFile, len(cases))
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, auditFile)
	byID := map[string]map[string]any{}
	for _, l := range lines {
		for _, k := range auditKeys {
			if _, ok := l[k]; !ok {
				t.Errorf("record %v lacks %q", l["request_id"], k)
			}
		}
		byID[l["request_id"].(string)] = l
	}
	for i, tc := range cases {
		rec := byID[ids[i]]
		if rec == nil {
			t.Fatalf("%s: no record with the response's request id %s", tc.name, ids[i])
		}
		if rec["status"] != float64(tc.status) || rec["client_ip"] != "127.0.0.1" || rec["user_agent"] == "" ||
			rec["endpoint"] != "/v1/chat/completions" || rec["latency_ms"].(float64) <= 0 {
			t.Errorf("%s: record %v", tc.name, rec)
		}
		id := rec["identity"].(map[string]any)
		dec := rec["decision"].(map[string]any)
		switch tc.status {
		case 200:
			if rec["model"] != "smart" || rec["model_served"] != "gpt-4o-mini-2024-07-18" || rec["provider"] != "upstream" ||
				dec["allow"] != true || dec["policy_revision"] == "" || rec["prompt_tokens"] != float64(27) ||
				rec["completion_tokens"] != float64(7) || rec["ttfb_ms"].(float64) <= 0 || rec["error_class"] != "" {
				t.Errorf("%s: record %v", tc.name, rec)
			}
		case 403:
			if dec["allow"] != false || dec["evaluated"] != true || len(dec["reasons"].([]any)) != 1 || rec["error_class"] != "policy_denied" {
				t.Errorf("%s: decision %v", tc.name, dec)
			}
		default:
			if rec["error_class"] == "" || rec["error"] == "" {
				t.Errorf("%s: no error class in %v", tc.name, rec)
			}
		}
		if (tc.status == 401) != (id["subject"] == "") {
			t.Errorf("%s: identity %v", tc.name, id)
		}
		if tc.status != 401 && (id["type"] != "apikey" || len(id["groups"].([]any)) != 1) {
			t.Errorf("%s: identity %v", tc.name, id)
		}
	}
	if stream := byID[ids[1]]; stream["stream"] != true {
		t.Errorf("stream record: %v", stream)
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

func waitForLines(t *testing.T, path string, n int) {
	t.Helper()
	for range 1000 {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), "\n") >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("audit file never reached %d lines", n)
}

// A provider whose key is empty is disabled with one warning line; its
// models answer 404 saying why, and the rest of the gateway works.
func TestEmptyProviderKeyDisablesProvider(t *testing.T) {
	t.Setenv("PORTCULLIS_TEST_EMPTY_KEY", "")
	h2 := newHarness(t, harnessOptions{
		providers: `
  - name: offline
    type: openai
    base_url: https://api.example.invalid/v1
    api_key: ${PORTCULLIS_TEST_EMPTY_KEY:-}`,
		models: `
  - name: offline-model
    provider: offline`,
	})
	if n := strings.Count(h2.logs.String(), "provider disabled"); n != 1 {
		t.Errorf("%d 'provider disabled' log lines, want 1:\n%s", n, h2.logs.String())
	}
	resp := h2.post(engKey, `{"model":"offline-model","messages":[{"role":"user","content":"hi"}]}`)
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "provider offline is disabled") {
		t.Errorf("status %d: %s", resp.StatusCode, body)
	}
	resp = h2.post(engKey, chatBody)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("other models broke: %d", resp.StatusCode)
	}
}
