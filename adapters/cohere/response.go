package cohere

import (
	"encoding/json"
	"net/http"
	"strings"

	"portcullis/adapters"
)

// wireUsage is a v2 usage object. tokens are what the model processed,
// billed_units what is charged (less the prompt template); the gateway
// counts tokens, as OpenAI does, and falls back to billed_units.
type wireUsage struct {
	BilledUnits *struct {
		InputTokens  float64 `json:"input_tokens"`
		OutputTokens float64 `json:"output_tokens"`
	} `json:"billed_units"`
	Tokens *struct {
		InputTokens  float64 `json:"input_tokens"`
		OutputTokens float64 `json:"output_tokens"`
	} `json:"tokens"`
	CachedTokens float64 `json:"cached_tokens"`
}

func (u *wireUsage) usage() adapters.Usage {
	var in, out float64
	switch {
	case u.Tokens != nil:
		in, out = u.Tokens.InputTokens, u.Tokens.OutputTokens
	case u.BilledUnits != nil:
		in, out = u.BilledUnits.InputTokens, u.BilledUnits.OutputTokens
	}
	return adapters.Usage{
		PromptTokens:     int(in),
		CompletionTokens: int(out),
		TotalTokens:      int(in) + int(out),
		CachedTokens:     int(u.CachedTokens),
	}
}

// FinishReason maps a finish_reason onto OpenAI's finish_reason.
func FinishReason(reason string) adapters.FinishReason {
	switch reason {
	case "MAX_TOKENS":
		return adapters.FinishLength
	case "TOOL_CALL":
		return adapters.FinishToolCalls
	default: // COMPLETE, STOP_SEQUENCE, ERROR, TIMEOUT
		return adapters.FinishStop
	}
}

// wireContentPart is one part of an answer's content.
type wireContentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Thinking string `json:"thinking"`
}

// DecodeResponse reads a v2 chat response into the unified response. The
// tool plan (the model saying what it will call) is visible reasoning, as
// thinking parts are.
func DecodeResponse(body []byte) (*adapters.Response, error) {
	var w struct {
		ID      string `json:"id"`
		Message struct {
			Content   json.RawMessage `json:"content"`
			ToolPlan  string          `json:"tool_plan"`
			ToolCalls []wireToolCall  `json:"tool_calls"`
		} `json:"message"`
		FinishReason string    `json:"finish_reason"`
		Usage        wireUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	resp := &adapters.Response{ID: w.ID, Finish: FinishReason(w.FinishReason), Usage: w.Usage.usage()}
	var text, reasoning strings.Builder
	reasoning.WriteString(w.Message.ToolPlan)
	var parts []wireContentPart
	if len(w.Message.Content) > 0 && w.Message.Content[0] == '"' {
		var s string
		_ = json.Unmarshal(w.Message.Content, &s)
		parts = []wireContentPart{{Type: "text", Text: s}}
	} else {
		_ = json.Unmarshal(w.Message.Content, &parts)
	}
	for _, p := range parts {
		switch p.Type {
		case "text":
			text.WriteString(p.Text)
		case "thinking":
			reasoning.WriteString(p.Thinking)
		}
	}
	resp.Text, resp.Reasoning = text.String(), reasoning.String()
	for _, c := range w.Message.ToolCalls {
		args := c.Function.Arguments
		if args == "" {
			args = "{}"
		}
		id := c.ID
		if id == "" {
			id = adapters.NewCallID()
		}
		resp.ToolCalls = append(resp.ToolCalls, adapters.ToolCall{ID: id, Name: c.Function.Name, Arguments: args})
	}
	if len(resp.ToolCalls) > 0 && resp.Finish == adapters.FinishStop {
		resp.Finish = adapters.FinishToolCalls
	}
	return resp, nil
}

// DecodeError reads a Cohere error response, {"message": "..."}. Cohere
// has its own statuses: 498 for an invalid token, 499 for a request the
// client closed.
func DecodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	var w struct {
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &w)
	e := &adapters.UpstreamError{Status: status, Message: w.Message, RetryAfter: adapters.RetryAfter(h)}
	e.Kind = errorKind(status, w.Message)
	e.Retryable = e.Kind.Retryable()
	return e
}

func errorKind(status int, message string) adapters.ErrorKind {
	switch {
	case status == 498:
		return adapters.ErrAuth
	case status == 499:
		return adapters.ErrServer
	case (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && adapters.SaysContextLength(message):
		return adapters.ErrContextLength
	case status == http.StatusUnprocessableEntity:
		return adapters.ErrInvalidRequest
	case status == http.StatusServiceUnavailable:
		return adapters.ErrServer
	default:
		return adapters.StatusKind(status)
	}
}
