package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// policyFolder writes a one-file policy whose decision is the given Rego
// object expression, for callers in any group.
func policyFolder(t *testing.T, decision string) string {
	t.Helper()
	dir := t.TempDir()
	src := "package portcullis\n\ndecision := " + decision + "\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

const (
	weatherTool = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}`
	shellTool   = `{"type":"function","function":{"name":"run_shell","parameters":{"type":"object"}}}`
)

func toolBody(extra string) string {
	return `{"model":"smart","messages":[{"role":"user","content":"hi"}],"tools":[` + weatherTool + `,` + shellTool + `]` + extra + `}`
}

// upstreamJSON returns the body the upstream received, decoded.
func upstreamJSON(t *testing.T, h *harness) map[string]json.RawMessage {
	t.Helper()
	reqs := h.upstream.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests", len(reqs))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(reqs[0].Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecisionTools(t *testing.T) {
	strip := `{"allow": true, "tools": {"allowed": ["get_weather"], "on_violation": "strip"}}`
	deny := `{"allow": true, "tools": {"allowed": ["get_weather"], "on_violation": "deny"}}`
	for _, tc := range []struct {
		name, decision, body string
		status               int
		inMessage            string
		upstreamTools        string // "" when the upstream must not be called
		removed              []string
	}{
		{"deny names the refused tool", deny, toolBody(""), 403, "run_shell", "", nil},
		{"strip removes it", strip, toolBody(""), 200, "", "[" + weatherTool + "]", []string{"run_shell"}},
		{"any tool allowed", `{"allow": true, "tools": {"allowed": "*"}}`, toolBody(""), 200, "", "[" + weatherTool + "," + shellTool + "]", nil},
		{"tool_choice naming a refused tool", strip, toolBody(`,"tool_choice":{"type":"function","function":{"name":"run_shell"}}`), 403, "tool_choice names run_shell", "", nil},
		{"required with nothing left", `{"allow": true, "tools": {"allowed": [], "on_violation": "strip"}}`, toolBody(`,"tool_choice":"required"`), 403, "required", "", nil},
		{"refused tool in the history", strip,
			`{"model":"smart","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"run_shell","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"ok"}],"tools":[` + weatherTool + `]}`,
			403, "conversation calls tools", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{policyDir: policyFolder(t, tc.decision)})
			resp := h.post(engKey, tc.body)
			body := readAll(t, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			rec := h.records.last(t, 1)
			if tc.status == 403 {
				msg, _, code := checkErrorShape(t, body)
				if code != "tool_not_allowed" || !strings.Contains(msg, tc.inMessage) {
					t.Errorf("code %q message %q", code, msg)
				}
				if len(h.upstream.Requests()) != 0 {
					t.Error("a refused call reached the upstream")
				}
				if rec.ErrorClass != "tool_denied" {
					t.Errorf("record class %q", rec.ErrorClass)
				}
				return
			}
			if got := string(upstreamJSON(t, h)["tools"]); got != tc.upstreamTools {
				t.Errorf("upstream tools = %s, want %s", got, tc.upstreamTools)
			}
			if strings.Join(rec.ToolsRemoved, ",") != strings.Join(tc.removed, ",") {
				t.Errorf("record tools_removed = %v, want %v", rec.ToolsRemoved, tc.removed)
			}
		})
	}
}

// max_tokens caps the request that goes upstream; the other limits are
// carried into the audit record for the parts that enforce them.
func TestDecisionLimitsReachUpstreamAndAudit(t *testing.T) {
	h := newHarness(t, harnessOptions{policyDir: policyFolder(t, `{
	"allow": true,
	"max_tokens": 100,
	"budgets": [{"key": "user:alice", "window": "day", "tokens": 50000, "usd": 2.5}],
	"rate_limits": {"requests_per_minute": 30, "tokens_per_minute": 9000},
	"log_content": true,
}`)})
	resp := h.post(engKey, `{"model":"smart","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":4000}`)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := string(upstreamJSON(t, h)["max_completion_tokens"]); got != "100" {
		t.Errorf("upstream max_completion_tokens = %s, want the policy's cap 100", got)
	}
	d := h.records.last(t, 1).Decision
	if d.MaxTokens != 100 || !d.LogContent || d.RateLimits.RequestsPerMinute != 30 || d.RateLimits.TokensPerMinute != 9000 ||
		len(d.Budgets) != 1 || d.Budgets[0].Key != "user:alice" || d.Budgets[0].Tokens != 50000 || d.Budgets[0].USD != 2.5 {
		t.Errorf("audited decision = %+v", d)
	}
}

func TestModelsListFollowsPolicy(t *testing.T) {
	dir := t.TempDir()
	src := `package portcullis

decision := {"allow": true}

models contains m if {
	some m in input.models
	"engineering" in input.identity.groups
	m != "demo-hang"
}
`
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{policyDir: dir})
	list := func(key string) string {
		req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Data []struct{ ID string } `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range out.Data {
			ids = append(ids, m.ID)
		}
		return strings.Join(ids, ",")
	}
	if got := list(engKey); got != "smart,demo" {
		t.Errorf("engineering sees %q", got)
	}
	if got := list(demoKey); got != "" {
		t.Errorf("group demo sees %q", got)
	}
}

// Calls in flight while the policy is reloaded each get a decision from
// one revision or the other, never an error.
func TestCallsAcrossPolicyReload(t *testing.T) {
	dir := policyFolder(t, `{"allow": true, "reasons": ["v1"]}`)
	h := newHarness(t, harnessOptions{policyDir: dir})
	const calls = 1000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
	var wg sync.WaitGroup
	statuses := make(chan int, calls)
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+engKey)
			resp, err := client.Do(req)
			if err != nil {
				statuses <- -1
				return
			}
			readAll(t, resp.Body)
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	revisions := map[string]bool{h.policy.Revision(): true}
	for i := range 6 {
		reason := []string{"v1", "v2"}[i%2]
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package portcullis\n\ndecision := {\"allow\": true, \"reasons\": [\""+reason+"\"]}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := h.policy.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		revisions[h.policy.Revision()] = true
	}
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 200 {
			t.Errorf("a call across a reload got %d", st)
		}
	}
	h.records.last(t, calls)
	h.records.mu.Lock()
	defer h.records.mu.Unlock()
	for _, rec := range h.records.records {
		if !revisions[rec.Decision.Revision] || rec.ErrorClass != "" {
			t.Errorf("record revision %q class %q", rec.Decision.Revision, rec.ErrorClass)
		}
	}
}
