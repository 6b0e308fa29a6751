package e2e

import (
	"context"
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

const anthropicUpstreamKey = "sk-ant-e2e-SECRET-77b2"

// anthropicGateway runs the binary with two models: "claude" on a fake
// Anthropic, "demo" on the built-in demo model. It returns the gateway,
// a client key and the audit file.
func anthropicGateway(t *testing.T) (*gateway, string, string) {
	t.Helper()
	up := testkit.NewAnthropicUpstream(t, anthropicUpstreamKey)
	dir := t.TempDir()
	policies, _ := filepath.Abs("../policies")
	clientKey, hash := authn.GenerateKey()
	cfg := filepath.Join(dir, "config.yaml")
	auditFile := filepath.Join(dir, "audit.log")
	yaml := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN}
providers:
  - name: anthropic
    type: anthropic
    base_url: %s
    api_key: ${ANTHROPIC_KEY}
  - name: demo
    type: demo
    word_delay: 1ms
models:
  - name: claude
    provider: anthropic
    upstream_model: claude-sonnet-4-5
  - name: demo
    provider: demo
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
`, up.URL, hash, policies, auditFile)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startGateway(t, cfg, "ANTHROPIC_KEY="+anthropicUpstreamKey), clientKey, auditFile
}

var weatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name:        "get_weather",
	Description: anthropic.String("Get the current weather for a city."),
	InputSchema: anthropic.ToolInputSchemaParam{
		Properties: map[string]any{
			"location": map[string]any{"type": "string"},
			"unit":     map[string]any{"type": "string", "enum": []string{"celsius", "fahrenheit"}},
		},
		Required: []string{"location", "unit"},
	},
}}

// The official Anthropic Go SDK works against /v1/messages, whether the
// model is on Anthropic (passthrough) or on an OpenAI-format provider (the
// demo model, translated): a plain call, a streamed tool call accumulated
// by the SDK, the tool result turn, and typed errors.
func TestAnthropicSDKThroughGateway(t *testing.T) {
	g, key, auditFile := anthropicGateway(t)
	client := anthropic.NewClient(
		anthropicopt.WithBaseURL(g.URL()),
		anthropicopt.WithAPIKey(key),
		anthropicopt.WithMaxRetries(0),
	)
	ctx := withTimeout(t)
	calls := 0
	for _, model := range []string{"claude", "demo"} {
		t.Run(model+"/plain", func(t *testing.T) {
			calls++
			msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
				Model:     model,
				MaxTokens: 256,
				System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Name the three primary colors."))},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) == 0 || msg.Content[0].Type != "text" || msg.Content[0].Text == "" || msg.StopReason != "end_turn" {
				t.Errorf("answer %+v stop %q", msg.Content, msg.StopReason)
			}
			if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
				t.Errorf("usage %+v", msg.Usage)
			}
		})
		t.Run(model+"/streamed tool use, then the tool's result", func(t *testing.T) {
			calls += 2
			msg := anthropicToolRoundTrip(t, ctx, client, model)
			if model == "claude" && (msg.Usage.InputTokens != 412 || msg.Usage.OutputTokens != 71) {
				t.Errorf("usage %d/%d, want the fixture's 412/71", msg.Usage.InputTokens, msg.Usage.OutputTokens)
			}
		})
	}
	t.Run("typed errors", func(t *testing.T) {
		calls += 2
		bad := anthropic.NewClient(anthropicopt.WithBaseURL(g.URL()), anthropicopt.WithAPIKey("pcx_wrong"), anthropicopt.WithMaxRetries(0))
		params := anthropic.MessageNewParams{Model: "claude", MaxTokens: 16, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}}
		_, err := bad.Messages.New(ctx, params)
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
			t.Errorf("bad key: %v", err)
		}
		params.Model = "no-such-model"
		_, err = client.Messages.New(ctx, params)
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(err.Error(), "not_found_error") {
			t.Errorf("unknown model: %v", err)
		}
	})
	if err := g.stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	lines := auditLines(t, auditFile)
	if len(lines) != calls {
		t.Errorf("%d audit records for %d calls", len(lines), calls)
	}
	for _, l := range lines {
		if l.fields["endpoint"] != "/v1/messages" {
			t.Errorf("record endpoint %v", l.fields["endpoint"])
		}
		if l.fields["status"] == float64(200) && (l.fields["prompt_tokens"] == float64(0) || l.fields["completion_tokens"] == float64(0)) {
			t.Errorf("a successful call recorded no tokens: %s", l.raw)
		}
	}
}

// anthropicToolRoundTrip streams a tool use from model with Anthropic's
// SDK, accumulated by the SDK, then sends the tool's result back and
// checks the answer; it returns the streamed message.
func anthropicToolRoundTrip(t *testing.T, ctx context.Context, client anthropic.Client, model string) anthropic.Message {
	t.Helper()
	params := anthropic.MessageNewParams{
		Model:     model,
		MaxTokens: 1024,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is the weather in Paris right now?"))},
		Tools:     []anthropic.ToolUnionParam{weatherTool},
	}
	stream := client.Messages.NewStreaming(ctx, params)
	var msg anthropic.Message
	events := 0
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatalf("accumulate: %v", err)
		}
		events++
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
	if use == nil || use.Name != "get_weather" || msg.StopReason != "tool_use" {
		t.Fatalf("%d events accumulated to %+v, stop %q", events, msg.Content, msg.StopReason)
	}
	var args struct{ Location, Unit string }
	if err := json.Unmarshal(use.Input, &args); err != nil || args.Location == "" || args.Unit != "celsius" {
		t.Errorf("tool input %s: %v", use.Input, err)
	}
	if msg.Usage.InputTokens == 0 || msg.Usage.OutputTokens == 0 {
		t.Errorf("usage %+v", msg.Usage)
	}
	params.Messages = append(params.Messages, msg.ToParam(),
		anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, `{"temperature":18,"condition":"cloudy"}`, false)))
	answer, err := client.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if answer.StopReason != "end_turn" || len(answer.Content) == 0 || answer.Content[0].Text == "" {
		t.Errorf("after the tool result: %+v stop %q", answer.Content, answer.StopReason)
	}
	return msg
}

// The OpenAI Go SDK works against a model served by Anthropic: a plain
// call, a stream with usage, and a streamed tool call whose arguments the
// SDK's accumulator joins into JSON.
func TestOpenAISDKAgainstAnthropic(t *testing.T) {
	g, key, _ := anthropicGateway(t)
	client := sdkClient(g, key)
	ctx := withTimeout(t)
	params := openai.ChatCompletionNewParams{
		Model:    "claude",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage("Name the three primary colors.")},
	}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != "Red, yellow, and blue." || resp.Choices[0].FinishReason != "stop" ||
		resp.Usage.PromptTokens != 24 || resp.Usage.CompletionTokens != 10 || resp.Usage.TotalTokens != 34 {
		t.Errorf("answer %+v usage %+v", resp.Choices[0], resp.Usage)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if acc.Choices[0].Message.Content != resp.Choices[0].Message.Content || acc.Usage.PromptTokens != 24 || acc.Usage.CompletionTokens != 10 {
		t.Errorf("stream joined to %q, usage %+v", acc.Choices[0].Message.Content, acc.Usage)
	}

	params.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris right now?")}
	params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}},
	})}
	stream = client.Chat.Completions.NewStreaming(ctx, params)
	acc = openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "get_weather" || acc.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("tool calls %+v finish %q", calls, acc.Choices[0].FinishReason)
	}
	var args map[string]string
	if err := json.Unmarshal([]byte(calls[0].Function.Arguments), &args); err != nil || args["location"] != "Paris, France" {
		t.Errorf("arguments %q: %v", calls[0].Function.Arguments, err)
	}
}
