package openai

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"portcullis/adapters"
)

func TestReadSummary(t *testing.T) {
	tests := []struct {
		name      string
		body      []byte
		wantModel string
		wantUsage *adapters.Usage
		wantError *ErrorBody
		wantCode  string
	}{
		{
			name:      "chat response",
			body:      fixture(t, "chat_response.json"),
			wantModel: "gpt-4o-mini-2024-07-18",
			wantUsage: &adapters.Usage{PromptTokens: 27, CompletionTokens: 7, TotalTokens: 34},
		},
		{
			name:      "rate limit",
			body:      fixture(t, "error_429.json"),
			wantError: &ErrorBody{Type: "tokens", Param: []byte("null"), Code: []byte(`"rate_limit_exceeded"`)},
			wantCode:  "rate_limit_exceeded",
		},
		{
			name:      "insufficient quota",
			body:      fixture(t, "error_429_insufficient_quota.json"),
			wantError: &ErrorBody{Type: "insufficient_quota", Param: []byte("null"), Code: []byte(`"insufficient_quota"`)},
			wantCode:  "insufficient_quota",
		},
		{
			name:      "bad key",
			body:      fixture(t, "error_401.json"),
			wantError: &ErrorBody{Type: "invalid_request_error", Param: []byte("null"), Code: []byte(`"invalid_api_key"`)},
			wantCode:  "invalid_api_key",
		},
		{
			name:      "context length",
			body:      fixture(t, "error_400_context_length.json"),
			wantError: &ErrorBody{Type: "invalid_request_error", Param: []byte(`"messages"`), Code: []byte(`"context_length_exceeded"`)},
			wantCode:  "context_length_exceeded",
		},
		{
			name:      "numeric error code",
			body:      []byte(`{"error":{"message":"m","type":"server_error","code":500}}`),
			wantError: &ErrorBody{Message: "m", Type: "server_error", Code: []byte("500")},
			wantCode:  "",
		},
		{
			name:      "usage details",
			body:      []byte(`{"model":"o3","usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":15}}}`),
			wantModel: "o3",
			wantUsage: &adapters.Usage{PromptTokens: 10, CompletionTokens: 20, TotalTokens: 30, CachedTokens: 4, ReasoningTokens: 15},
		},
		{
			name:      "usage null",
			body:      []byte(`{"model":"m","usage":null}`),
			wantModel: "m",
		},
		{name: "not JSON", body: []byte(`<html>502 Bad Gateway</html>`)},
		{name: "wrong types", body: []byte(`{"model":1,"usage":"lots"}`)},
		{name: "empty", body: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ReadSummary(tt.body)
			if s.Model != tt.wantModel {
				t.Errorf("model = %q, want %q", s.Model, tt.wantModel)
			}
			if !reflect.DeepEqual(s.Usage, tt.wantUsage) {
				t.Errorf("usage = %+v, want %+v", s.Usage, tt.wantUsage)
			}
			if (s.Error == nil) != (tt.wantError == nil) {
				t.Fatalf("error = %+v, want %+v", s.Error, tt.wantError)
			}
			if s.Error == nil {
				return
			}
			if s.Error.Type != tt.wantError.Type || !bytes.Equal(s.Error.Param, tt.wantError.Param) || !bytes.Equal(s.Error.Code, tt.wantError.Code) {
				t.Errorf("error = type %q param %s code %s; want type %q param %s code %s",
					s.Error.Type, s.Error.Param, s.Error.Code, tt.wantError.Type, tt.wantError.Param, tt.wantError.Code)
			}
			if s.Error.Message == "" {
				t.Error("error message is empty")
			}
			if got := s.Error.CodeString(); got != tt.wantCode {
				t.Errorf("CodeString = %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func TestClassifyChunkFixtureStream(t *testing.T) {
	for _, tt := range []struct {
		file      string
		wantUsage adapters.Usage
	}{
		{"chat_stream.sse", adapters.Usage{PromptTokens: 27, CompletionTokens: 7, TotalTokens: 34}},
		{"tool_call_stream.sse", adapters.Usage{PromptTokens: 71, CompletionTokens: 19, TotalTokens: 90}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			er := adapters.NewEventReader(bytes.NewReader(fixture(t, tt.file)))
			var chunks []Chunk
			var usage *adapters.Usage
			for {
				ev, err := er.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				c := ClassifyChunk(ev.Data)
				chunks = append(chunks, c)
				if c.HasUsage {
					usage = ReadSummary(ev.Data).Usage
				}
			}
			n := len(chunks)
			if n < 3 {
				t.Fatalf("only %d chunks", n)
			}
			for i, c := range chunks[:n-3] {
				if c != (Chunk{}) {
					t.Errorf("chunk %d (content, \"usage\":null) classified %+v", i, c)
				}
			}
			if want := (Chunk{Finished: true}); chunks[n-3] != want {
				t.Errorf("finish chunk classified %+v, want %+v", chunks[n-3], want)
			}
			if want := (Chunk{HasUsage: true, UsageOnly: true}); chunks[n-2] != want {
				t.Errorf("usage chunk classified %+v, want %+v", chunks[n-2], want)
			}
			if want := (Chunk{Done: true}); chunks[n-1] != want {
				t.Errorf("[DONE] classified %+v, want %+v", chunks[n-1], want)
			}
			if usage == nil || *usage != tt.wantUsage {
				t.Errorf("usage = %+v, want %+v", usage, tt.wantUsage)
			}
		})
	}
}

func TestClassifyChunk(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Chunk
	}{
		{"done", `[DONE]`, Chunk{Done: true}},
		{"done with space is not done", ` [DONE]`, Chunk{}},
		{"content", `{"choices":[{"delta":{"content":"hi"}}],"usage":null}`, Chunk{}},
		{"usage with content", `{"choices":[{"delta":{}}],"usage":{"prompt_tokens":1}}`, Chunk{HasUsage: true}},
		{"usage only", `{"choices":[],"usage":{"prompt_tokens":1}}`, Chunk{HasUsage: true, UsageOnly: true}},
		{"usage only, spaced", `{"choices": [], "usage": {"prompt_tokens":1}}`, Chunk{HasUsage: true, UsageOnly: true}},
		{"empty choices without usage", `{"choices":[],"usage":null}`, Chunk{FilterOnly: true}},
		{"Azure's prompt filter chunk", `{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]}`, Chunk{FilterOnly: true}},
		{"Groq's usage", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"prompt_tokens":52}}}`, Chunk{HasUsage: true, Finished: true}},
		{"Perplexity's spaced finish", `{"choices": [{"index": 0, "finish_reason": "stop"}], "usage": {"prompt_tokens": 21}}`, Chunk{HasUsage: true, Finished: true}},
		{"no finish yet", `{"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}`, Chunk{}},
		{"mid-stream error", `{"error":{"message":"The server had an error","type":"server_error"}}`, Chunk{IsError: true}},
		{"mid-stream error with leading space", ` {"error":{"message":"x"}}`, Chunk{IsError: true}},
		{"error text in content", `{"choices":[{"delta":{"content":"{\"error\""}}]}`, Chunk{}},
		{"empty", ``, Chunk{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyChunk([]byte(tt.data)); got != tt.want {
				t.Errorf("ClassifyChunk(%s) = %+v, want %+v", tt.data, got, tt.want)
			}
		})
	}
}
