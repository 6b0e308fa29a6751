package proxy_test

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/audit"
	"portcullis/internal/testkit"
)

// Every way a call can end leaves exactly one audit record, with the
// outcome and the timings that apply to it.
func TestOneRecordPerCall(t *testing.T) {
	h := newHarness(t, harnessOptions{
		providers: `
  - name: down
    type: openai
    base_url: http://127.0.0.1:1/v1
    api_key: sk-down`,
		models: `
  - name: down
    provider: down`,
	})
	stream := `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	big := `{"model":"smart","messages":[{"role":"user","content":"` + strings.Repeat("x", 5000) + `"}]}`
	do := func(method, path, key, body string) *http.Response {
		req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// complete sends a request and reads its whole answer.
	complete := func(method, path, key, body string) func() *http.Response {
		return func() *http.Response {
			resp := do(method, path, key, body)
			readAll(t, resp.Body)
			resp.Body.Close()
			return resp
		}
	}
	upstreamAnswers := func(status int, body string, then func() *http.Response) func() *http.Response {
		return func() *http.Response {
			h.upstream.Status, h.upstream.Body = status, []byte(body)
			defer func() { h.upstream.Status, h.upstream.Body = 0, nil }()
			return then()
		}
	}
	cases := []struct {
		name    string
		call    func() *http.Response
		status  int
		class   string
		outcome string
		// upstream and ttft say the record must show time spent upstream
		// and a time to first token.
		upstream, ttft bool
	}{
		{"allowed", complete("POST", "/v1/chat/completions", engKey, chatBody), 200, "", "success", true, false},
		{"allowed stream", complete("POST", "/v1/chat/completions", engKey, stream), 200, "", "success", true, true},
		{"models", complete("GET", "/v1/models", engKey, ""), 200, "", "success", false, false},
		{"denied", complete("POST", "/v1/chat/completions", demoKey, chatBody), 403, "policy_denied", "denied", false, false},
		{"no credential", complete("POST", "/v1/chat/completions", "", chatBody), 401, "authentication", "denied", false, false},
		{"unknown key", complete("POST", "/v1/chat/completions", "pcx_nope", chatBody), 401, "authentication", "denied", false, false},
		{"too large", complete("POST", "/v1/chat/completions", engKey, big), 413, "request_too_large", "invalid", false, false},
		{"malformed", complete("POST", "/v1/chat/completions", engKey, `{"model"`), 400, "bad_request", "invalid", false, false},
		{"unknown model", complete("POST", "/v1/chat/completions", engKey, `{"model":"x","messages":[{"role":"user","content":"hi"}]}`), 404, "model_not_found", "invalid", false, false},
		{"wrong method", complete("GET", "/v1/chat/completions", engKey, ""), 405, "method_not_allowed", "invalid", false, false},
		{"unknown path", complete("POST", "/v1/nothing", engKey, "{}"), 404, "not_found", "invalid", false, false},
		{"upstream 429", upstreamAnswers(429, `{"error":{"message":"slow down","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			complete("POST", "/v1/chat/completions", engKey, chatBody)), 429, "upstream_rate_limited", "failed", true, false},
		{"upstream 500", upstreamAnswers(500, `oops`, complete("POST", "/v1/chat/completions", engKey, chatBody)), 500, "upstream_server_error", "failed", true, false},
		{"upstream unreachable", complete("POST", "/v1/chat/completions", engKey, `{"model":"down","messages":[{"role":"user","content":"hi"}]}`), 502, "upstream_unreachable", "failed", true, false},
		{"client disconnects mid-stream", func() *http.Response {
			h.upstream.Hold = make(chan struct{})
			defer func() { close(h.upstream.Hold); h.upstream.Hold = nil }()
			resp := do("POST", "/v1/chat/completions", engKey, stream)
			testkit.ReadEvent(t, bufio.NewReader(resp.Body))
			resp.Body.Close()
			testkit.Wait(t, h.upstream.Cancelled, "the upstream request to be cancelled")
			return resp
		}, 499, "client_disconnected", "cancelled", true, false},
	}
	ids := make([]string, len(cases))
	for i, tc := range cases {
		resp := tc.call()
		if tc.status != 499 && resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		ids[i] = resp.Header.Get("X-Request-Id")
		if ids[i] == "" {
			t.Fatalf("%s: no X-Request-Id", tc.name)
		}
	}
	// Closing the server waits for every handler to return, so every
	// record that will ever be written is written now.
	h.ts.Close()

	h.records.mu.Lock()
	records := append([]audit.Record(nil), h.records.records...)
	h.records.mu.Unlock()
	if len(records) != len(cases) {
		t.Errorf("%d records for %d calls", len(records), len(cases))
	}
	byID := map[string][]audit.Record{}
	for _, r := range records {
		byID[r.RequestID] = append(byID[r.RequestID], r)
	}
	for i, tc := range cases {
		got := byID[ids[i]]
		if len(got) != 1 {
			t.Errorf("%s: %d records, want 1", tc.name, len(got))
			continue
		}
		r := got[0]
		if r.Status != tc.status || r.ErrorClass != tc.class || r.Outcome() != tc.outcome {
			t.Errorf("%s: status %d class %q outcome %q; want %d %q %q", tc.name, r.Status, r.ErrorClass, r.Outcome(), tc.status, tc.class, tc.outcome)
		}
		if r.Latency <= 0 {
			t.Errorf("%s: latency %v", tc.name, r.Latency)
		}
		if (r.UpstreamLatency > 0) != tc.upstream {
			t.Errorf("%s: upstream latency %v", tc.name, r.UpstreamLatency)
		}
		if (r.TimeToFirstToken > 0) != tc.ttft || (tc.ttft && (r.TimeToFirstToken < r.TimeToFirstByte || r.TimeToFirstToken > r.Latency)) {
			t.Errorf("%s: ttft %v (ttfb %v, latency %v)", tc.name, r.TimeToFirstToken, r.TimeToFirstByte, r.Latency)
		}
		if tc.class != "authentication" && tc.status != 404 && tc.status != 405 && r.AuthLatency <= 0 {
			t.Errorf("%s: authn latency %v", tc.name, r.AuthLatency)
		}
		if r.Decision.Evaluated && r.PolicyLatency <= 0 {
			t.Errorf("%s: policy latency %v", tc.name, r.PolicyLatency)
		}
	}
}

// Under 1,000 concurrent calls through the real audit file sink, the file
// holds exactly one record per call, and its chain is whole.
func TestNoRecordLostUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	records, err := audit.Open(audit.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{audit: records})
	const n = 1000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}}
	bodies := []string{chatBody, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`, `{"model"`}
	keys := []string{engKey, engKey, engKey, demoKey, ""}
	ids := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(bodies[i%len(bodies)]))
			if k := keys[i%len(keys)]; k != "" {
				req.Header.Set("Authorization", "Bearer "+k)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ids[i] = resp.Header.Get("X-Request-Id")
		})
	}
	close(start)
	wg.Wait()
	h.ts.Close()
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}
	rep := audit.VerifyFiles([]string{path}, nil)[0]
	if !rep.OK() || rep.Calls != n {
		t.Fatalf("%d calls, audit file: %+v", n, rep)
	}
	seen := map[string]int{}
	for _, l := range readLines(t, path) {
		seen[l["request_id"].(string)]++
	}
	for i, id := range ids {
		if seen[id] != 1 {
			t.Errorf("call %d (%s): %d records", i, id, seen[id])
		}
	}
}

// While the audit file cannot be written, a fail-closed gateway refuses
// calls with 503 audit_unavailable (each refusal itself recorded once the
// file is back), and it serves again by itself when the file can be
// written.
func TestAuditFailClosedRefusesCalls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	records, err := audit.Open(audit.Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{audit: records})
	call := func() (int, string) {
		resp := h.post(engKey, chatBody)
		body := readAll(t, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	if status, _ := call(); status != 200 {
		t.Fatalf("status %d before the failure", status)
	}
	waitForLines(t, path, 1)
	// Replace the file by a directory: root ignores permissions, so a
	// read-only file or folder would not stop the gateway.
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	// The next record written finds the path taken; from then on calls
	// are refused.
	call()
	deadline := time.Now().Add(10 * time.Second)
	for records.Available() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	status, body := call()
	if status != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"audit_unavailable"`) {
		t.Fatalf("while the audit file cannot be written: %d %s", status, body)
	}
	if len(h.upstream.Requests()) != 2 {
		t.Errorf("%d upstream requests: a refused call reached the provider", len(h.upstream.Requests()))
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for records.Available() != nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if status, _ := call(); status != 200 {
		t.Fatalf("status %d after the audit file came back", status)
	}
	h.ts.Close()
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}
	reps := audit.VerifyFiles([]string{path + ".old", path}, nil)
	classes := map[string]int{}
	for _, l := range readLines(t, path) {
		if l["kind"] == "call" {
			classes[l["error_class"].(string)]++
		}
	}
	if !reps[0].OK() || !reps[1].OK() || reps[0].Calls != 1 || reps[1].Calls != 3 || classes["audit_unavailable"] != 1 ||
		!strings.Contains(reps[1].Checkpoint, "linked to") {
		t.Errorf("files %+v, classes in the new file %v", reps, classes)
	}
}
