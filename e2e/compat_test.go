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

// compatModel is one OpenAI-compatible provider behind the gateway, with
// what its fake answers.
type compatModel struct {
	model, text string
	usage       [2]int64
	tools       bool
	embeddings  bool
}

// compatGateway runs the binary in front of fakes of Azure, Groq, Mistral,
// Perplexity, Ollama /v1 and vLLM (an OpenAI-format fake), one model each.
func compatGateway(t *testing.T) (*gateway, string, []compatModel) {
	t.Helper()
	type fake struct {
		typ, model, upstream, baseURL, key string
	}
	var fakes []fake
	for _, f := range []struct {
		compat                    testkit.Compat
		typ, model, upstream, key string
	}{
		{testkit.CompatAzure, "azure", "azure-gpt", "gpt-4o-mini-prod", "azure-e2e-SECRET-8d7c6b5a4f3e"},
		{testkit.CompatGroq, "groq", "groq-llama", "llama-3.3-70b-versatile", "gsk_e2e_SECRET_1a2b3c4d"},
		{testkit.CompatMistral, "mistral", "mistral-large", "mistral-large-latest", "mistral-e2e-SECRET-9f8e7d"},
		{testkit.CompatPerplexity, "perplexity", "sonar", "sonar", "pplx-e2e-SECRET-5e4d3c"},
		{testkit.CompatOllama, "ollama-openai", "llama-local", "llama3.2", ""},
	} {
		up := testkit.NewCompatUpstream(t, f.compat, f.key)
		fakes = append(fakes, fake{f.typ, f.model, f.upstream, up.BaseURL(), f.key})
	}
	vllm := testkit.NewUpstream(t)
	fakes = append(fakes, fake{"vllm", "vllm", "meta-llama/Llama-3.1-8B-Instruct", vllm.URL + "/v1", ""})

	var providers, models strings.Builder
	for _, f := range fakes {
		fmt.Fprintf(&providers, "  - name: %s\n    type: %s\n    base_url: %s\n", f.typ, f.typ, f.baseURL)
		if f.key != "" {
			fmt.Fprintf(&providers, "    api_key: %s\n", f.key)
		}
		fmt.Fprintf(&models, "  - name: %s\n    provider: %s\n    upstream_model: %s\n", f.model, f.typ, f.upstream)
	}
	dir := t.TempDir()
	policies, _ := filepath.Abs("../policies")
	clientKey, hash := authn.GenerateKey()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("server:\n  listen: ${PORTCULLIS_LISTEN}\nproviders:\n%smodels:\n%sauth:\n  api_keys:\n    - name: alice\n      hash: %s\n      subject: alice\n      groups: [engineering]\npolicy:\n  dir: %s\naudit:\n  file: %s\n",
		providers.String(), models.String(), hash, policies, filepath.Join(dir, "audit.log"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	colors := "Red, yellow, and blue."
	return startGateway(t, cfg), clientKey, []compatModel{
		{"azure-gpt", colors, [2]int64{27, 7}, true, true},
		{"groq-llama", colors, [2]int64{52, 8}, true, false},
		{"mistral-large", colors, [2]int64{22, 8}, true, true},
		{"sonar", "Saturn has the most known moons, with 274 confirmed as of 2025 [1], far ahead of Jupiter's 95 [2].", [2]int64{21, 38}, false, false},
		{"llama-local", colors, [2]int64{38, 8}, true, false},
		{"vllm", colors, [2]int64{27, 7}, true, false},
	}
}

// The official OpenAI SDK against every OpenAI-compatible provider
// through the gateway: a plain call, a stream with usage that joins into
// the same text, a streamed tool call whose arguments parse, the tool
// result turn, and embeddings where the provider has them; Perplexity's
// refusal of tools arrives as a typed 400.
func TestOpenAISDKAgainstCompatProviders(t *testing.T) {
	g, key, models := compatGateway(t)
	client := sdkClient(g, key)
	ctx := withTimeout(t)
	for _, m := range models {
		t.Run(m.model, func(t *testing.T) {
			params := openai.ChatCompletionNewParams{
				Model:               m.model,
				Messages:            []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are terse."), openai.UserMessage("Name the three primary colors.")},
				MaxCompletionTokens: openai.Int(64),
			}
			resp, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content != m.text || resp.Choices[0].FinishReason != "stop" ||
				resp.Usage.PromptTokens != m.usage[0] || resp.Usage.CompletionTokens != m.usage[1] || resp.Usage.TotalTokens != m.usage[0]+m.usage[1] {
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
			if acc.Choices[0].Message.Content != m.text || acc.Usage.PromptTokens != m.usage[0] || acc.Usage.CompletionTokens != m.usage[1] {
				t.Errorf("stream joined to %q, usage %+v", acc.Choices[0].Message.Content, acc.Usage)
			}

			params.Messages = []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris right now?")}
			params.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
				Name:       "get_weather",
				Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}, "unit": map[string]any{"type": "string"}}},
			})}
			if !m.tools {
				_, err := client.Chat.Completions.New(ctx, params)
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "tools" {
					t.Errorf("tools to %s: %v", m.model, err)
				}
				return
			}
			stream = client.Chat.Completions.NewStreaming(ctx, params)
			acc = openai.ChatCompletionAccumulator{}
			for stream.Next() {
				acc.AddChunk(stream.Current())
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			calls := acc.Choices[0].Message.ToolCalls
			if len(calls) != 1 || calls[0].Function.Name != "get_weather" || acc.Choices[0].FinishReason != "tool_calls" || acc.Usage.TotalTokens == 0 {
				t.Fatalf("tool calls %+v finish %q usage %+v", calls, acc.Choices[0].FinishReason, acc.Usage)
			}
			var args map[string]string
			if err := json.Unmarshal([]byte(calls[0].Function.Arguments), &args); err != nil || args["location"] != "Paris, France" || args["unit"] != "celsius" {
				t.Errorf("arguments %q: %v", calls[0].Function.Arguments, err)
			}

			call, err := client.Chat.Completions.New(ctx, params)
			if err != nil || len(call.Choices[0].Message.ToolCalls) != 1 {
				t.Fatalf("tool call: %v", err)
			}
			params.Messages = append(params.Messages, call.Choices[0].Message.ToParam(),
				openai.ToolMessage(`{"temperature":18,"condition":"cloudy"}`, call.Choices[0].Message.ToolCalls[0].ID))
			final, err := client.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			if final.Choices[0].Message.Content != m.text || final.Choices[0].FinishReason != "stop" {
				t.Errorf("tool result turn answered %+v", final.Choices[0])
			}

			if !m.embeddings {
				return
			}
			emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
				Model: openai.EmbeddingModel(m.model),
				Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"The cat sat on the mat.", "A dog barked twice."}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 4 || emb.Usage.PromptTokens == 0 {
				t.Errorf("embeddings %+v", emb)
			}
		})
	}
	t.Run("a foreign tool-call id reaches Mistral as 9 characters", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{
			Model: "mistral-large",
			Messages: []openai.ChatCompletionMessageParamUnion{
				openai.UserMessage("What is the weather in Paris right now?"),
				{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
					OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "toolu_01A09q90qw90lq917835lq9", Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}},
				}}}},
				openai.ToolMessage("18 C", "toolu_01A09q90qw90lq917835lq9"),
			},
		}
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err) // the fake Mistral refuses ids that are not 9 letters and digits
		}
		if resp.Choices[0].Message.Content != "Red, yellow, and blue." {
			t.Errorf("answer %+v", resp.Choices[0])
		}
	})
}

// The official Anthropic SDK against /v1/messages routed to the
// OpenAI-compatible providers: a plain call, and a streamed tool use the
// SDK accumulates, whose id (Mistral's own 9 characters, say) carries the
// tool's result back.
func TestAnthropicSDKAgainstCompatProviders(t *testing.T) {
	g, key, models := compatGateway(t)
	client := anthropic.NewClient(
		anthropicopt.WithBaseURL(g.URL()),
		anthropicopt.WithAPIKey(key),
		anthropicopt.WithMaxRetries(0),
	)
	ctx := withTimeout(t)
	for _, m := range models {
		t.Run(m.model, func(t *testing.T) {
			msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
				Model:     m.model,
				MaxTokens: 256,
				System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
				Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Name the three primary colors."))},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) != 1 || msg.Content[0].Text != m.text || msg.StopReason != "end_turn" ||
				msg.Usage.InputTokens != m.usage[0] || msg.Usage.OutputTokens != m.usage[1] {
				t.Errorf("answer %+v stop %q usage %+v", msg.Content, msg.StopReason, msg.Usage)
			}
			if m.tools {
				anthropicToolRoundTrip(t, ctx, client, m.model)
			}
		})
	}
}
