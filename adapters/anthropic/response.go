package anthropic

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"portcullis/adapters"
)

// wireUsage is a Messages usage object. In a stream, message_delta's
// output_tokens is cumulative and its input counts may be absent.
type wireUsage struct {
	InputTokens              *int `json:"input_tokens,omitempty"`
	CacheCreationInputTokens *int `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     *int `json:"cache_read_input_tokens,omitempty"`
	OutputTokens             int  `json:"output_tokens"`
}

// usage maps Anthropic's counts onto OpenAI's: Anthropic's input_tokens
// leave out the cached tokens, OpenAI's prompt_tokens include them.
func (u *wireUsage) usage() adapters.Usage {
	in, write, read := deref(u.InputTokens), deref(u.CacheCreationInputTokens), deref(u.CacheReadInputTokens)
	return adapters.Usage{
		PromptTokens:     in + write + read,
		CompletionTokens: u.OutputTokens,
		TotalTokens:      in + write + read + u.OutputTokens,
		CachedTokens:     read,
		CacheWriteTokens: write,
	}
}

func wireUsageOf(u adapters.Usage) wireUsage {
	in := u.PromptTokens - u.CachedTokens - u.CacheWriteTokens
	return wireUsage{InputTokens: &in, CacheCreationInputTokens: &u.CacheWriteTokens, CacheReadInputTokens: &u.CachedTokens, OutputTokens: u.CompletionTokens}
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// FinishReason maps a stop_reason onto OpenAI's finish_reason.
func FinishReason(stopReason string) adapters.FinishReason {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return adapters.FinishLength
	case "tool_use":
		return adapters.FinishToolCalls
	case "refusal":
		return adapters.FinishContentFilter
	default: // end_turn, stop_sequence, pause_turn
		return adapters.FinishStop
	}
}

// StopReason maps a finish reason back onto a stop_reason.
func StopReason(f adapters.FinishReason) string {
	switch f {
	case adapters.FinishLength:
		return "max_tokens"
	case adapters.FinishToolCalls:
		return "tool_use"
	case adapters.FinishContentFilter:
		return "refusal"
	default:
		return "end_turn"
	}
}

// DecodeResponse reads a Messages response into the unified response.
// Text blocks are joined; tool_use inputs become JSON argument text.
func DecodeResponse(body []byte) (*adapters.Response, error) {
	var w struct {
		ID         string      `json:"id"`
		Model      string      `json:"model"`
		Content    []wireBlock `json:"content"`
		StopReason string      `json:"stop_reason"`
		Usage      wireUsage   `json:"usage"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	resp := &adapters.Response{ID: w.ID, Model: w.Model, Finish: FinishReason(w.StopReason), Usage: w.Usage.usage()}
	var text, reasoning strings.Builder
	for _, b := range w.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "thinking":
			reasoning.WriteString(b.Thinking)
		case "tool_use":
			args := string(b.Input)
			if args == "" {
				args = "{}"
			}
			resp.ToolCalls = append(resp.ToolCalls, adapters.ToolCall{ID: b.ID, Name: b.Name, Arguments: args})
		}
	}
	resp.Text, resp.Reasoning = text.String(), reasoning.String()
	return resp, nil
}

// EncodeResponse writes the unified response as a Messages response.
func EncodeResponse(resp *adapters.Response, model string) []byte {
	content := make([]any, 0, 1+len(resp.ToolCalls))
	if resp.Text != "" || len(resp.ToolCalls) == 0 {
		content = append(content, textBlock{Type: "text", Text: resp.Text})
	}
	for _, c := range resp.ToolCalls {
		content = append(content, toolUseBlock{Type: "tool_use", ID: toolUseID(c.ID), Name: c.Name, Input: argumentsObject(c.Arguments)})
	}
	stop := StopReason(resp.Finish)
	b, _ := json.Marshal(struct {
		ID           string    `json:"id"`
		Type         string    `json:"type"`
		Role         string    `json:"role"`
		Model        string    `json:"model"`
		Content      []any     `json:"content"`
		StopReason   string    `json:"stop_reason"`
		StopSequence *string   `json:"stop_sequence"`
		Usage        wireUsage `json:"usage"`
	}{messageID(resp.ID), "message", "assistant", model, content, stop, nil, wireUsageOf(resp.Usage)})
	return b
}

// argumentsObject returns tool arguments as a JSON object, whatever the
// upstream sent: Anthropic clients expect input to be an object.
func argumentsObject(args string) json.RawMessage {
	if json.Valid([]byte(args)) && strings.HasPrefix(strings.TrimSpace(args), "{") {
		return json.RawMessage(args)
	}
	return json.RawMessage("{}")
}

// messageID and toolUseID keep an upstream's ids recognisable while giving
// Anthropic clients the prefixes they expect.
func messageID(id string) string {
	if strings.HasPrefix(id, "msg_") {
		return id
	}
	return "msg_" + id
}

func toolUseID(id string) string {
	if strings.HasPrefix(id, "toolu_") || id == "" {
		return id
	}
	return "toolu_" + id
}

// DecodeError reads an Anthropic error response. Message is empty when
// the body holds no error object.
func DecodeError(status int, h header, body []byte) *adapters.UpstreamError {
	var w struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &w)
	e := &adapters.UpstreamError{Status: status, Type: w.Error.Type, Message: w.Error.Message}
	e.Kind = errorKind(status, w.Error.Type, e.Message)
	e.Retryable = e.Kind == adapters.ErrRateLimit || e.Kind == adapters.ErrOverloaded || e.Kind == adapters.ErrServer
	if h != nil {
		if s := h.Get("x-should-retry"); s == "true" || s == "false" {
			e.Retryable = s == "true"
		}
		e.RetryAfter = retryAfter(h)
	}
	return e
}

// header is the part of http.Header DecodeError reads.
type header interface{ Get(string) string }

func errorKind(status int, typ, message string) adapters.ErrorKind {
	switch {
	case typ == "overloaded_error" || status == 529:
		return adapters.ErrOverloaded
	case typ == "rate_limit_error" || status == 429:
		return adapters.ErrRateLimit
	case typ == "authentication_error" || status == 401:
		return adapters.ErrAuth
	case typ == "permission_error" || status == 403:
		return adapters.ErrPermission
	case typ == "billing_error" || status == 402:
		return adapters.ErrQuota
	case typ == "not_found_error" || status == 404:
		return adapters.ErrNotFound
	case typ == "request_too_large" || status == 413:
		return adapters.ErrTooLarge
	case strings.Contains(message, "prompt is too long") || strings.Contains(message, "context window"):
		return adapters.ErrContextLength
	case status >= 500 || typ == "api_error" || typ == "timeout_error":
		return adapters.ErrServer
	default:
		return adapters.ErrInvalidRequest
	}
}

// retryAfter reads retry-after-ms or retry-after (seconds or an HTTP date).
func retryAfter(h header) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := h.Get("retry-after")
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := time.Parse(time.RFC1123, v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// ErrorType is the Anthropic error type for a gateway status, for errors
// written to /v1/messages clients.
func ErrorType(status int) string {
	switch status {
	case 400, 422:
		return "invalid_request_error"
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 413:
		return "request_too_large"
	case 429:
		return "rate_limit_error"
	case 503, 529:
		return "overloaded_error"
	case 504:
		return "timeout_error"
	default:
		return "api_error"
	}
}

// ErrorBody is an error in Anthropic's shape.
func ErrorBody(errType, message, requestID string) []byte {
	b, _ := json.Marshal(struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id,omitempty"`
	}{Type: "error", Error: struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}{errType, message}, RequestID: requestID})
	return b
}
