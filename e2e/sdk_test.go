package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const demoKey = "pcx_demo_not_a_secret"

func sdkClient(g *gateway, key string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(g.URL()+"/v1"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
	)
}

// The official OpenAI SDK works against the example configuration as is:
// a plain call, a streamed call, and errors surfaced as typed API errors.
func TestOpenAISDKAgainstExampleConfig(t *testing.T) {
	cfg, auditFile := exampleConfig(t)
	g := startGateway(t, cfg, "PORTCULLIS_AUDIT_FILE="+auditFile, "OPENAI_API_KEY=")
	client := sdkClient(g, demoKey)
	ctx := withTimeout(t)
	params := openai.ChatCompletionNewParams{
		Model:    "demo",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Name the three primary colors.")},
	}

	t.Run("plain call", func(t *testing.T) {
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Choices) != 1 || !strings.Contains(resp.Choices[0].Message.Content, "Name the three primary colors.") {
			t.Errorf("answer = %+v", resp.Choices)
		}
		if resp.Choices[0].FinishReason != "stop" || resp.Usage.PromptTokens == 0 || resp.Usage.CompletionTokens == 0 ||
			resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
			t.Errorf("finish %q usage %+v", resp.Choices[0].FinishReason, resp.Usage)
		}
	})

	t.Run("streaming call", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, params)
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if chunks < 10 || !strings.Contains(acc.Choices[0].Message.Content, "Name the three primary colors.") {
			t.Errorf("%d chunks, text %q", chunks, acc.Choices[0].Message.Content)
		}
	})

	t.Run("streaming with usage asked for", func(t *testing.T) {
		p := params
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		var acc openai.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Usage.CompletionTokens == 0 {
			t.Errorf("no usage in a stream that asked for it: %+v", acc.Usage)
		}
	})

	for _, tc := range []struct {
		name, model, key string
		status           int
		code             string
	}{
		{"upstream rate limit", "demo-error-429", demoKey, 429, "rate_limit_exceeded"},
		{"unknown API key", "demo", "pcx_wrong", 401, "invalid_api_key"},
		{"unknown model", "no-such-model", demoKey, 404, "model_not_found"},
	} {
		t.Run("typed error: "+tc.name, func(t *testing.T) {
			p := params
			p.Model = tc.model
			c := sdkClient(g, tc.key)
			_, err := c.Chat.Completions.New(ctx, p)
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T) is not an *openai.Error", err, err)
			}
			if apiErr.StatusCode != tc.status || apiErr.Code != tc.code || apiErr.Message == "" {
				t.Errorf("status %d code %q message %q", apiErr.StatusCode, apiErr.Code, apiErr.Message)
			}
		})
	}

	t.Run("mid-stream error reaches the SDK", func(t *testing.T) {
		p := params
		p.Model = "demo-error-midstream"
		stream := client.Chat.Completions.NewStreaming(ctx, p)
		for stream.Next() {
		}
		if stream.Err() == nil {
			t.Error("the SDK saw no error in a stream that failed mid-way")
		}
	})

	t.Run("models list", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if !strings.Contains(strings.Join(ids, ","), "demo") || strings.Contains(strings.Join(ids, ","), "gpt-4.1") {
			t.Errorf("models = %v (gpt-4.1's provider has no key and must not be listed)", ids)
		}
	})

	// Every call above left exactly one audit record.
	if err := g.stop(t); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
	lines := auditLines(t, auditFile)
	if len(lines) != 8 {
		t.Errorf("%d audit records, want 8", len(lines))
	}
	for _, l := range lines {
		if strings.Contains(l.raw, demoKey) {
			t.Error("an audit record holds the API key")
		}
	}
}

type auditLine struct {
	raw    string
	fields map[string]any
}

func auditLines(t *testing.T, path string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []auditLine
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line is not JSON: %s", l)
		}
		out = append(out, auditLine{raw: l, fields: m})
	}
	return out
}

// SIGTERM lets a stream in flight finish before the process exits 0.
func TestSIGTERMDrainsStreamsThenExits(t *testing.T) {
	cfg, auditFile := exampleConfig(t)
	g := startGateway(t, cfg, "PORTCULLIS_AUDIT_FILE="+auditFile)
	client := sdkClient(g, demoKey)
	stream := client.Chat.Completions.NewStreaming(withTimeout(t), openai.ChatCompletionNewParams{
		Model:    "demo",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("a stream cut by SIGTERM")},
	})
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for stream.Next() {
		if len(stream.Current().Choices) > 0 {
			text.WriteString(stream.Current().Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream broke during shutdown: %v", err)
	}
	if !strings.HasSuffix(text.String(), "reach a real model.") {
		t.Errorf("stream did not complete: %q", text.String())
	}
	if err := <-g.done; err != nil {
		t.Errorf("exit: %v", err)
	}
	g.done <- nil
	if lines := auditLines(t, auditFile); len(lines) != 1 || lines[0].fields["status"] != float64(http.StatusOK) {
		t.Errorf("audit after drain: %v", lines)
	}
}

func asAPIError(err error, target **openai.Error) bool { return errors.As(err, target) }
