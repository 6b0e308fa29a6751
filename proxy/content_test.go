package proxy_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"portcullis/audit"
	"portcullis/internal/testkit"
)

// A secret in a prompt, and the record's redaction of it.
const (
	promptSecret = "sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z"
	promptText   = "Name the three primary colors. My key is " + promptSecret
	redacted     = "Name the three primary colors. My key is [REDACTED:openai_api_key]"
)

// postTo sends body to path with the engineering key.
func (h *harness) postTo(path, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+engKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	readAll(h.t, resp.Body)
	resp.Body.Close()
	return resp
}

// When the decision says log_content, the record holds the prompt and the
// completion, streamed or not, passed through or translated, with the
// secrets redacted.
func TestLogContent(t *testing.T) {
	ant := testkit.NewAnthropicUpstream(t, anthropicKey)
	h := newHarness(t, harnessOptions{
		policyDir: policyFolder(t, `{"allow": true, "log_content": true}`),
		providers: "\n  - name: anthropic\n    type: anthropic\n    base_url: " + ant.URL + "\n    api_key: " + anthropicKey,
		models:    "\n  - name: claude\n    provider: anthropic\n    upstream_model: claude-sonnet-4-5",
	})
	user := `{"role":"system","content":"Be brief."},{"role":"user","content":"` + promptText + `"}`
	answer := "Red, yellow, and blue."
	n := 0
	weather := audit.ToolCall{ID: "call_Wd3kQ9vLx2PmZr7TnB5yHc1F", Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}
	for _, tc := range []struct {
		name, path, body string
		completion       string
		tools            []audit.ToolCall
	}{
		{"chat", "/v1/chat/completions", `{"model":"smart","messages":[` + user + `]}`, answer, nil},
		{"chat stream", "/v1/chat/completions", `{"model":"smart","stream":true,"messages":[` + user + `]}`, answer, nil},
		{"chat streamed tool call", "/v1/chat/completions", `{"model":"smart","stream":true,"tools":[` + weatherTool + `],"messages":[` + user + `]}`, "", []audit.ToolCall{weather}},
		{"chat tool call", "/v1/chat/completions", `{"model":"smart","tools":[` + weatherTool + `],"messages":[` + user + `]}`, "", []audit.ToolCall{weather}},
		{"messages translated", "/v1/messages", `{"model":"smart","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"` + promptText + `"}]}`, answer, nil},
		{"messages translated stream", "/v1/messages", `{"model":"smart","max_tokens":100,"stream":true,"system":"Be brief.","messages":[{"role":"user","content":"` + promptText + `"}]}`, answer, nil},
		{"messages passed through", "/v1/messages", `{"model":"claude","max_tokens":100,"system":"Be brief.","messages":[{"role":"user","content":"` + promptText + `"}]}`, answer, nil},
		{"messages passed through stream", "/v1/messages", `{"model":"claude","max_tokens":100,"stream":true,"system":"Be brief.","messages":[{"role":"user","content":"` + promptText + `"}]}`, answer, nil},
		{"chat translated to anthropic", "/v1/chat/completions", `{"model":"claude","messages":[` + user + `]}`, answer, nil},
		{"chat translated to anthropic stream", "/v1/chat/completions", `{"model":"claude","stream":true,"messages":[` + user + `]}`, answer, nil},
	} {
		n++
		t.Run(tc.name, func(t *testing.T) {
			if resp := h.postTo(tc.path, tc.body); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			c := h.records.last(t, n).Content
			if c == nil {
				t.Fatal("no content in the record")
			}
			if len(c.Messages) != 2 || c.Messages[0].Role != "system" || c.Messages[0].Text != "Be brief." ||
				c.Messages[1].Role != "user" || c.Messages[1].Text != redacted {
				t.Errorf("messages %+v", c.Messages)
			}
			if c.Completion != tc.completion {
				t.Errorf("completion %q, want %q", c.Completion, tc.completion)
			}
			if len(c.ToolCalls) != len(tc.tools) || (len(tc.tools) > 0 && c.ToolCalls[0] != tc.tools[0]) {
				t.Errorf("tool calls %+v, want %+v", c.ToolCalls, tc.tools)
			}
			if c.Truncated || len(c.Redactions) != 1 || c.Redactions[0] != (audit.Redaction{Kind: "openai_api_key", Count: 1}) {
				t.Errorf("truncated %v, redactions %v", c.Truncated, c.Redactions)
			}
		})
	}

	// The in-process demo model streams its own answer.
	n++
	h.postTo("/v1/chat/completions", `{"model":"demo","stream":true,"messages":[{"role":"user","content":"hello"}]}`)
	if c := h.records.last(t, n).Content; c == nil || c.Completion == "" || c.Messages[0].Text != "hello" {
		t.Errorf("demo content %+v", c)
	}
}

// A passed-through request the gateway cannot read as a conversation (here
// with web_search_options, which it does not translate) is kept as sent,
// redacted.
func TestLogContentOfUnreadableRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{policyDir: policyFolder(t, `{"allow": true, "log_content": true}`)})
	body := `{"model":"smart","web_search_options":{},"messages":[{"role":"user","content":"` + promptText + `"}]}`
	if resp := h.post(engKey, body); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c := h.records.last(t, 1).Content
	if c == nil || len(c.Messages) != 0 || c.RequestBody != strings.Replace(body, promptSecret, "[REDACTED:openai_api_key]", 1) ||
		c.Completion != "Red, yellow, and blue." {
		t.Errorf("content %+v", c)
	}
}

// A denied call whose decision says log_content keeps its prompt, and
// there is no completion.
func TestLogContentOfDeniedCall(t *testing.T) {
	h := newHarness(t, harnessOptions{policyDir: policyFolder(t, `{"allow": false, "reasons": ["not today"], "log_content": true}`)})
	if resp := h.post(engKey, `{"model":"smart","messages":[{"role":"user","content":"`+promptText+`"}]}`); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d", resp.StatusCode)
	}
	c := h.records.last(t, 1).Content
	if c == nil || len(c.Messages) != 1 || c.Messages[0].Text != redacted || c.Completion != "" {
		t.Errorf("content %+v", c)
	}
}

// audit.content_max_bytes bounds the prompt and the completion each, and
// the record says it was cut.
func TestLogContentIsBounded(t *testing.T) {
	h := newHarness(t, harnessOptions{policyDir: policyFolder(t, `{"allow": true, "log_content": true}`), contentMaxBytes: 12})
	h.post(engKey, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"`+promptText+`"},{"role":"user","content":"more"}]}`)
	c := h.records.last(t, 1).Content
	if c == nil || !c.Truncated || c.Messages[0].Text != "Name the thr" || c.Messages[1].Text != "" || c.Completion != "Red, yellow," {
		t.Errorf("content %+v", c)
	}
}

// When the decision does not say log_content, nothing of the content
// enters the record: not in the record's fields, nor anywhere in the
// audit file's line.
func TestNoContentWithoutLogContent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "audit.log")
	records, err := audit.Open(audit.Options{File: file})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{audit: records, policyDir: policyFolder(t, `{"allow": true}`)})
	for _, body := range []string{
		`{"model":"smart","messages":[{"role":"user","content":"` + promptText + `"}]}`,
		`{"model":"smart","stream":true,"messages":[{"role":"user","content":"` + promptText + `"}]}`,
	} {
		if resp := h.post(engKey, body); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	waitForLines(t, file, 2)
	if err := records.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"primary colors", promptSecret, "yellow", `"content"`, "content_truncated", "redactions"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the audit file holds %q without log_content:\n%s", leak, raw)
		}
	}
}
