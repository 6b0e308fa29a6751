package proxy_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"portcullis/audit"
)

// errorBody is OpenAI's error shape, with every key required.
type errorBody struct {
	Error map[string]json.RawMessage `json:"error"`
}

func checkErrorShape(t *testing.T, body []byte) (message, errType, code string) {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("not an OpenAI error body: %s", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, body)
		}
	}
	_ = json.Unmarshal(e.Error["message"], &message)
	_ = json.Unmarshal(e.Error["type"], &errType)
	_ = json.Unmarshal(e.Error["code"], &code)
	if message == "" || errType == "" {
		t.Errorf("empty message or type: %s", body)
	}
	return message, errType, code
}

func TestBadInputIsRefusedAndAudited(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	big := `{"model":"smart","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`
	for i, tc := range []struct {
		name, method, path, key, body string
		status                        int
		class, code, inMessage        string
		header                        [2]string
	}{
		{"malformed JSON", "POST", "/v1/chat/completions", engKey, `{"model":`, 400, "bad_request", "invalid_request", "not valid JSON", [2]string{}},
		{"not an object", "POST", "/v1/chat/completions", engKey, `[1,2]`, 400, "bad_request", "invalid_request", "must be a JSON object", [2]string{}},
		{"missing model", "POST", "/v1/chat/completions", engKey, `{"messages":[{"role":"user","content":"hi"}]}`, 400, "bad_request", "invalid_request", "'model'", [2]string{}},
		{"missing messages", "POST", "/v1/chat/completions", engKey, `{"model":"smart"}`, 400, "bad_request", "invalid_request", "'messages'", [2]string{}},
		{"unknown model", "POST", "/v1/chat/completions", engKey, `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found", "model_not_found", `"nope"`, [2]string{}},
		{"body too large", "POST", "/v1/chat/completions", engKey, big, 413, "request_too_large", "request_too_large", "limit", [2]string{}},
		{"wrong method", "GET", "/v1/chat/completions", engKey, "", 405, "method_not_allowed", "method_not_allowed", "use POST", [2]string{"Allow", "POST"}},
		{"missing key", "POST", "/v1/chat/completions", "", chatBody, 401, "authentication", "missing_api_key", "no credential", [2]string{"WWW-Authenticate", `Bearer realm="portcullis"`}},
		{"unknown key", "POST", "/v1/chat/completions", "pcx_not_a_key", chatBody, 401, "authentication", "invalid_api_key", "not accepted", [2]string{"WWW-Authenticate", `Bearer realm="portcullis", error="invalid_token", error_description="the API key is unknown or revoked"`}},
		{"denied by policy", "POST", "/v1/chat/completions", demoKey, chatBody, 403, "policy_denied", "policy_denied", `model "smart" is not allowed for groups ["demo"]`, [2]string{}},
		{"unknown path", "POST", "/v1/nothing", engKey, "{}", 404, "not_found", "unknown_url", "/v1/nothing", [2]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.url+tc.path, strings.NewReader(tc.body))
			if tc.key != "" {
				req.Header.Set("Authorization", "Bearer "+tc.key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			msg, _, code := checkErrorShape(t, body)
			if code != tc.code || !strings.Contains(msg, tc.inMessage) {
				t.Errorf("code %q message %q; want code %q and %q in message", code, msg, tc.code, tc.inMessage)
			}
			if tc.header[0] != "" && resp.Header.Get(tc.header[0]) != tc.header[1] {
				t.Errorf("%s = %q, want %q", tc.header[0], resp.Header.Get(tc.header[0]), tc.header[1])
			}
			if len(h.upstream.Requests()) != 0 {
				t.Errorf("a refused request reached the upstream")
			}

			rec := h.records.last(t, i+1)
			if rec.RequestID != resp.Header.Get("X-Request-Id") || rec.Status != tc.status || rec.ErrorClass != tc.class || rec.Error == "" {
				t.Errorf("record id %s status %d class %q error %q", rec.RequestID, rec.Status, rec.ErrorClass, rec.Error)
			}
			if rec.Time.IsZero() || rec.ClientIP == "" || rec.Method != tc.method || rec.Endpoint != tc.path || rec.Latency <= 0 {
				t.Errorf("record request facts: %+v", rec)
			}
			authenticated := tc.status != 401
			if authenticated != (rec.Identity.Subject != "") {
				t.Errorf("record identity %+v for status %d", rec.Identity, tc.status)
			}
			if tc.status == 403 && (!rec.Decision.Evaluated || rec.Decision.Allow || len(rec.Decision.Reasons) != 1 || rec.Decision.Revision == "") {
				t.Errorf("record decision %+v", rec.Decision)
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		body        string
		header      http.Header
		wantStatus  int
		wantClass   string
		wantCode    string
		wantHeaders map[string]string
	}{
		{"rate limited keeps Retry-After", 429, `{"error":{"message":"Rate limit reached","type":"tokens","param":null,"code":"rate_limit_exceeded"}}`,
			http.Header{"Retry-After": {"7"}}, 429, "upstream_rate_limited", "rate_limit_exceeded", map[string]string{"Retry-After": "7"}},
		{"provider refuses the gateway key", 401, `{"error":{"message":"Incorrect API key provided: sk-upstream-SECRET-4f8a1c9e77","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			nil, 502, "upstream_auth", "upstream_auth_failed", nil},
		{"context too long", 400, `{"error":{"message":"maximum context length is 128000 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
			nil, 400, "upstream_bad_request", "context_length_exceeded", nil},
		{"server error", 503, `{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}`,
			nil, 503, "upstream_server_error", "", nil},
		{"non-JSON error", 500, `<html>oops</html>`, nil, 500, "upstream_server_error", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.upstream.Status, h.upstream.Body, h.upstream.Header = tc.status, []byte(tc.body), tc.header
			resp := h.post(engKey, chatBody)
			body := readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			_, _, code := checkErrorShape(t, body)
			if code != tc.wantCode {
				t.Errorf("code %q, want %q", code, tc.wantCode)
			}
			for k, v := range tc.wantHeaders {
				if resp.Header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if strings.Contains(string(body), upstreamKey) {
				t.Errorf("provider key in response: %s", body)
			}
			if rec := h.records.last(t, 1); rec.ErrorClass != tc.wantClass || rec.Status != tc.wantStatus {
				t.Errorf("record class %q status %d", rec.ErrorClass, rec.Status)
			}
		})
	}
}

// The provider key must not appear in any response, header, audit record
// or log line, even when the upstream echoes it back.
func TestProviderKeyNeverLeaks(t *testing.T) {
	dir := t.TempDir()
	auditFile := filepath.Join(dir, "audit.log")
	records, err := audit.Open(audit.Options{File: auditFile})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{audit: records})
	var seen strings.Builder
	for _, up := range []struct {
		status int
		body   string
	}{
		{0, ""},
		{400, `{"error":{"message":"bad request from key sk-upstream-SECRET-4f8a1c9e77","type":"invalid_request_error","param":null,"code":null}}`},
		{401, `{"error":{"message":"Incorrect API key provided: sk-upstream-SECRET-4f8a1c9e77","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`},
		{429, `{"error":{"message":"slow down, sk-upstream-SECRET-4f8a1c9e77","type":"requests","param":null,"code":"rate_limit_exceeded"}}`},
	} {
		h.upstream.Status, h.upstream.Body = up.status, []byte(up.body)
		for _, body := range []string{chatBody, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`} {
			resp := h.post(engKey, body)
			seen.Write(readAll(t, resp.Body))
			resp.Body.Close()
			for k, v := range resp.Header {
				seen.WriteString(k + ": " + strings.Join(v, ",") + "\n")
			}
		}
	}
	resp := h.post("", chatBody)
	resp.Body.Close()
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}
	auditLines, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(auditLines), "\n"); n != 9 {
		t.Errorf("audit file has %d records, want 9", n)
	}
	h.srv.Handler() // keep the server referenced until here
	for what, text := range map[string]string{"responses": seen.String(), "audit file": string(auditLines), "app log": h.logs.String()} {
		for _, secret := range []string{upstreamKey, engKey} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contain a credential", what)
			}
		}
	}
	if !strings.Contains(seen.String(), "[redacted]") {
		t.Errorf("the echoed key was not visibly redacted")
	}
	_ = zap.L()
}

// A policy whose decision has the wrong shape denies every call (fail
// closed) and the audit record says why.
func TestPolicyErrorFailsClosed(t *testing.T) {
	dir := t.TempDir()
	policy := "package portcullis\n\ndecision := {\"allow\": \"yes\"}\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.rego"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{policyDir: dir})
	resp := h.post(engKey, chatBody)
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if _, _, code := checkErrorShape(t, body); code != "policy_error" {
		t.Errorf("code %q", code)
	}
	rec := h.records.last(t, 1)
	if rec.ErrorClass != "policy_error" || rec.Decision.Allow || !strings.Contains(rec.Error, "decision.allow") {
		t.Errorf("record class %q allow %v error %q", rec.ErrorClass, rec.Decision.Allow, rec.Error)
	}
	if len(h.upstream.Requests()) != 0 {
		t.Error("a call reached the upstream under a broken policy")
	}
}

// /v1/messages answers every error in Anthropic's shape, the wrapper's own
// 405 included, so Anthropic's SDKs can read it.
func TestMessagesErrorsInAnthropicShape(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, tc := range []struct {
		method, key string
		status      int
	}{
		{http.MethodGet, engKey, 405},
		{http.MethodPost, "", 401},
	} {
		req, _ := http.NewRequest(tc.method, h.url+"/v1/messages", strings.NewReader(`{}`))
		if tc.key != "" {
			req.Header.Set("X-Api-Key", tc.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if resp.StatusCode != tc.status || json.Unmarshal(body, &e) != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
			t.Errorf("%s /v1/messages: %d %s", tc.method, resp.StatusCode, body)
		}
	}
}
