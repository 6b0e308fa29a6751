package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicopt "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"

	"portcullis/authn"
	"portcullis/internal/testkit"
)

const (
	geminiUpstreamKey  = "AIza-e2e-SECRET-51c3"
	cohereUpstreamKey  = "co-e2e-SECRET-a9d2"
	bedrockUpstreamKey = "ABSK-e2e-SECRET-3f70"
)

// nativeGateway runs the binary with a model on each native-format
// provider: "gemini" (a fake Gemini), "command" (a fake Cohere), "llama"
// (a fake local Ollama, no key) and "nova" (a fake Bedrock). It returns the gateway, a client
// key, the audit file and the fakes.
func nativeGateway(t *testing.T) (*gateway, string, string, map[string]*testkit.ProviderUpstream) {
	t.Helper()
	ups := map[string]*testkit.ProviderUpstream{
		"gemini":  testkit.NewGeminiUpstream(t, geminiUpstreamKey),
		"command": testkit.NewCohereUpstream(t, cohereUpstreamKey),
		"llama":   testkit.NewOllamaUpstream(t, ""),
		"nova":    testkit.NewBedrockUpstream(t, bedrockUpstreamKey),
	}
	dir := t.TempDir()
	policies, _ := filepath.Abs("../policies")
	clientKey, hash := authn.GenerateKey()
	cfg := filepath.Join(dir, "config.yaml")
	auditFile := filepath.Join(dir, "audit.log")
	yaml := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN}
providers:
  - name: google
    type: gemini
    base_url: %s/v1beta
    api_key: ${GEMINI_KEY}
  - name: cohere
    type: cohere
    base_url: %s
    api_key: ${COHERE_KEY}
  - name: ollama
    type: ollama
    base_url: %s
  - name: aws
    type: bedrock
    base_url: %s
    api_key: ${BEDROCK_KEY}
models:
  - name: gemini
    provider: google
    upstream_model: gemini-2.5-flash
  - name: command
    provider: cohere
    upstream_model: command-a-03-2025
  - name: llama
    provider: ollama
    upstream_model: llama3.2
  - name: nova
    provider: aws
    upstream_model: anthropic.claude-sonnet-4-5-20250929-v1:0
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
`, ups["gemini"].URL, ups["command"].URL, ups["llama"].URL, ups["nova"].URL, hash, policies, auditFile)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, cfg, "GEMINI_KEY="+geminiUpstreamKey, "COHERE_KEY="+cohereUpstreamKey, "BEDROCK_KEY="+bedrockUpstreamKey)
	return g, clientKey, auditFile, ups
}

// The OpenAI Go SDK works against a model on each native-format provider:
// a plain call, a stream with usage accumulated by the SDK into the same
// answer, a tool call and a streamed tool call whose arguments parse, the
// tool result turn, and the provider's 429 as a typed error. The audit
// record of each call has the provider's token counts.
func TestOpenAISDKAgainstNativeProviders(t *testing.T) {
	g, key, auditFile, ups := nativeGateway(t)
	client := sdkClient(g, key)
	ctx := withTimeout(t)
	calls := 0
	for _, tc := range []struct {
		model                      string
		prompt, completion         int64
		toolPrompt, toolCompletion int64
		reasoning                  int64
	}{
		{"gemini", 14, 88, 58, 78, 81},
		{"command", 503, 9, 1042, 57, 0},
		{"llama", 38, 8, 169, 24, 0},
		{"nova", 24, 10, 412, 71, 0},
	} {
		t.Run(tc.model, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:    tc.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage("Name the three primary colors.")},
			}
			calls++
			resp, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			u := resp.Usage
			if resp.Choices[0].Message.Content != "Red, yellow, and blue." || resp.Choices[0].FinishReason != "stop" ||
				u.PromptTokens != tc.prompt || u.CompletionTokens != tc.completion || u.TotalTokens != tc.prompt+tc.completion ||
				u.CompletionTokensDetails.ReasoningTokens != tc.reasoning {
				t.Errorf("answer %+v usage %+v", resp.Choices[0], u)
			}

			calls++
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream := client.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if acc.Choices[0].Message.Content != resp.Choices[0].Message.Content || acc.Usage.PromptTokens != tc.prompt || acc.Usage.CompletionTokens != tc.completion {
				t.Errorf("stream joined to %q, usage %+v", acc.Choices[0].Message.Content, acc.Usage)
			}

			params = openai.ChatCompletionNewParams{
				Model:    tc.model,
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris right now?")},
				Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
					Name:       "get_weather",
					Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}},
				})},
			}
			calls++
			resp, err = client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			toolCalls := resp.Choices[0].Message.ToolCalls
			if len(toolCalls) != 1 || toolCalls[0].Function.Name != "get_weather" || resp.Choices[0].FinishReason != "tool_calls" || toolCalls[0].ID == "" ||
				resp.Usage.PromptTokens != tc.toolPrompt || resp.Usage.CompletionTokens != tc.toolCompletion {
				t.Fatalf("tool calls %+v finish %q usage %+v", toolCalls, resp.Choices[0].FinishReason, resp.Usage)
			}

			calls++
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			stream = client.Chat.Completions.NewStreaming(ctx, params)
			acc = openai.ChatCompletionAccumulator{}
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			streamed := acc.Choices[0].Message.ToolCalls
			if len(streamed) != 1 || streamed[0].Function.Name != "get_weather" || acc.Choices[0].FinishReason != "tool_calls" || acc.Usage.PromptTokens != tc.toolPrompt {
				t.Fatalf("streamed tool calls %+v finish %q usage %+v", streamed, acc.Choices[0].FinishReason, acc.Usage)
			}
			var args map[string]string
			if err := json.Unmarshal([]byte(streamed[0].Function.Arguments), &args); err != nil || args["location"] != "Paris, France" || args["unit"] != "celsius" {
				t.Errorf("arguments %q: %v", streamed[0].Function.Arguments, err)
			}

			calls++
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
			params.Messages = append(params.Messages, acc.Choices[0].Message.ToParam(),
				openai.ToolMessage(`{"temperature":18,"condition":"cloudy"}`, streamed[0].ID))
			resp, err = client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content != "Red, yellow, and blue." || resp.Choices[0].FinishReason != "stop" {
				t.Errorf("after the tool result: %+v", resp.Choices[0])
			}

			calls++
			ups[tc.model].Fail(testkit.FailRateLimit)
			defer ups[tc.model].Fail("")
			_, err = client.Chat.Completions.New(ctx, params)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Code != "rate_limit_exceeded" {
				t.Errorf("rate limited: %v", err)
			}
		})
	}
	if err := g.stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	lines := auditLines(t, auditFile)
	if len(lines) != calls {
		t.Errorf("%d audit records for %d calls", len(lines), calls)
	}
	for _, l := range lines {
		if l.fields["status"] == float64(200) && (l.fields["prompt_tokens"] == float64(0) || l.fields["completion_tokens"] == float64(0)) {
			t.Errorf("a successful call recorded no tokens: %s", l.raw)
		}
	}
}

// The Anthropic Go SDK works against /v1/messages routed to each native
// provider: a streamed tool use accumulated by the SDK, then the tool
// result turn, which for Gemini carries the call's thoughtSignature back
// to the upstream, as the fake's last request shows.
func TestAnthropicSDKAgainstNativeProviders(t *testing.T) {
	g, key, _, ups := nativeGateway(t)
	client := anthropic.NewClient(anthropicopt.WithBaseURL(g.URL()), anthropicopt.WithAPIKey(key), anthropicopt.WithMaxRetries(0))
	ctx := withTimeout(t)
	for _, model := range []string{"gemini", "command", "llama", "nova"} {
		t.Run(model, func(t *testing.T) {
			params := anthropic.MessageNewParams{
				Model:     model,
				MaxTokens: 1024,
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Paris right now?"))},
				Tools:     []anthropic.ToolUnionParam{weatherTool},
			}
			stream := client.Messages.NewStreaming(ctx, params)
			var msg anthropic.Message
			for stream.Next() {
				if err := msg.Accumulate(stream.Current()); err != nil {
					t.Fatalf("accumulate: %v", err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			var use *anthropic.ContentBlockUnion
			for i := range msg.Content {
				if msg.Content[i].Type == "tool_use" {
					use = &msg.Content[i]
				}
			}
			if use == nil || use.Name != "get_weather" || msg.StopReason != "tool_use" || msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
				t.Fatalf("accumulated %+v, stop %q, usage %+v", msg.Content, msg.StopReason, msg.Usage)
			}
			var args struct{ Location, Unit string }
			if err := json.Unmarshal(use.Input, &args); err != nil || args.Location != "Paris, France" || args.Unit != "celsius" {
				t.Errorf("tool input %s: %v", use.Input, err)
			}
			params.Messages = append(params.Messages, msg.ToParam(),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, `{"temperature":18,"condition":"cloudy"}`, false)))
			answer, err := client.Messages.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if answer.StopReason != "end_turn" || len(answer.Content) == 0 || answer.Content[0].Text != "Red, yellow, and blue." {
				t.Errorf("after the tool result: %+v stop %q", answer.Content, answer.StopReason)
			}
			if model == "gemini" {
				reqs := ups[model].Requests()
				if last := reqs[len(reqs)-1].Body; !strings.Contains(string(last), `"thoughtSignature":"CiQBcsjafBHpD0v3qLrF3m1lq9cJ8mJ6Yv2mT4kQ0lW1xZbN2o8KdgEBcsjafD8kq"`) {
					t.Errorf("the tool result turn lost the thoughtSignature: %s", last)
				}
			}
		})
	}
}
