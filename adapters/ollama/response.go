package ollama

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"portcullis/adapters"
)

// wireResponse is an Ollama chat answer, whole or one NDJSON line of a
// stream; the last line (done:true) has the counts.
type wireResponse struct {
	Model      string      `json:"model"`
	CreatedAt  string      `json:"created_at"`
	Message    wireMessage `json:"message"`
	Done       bool        `json:"done"`
	DoneReason string      `json:"done_reason"`
	// PromptEvalCount is absent when the whole prompt came from the cache.
	PromptEvalCount int    `json:"prompt_eval_count"`
	EvalCount       int    `json:"eval_count"`
	Error           string `json:"error"`
}

func (w *wireResponse) usage() adapters.Usage {
	return adapters.Usage{PromptTokens: w.PromptEvalCount, CompletionTokens: w.EvalCount, TotalTokens: w.PromptEvalCount + w.EvalCount}
}

func (w *wireResponse) created() int64 {
	t, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
	if err != nil {
		return 0
	}
	return t.Unix()
}

// FinishReason maps a done_reason onto OpenAI's finish_reason. Ollama
// says stop when the model called tools, so calledTools decides then.
func FinishReason(doneReason string, calledTools bool) adapters.FinishReason {
	switch {
	case doneReason == "length":
		return adapters.FinishLength
	case calledTools:
		return adapters.FinishToolCalls
	default:
		return adapters.FinishStop
	}
}

// toolCalls reads an answer's tool calls: their arguments are objects,
// and older Ollamas send no ids.
func toolCalls(calls []wireToolCall) []adapters.ToolCall {
	out := make([]adapters.ToolCall, 0, len(calls))
	for _, c := range calls {
		id := c.ID
		if id == "" {
			id = adapters.NewCallID()
		}
		out = append(out, adapters.ToolCall{ID: id, Name: c.Function.Name, Arguments: adapters.ArgumentsText(c.Function.Arguments)})
	}
	return out
}

// DecodeResponse reads an Ollama chat answer into the unified response.
// Ollama gives no answer id; the gateway makes one.
func DecodeResponse(body []byte) (*adapters.Response, error) {
	var w wireResponse
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	calls := toolCalls(w.Message.ToolCalls)
	return &adapters.Response{
		ID:        answerID(),
		Model:     w.Model,
		Created:   w.created(),
		Text:      w.Message.Content,
		Reasoning: w.Message.Thinking,
		ToolCalls: calls,
		Finish:    FinishReason(w.DoneReason, len(calls) > 0),
		Usage:     w.usage(),
	}, nil
}

// answerID names an answer Ollama gave no id.
func answerID() string { return "ollama-" + strings.TrimPrefix(adapters.NewCallID(), "call_") }

// DecodeError reads an Ollama error response, {"error": "..."}.
func DecodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	var w struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(body, &w)
	e := &adapters.UpstreamError{Status: status, Message: w.Error, RetryAfter: adapters.RetryAfter(h)}
	e.Kind = adapters.StatusKind(status)
	if e.Kind == adapters.ErrInvalidRequest && adapters.SaysContextLength(w.Error) {
		e.Kind = adapters.ErrContextLength
	}
	e.Retryable = e.Kind.Retryable()
	return e
}
