package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"portcullis/authn"
	"portcullis/internal/testkit"
)

// The OpenAI SDK against a routed model through the binary: the OpenAI
// provider keeps failing, and the calls fall back to Anthropic; the SDK
// sees ordinary answers, plain and streamed, with the headers naming who
// served them, and each audit record lists every attempt.
func TestOpenAISDKThroughFallback(t *testing.T) {
	failing := testkit.NewUpstream(t)
	failing.Failing(503)
	ant := testkit.NewAnthropicUpstream(t, anthropicUpstreamKey)
	dir := t.TempDir()
	policies, _ := filepath.Abs("../policies")
	clientKey, hash := authn.GenerateKey()
	cfg := filepath.Join(dir, "config.yaml")
	auditFile := filepath.Join(dir, "audit.log")
	yaml := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN}
providers:
  - name: openai
    type: openai
    base_url: %s/v1
    api_key: sk-e2e-openai-0123456789
  - name: anthropic
    type: anthropic
    base_url: %s
    api_key: ${ANTHROPIC_KEY}
models:
  - name: smart
    targets:
      - {provider: openai, upstream_model: gpt-4.1}
      - {provider: anthropic, upstream_model: claude-sonnet-4-5}
    retry: {attempts: 2, backoff: 1ms, max_backoff: 2ms}
auth:
  api_keys:
    - name: alice
      hash: %s
      subject: alice
      groups: [engineering]
policy:
  dir: %s
audit:
  file: %s
`, failing.URL, ant.URL, hash, policies, auditFile)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg, "ANTHROPIC_KEY="+anthropicUpstreamKey)
	client := sdkClient(g, clientKey)
	ctx := withTimeout(t)
	params := openai.ChatCompletionNewParams{
		Model:    "smart",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Name the three primary colors.")},
	}

	var raw *http.Response
	resp, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 {
		t.Errorf("answer = %+v", resp)
	}
	if p, a := raw.Header.Get("X-Portcullis-Provider"), raw.Header.Get("X-Portcullis-Attempts"); p != "anthropic" || a != "3" {
		t.Errorf("x-portcullis-provider %q attempts %q, want anthropic after 3", p, a)
	}
	rec := auditRecord(t, auditFile, raw.Header.Get("X-Request-Id"))
	attempts, _ := rec["attempts"].([]any)
	if len(attempts) != 3 || rec["provider"] != "anthropic" || rec["error_class"] != "" {
		t.Errorf("record: provider %v class %v attempts %v", rec["provider"], rec["error_class"], rec["attempts"])
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content == "" {
		t.Errorf("streamed answer = %+v", acc.ChatCompletion)
	}
	if n := len(failing.Requests()); n != 4 {
		t.Errorf("the failing provider got %d requests, want 2 per call", n)
	}
}
