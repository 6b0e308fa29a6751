package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"portcullis/authn"
	"portcullis/internal/testkit"
)

// Run as a process, the gateway keeps the provider key out of everything it
// prints or writes, and the client's key out of what it sends upstream.
func TestProviderKeyStaysSecret(t *testing.T) {
	const providerKey = "sk-e2e-provider-SECRET-93c1"
	up := testkit.NewUpstream(t)
	dir := t.TempDir()
	policies, _ := filepath.Abs("../policies")
	clientKey, hash := authn.GenerateKey()
	cfg := filepath.Join(dir, "config.yaml")
	auditFile := filepath.Join(dir, "audit.log")
	yaml := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN}
log:
  level: debug
providers:
  - name: upstream
    type: openai
    base_url: %s/v1
    api_key: ${UPSTREAM_KEY}
models:
  - name: smart
    provider: upstream
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
  stdout: true
`, up.URL, hash, policies, auditFile)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg, "UPSTREAM_KEY="+providerKey)
	client := sdkClient(g, clientKey)
	ctx := withTimeout(t)
	params := openai.ChatCompletionNewParams{Model: "smart", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	if _, err := client.Chat.Completions.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	up.Status, up.Body = 401, []byte(`{"error":{"message":"Incorrect API key provided: `+providerKey+`","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
	_, err := client.Chat.Completions.New(ctx, params)
	if err == nil || strings.Contains(err.Error(), providerKey) {
		t.Errorf("error surfaced to the client: %v", err)
	}
	if err := g.stop(t); err != nil {
		t.Fatal(err)
	}

	for _, r := range up.Requests() {
		if r.Header.Get("Authorization") != "Bearer "+providerKey {
			t.Errorf("upstream got Authorization %q", r.Header.Get("Authorization"))
		}
		for k, v := range r.Header {
			if strings.Contains(strings.Join(v, ","), clientKey) {
				t.Errorf("client key forwarded upstream in %s", k)
			}
		}
	}
	auditData, _ := os.ReadFile(auditFile)
	for what, text := range map[string]string{"process output": g.stderr.String(), "audit file": string(auditData)} {
		if strings.Contains(text, providerKey) || strings.Contains(text, clientKey) {
			t.Errorf("%s contains a credential", what)
		}
	}
	if strings.Count(string(auditData), "\n") != 3 {
		t.Errorf("audit file has %d records, want 3", strings.Count(string(auditData), "\n"))
	}
}
