package bedrock

import (
	"encoding/json"
	"net/http"
	"strings"

	"portcullis/adapters"
)

// wireUsage is a Converse usage object. inputTokens leaves out the cached
// tokens, OpenAI's prompt_tokens counts them.
type wireUsage struct {
	InputTokens           int `json:"inputTokens"`
	OutputTokens          int `json:"outputTokens"`
	CacheReadInputTokens  int `json:"cacheReadInputTokens"`
	CacheWriteInputTokens int `json:"cacheWriteInputTokens"`
}

func (u *wireUsage) usage() adapters.Usage {
	prompt := u.InputTokens + u.CacheReadInputTokens + u.CacheWriteInputTokens
	return adapters.Usage{
		PromptTokens:     prompt,
		CompletionTokens: u.OutputTokens,
		TotalTokens:      prompt + u.OutputTokens,
		CachedTokens:     u.CacheReadInputTokens,
		CacheWriteTokens: u.CacheWriteInputTokens,
	}
}

// FinishReason maps a stopReason onto OpenAI's finish_reason.
func FinishReason(stopReason string) adapters.FinishReason {
	switch stopReason {
	case "max_tokens", "model_context_window_exceeded":
		return adapters.FinishLength
	case "tool_use":
		return adapters.FinishToolCalls
	case "guardrail_intervened", "content_filtered":
		return adapters.FinishContentFilter
	default: // end_turn, stop_sequence, malformed_*
		return adapters.FinishStop
	}
}

// wireResponseBlock is a content block of an answer.
type wireResponseBlock struct {
	Text             string       `json:"text"`
	ToolUse          *wireToolUse `json:"toolUse"`
	ReasoningContent *struct {
		ReasoningText *struct {
			Text string `json:"text"`
		} `json:"reasoningText"`
	} `json:"reasoningContent"`
}

// DecodeResponse reads a Converse response into the unified response.
// Converse gives no answer id; the gateway makes one.
func DecodeResponse(body []byte) (*adapters.Response, error) {
	var w struct {
		Output struct {
			Message struct {
				Content []wireResponseBlock `json:"content"`
			} `json:"message"`
		} `json:"output"`
		StopReason string    `json:"stopReason"`
		Usage      wireUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	resp := &adapters.Response{ID: answerID(), Finish: FinishReason(w.StopReason), Usage: w.Usage.usage()}
	var text, reasoning strings.Builder
	for _, b := range w.Output.Message.Content {
		switch {
		case b.ToolUse != nil:
			resp.ToolCalls = append(resp.ToolCalls, adapters.ToolCall{ID: b.ToolUse.ToolUseID, Name: b.ToolUse.Name, Arguments: adapters.ArgumentsText(b.ToolUse.Input)})
		case b.ReasoningContent != nil && b.ReasoningContent.ReasoningText != nil:
			reasoning.WriteString(b.ReasoningContent.ReasoningText.Text)
		default:
			text.WriteString(b.Text)
		}
	}
	resp.Text, resp.Reasoning = text.String(), reasoning.String()
	return resp, nil
}

func answerID() string { return "bedrock-" + strings.TrimPrefix(adapters.NewCallID(), "call_") }

// DecodeError reads a Bedrock error response: {"message": "..."}, with
// the exception's name in the x-amzn-ErrorType header (or a __type field).
func DecodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	var w struct {
		Message      string `json:"message"`
		MessageUpper string `json:"Message"`
		Type         string `json:"__type"`
	}
	_ = json.Unmarshal(body, &w)
	typ := w.Type
	if h != nil && h.Get("X-Amzn-Errortype") != "" {
		typ = h.Get("X-Amzn-Errortype")
	}
	typ, _, _ = strings.Cut(typ, ":")
	if i := strings.LastIndexByte(typ, '#'); i >= 0 { // "com.amazon...#ThrottlingException"
		typ = typ[i+1:]
	}
	msg := w.Message
	if msg == "" {
		msg = w.MessageUpper
	}
	return upstreamError(status, typ, msg)
}

func upstreamError(status int, typ, message string) *adapters.UpstreamError {
	e := &adapters.UpstreamError{Status: status, Type: typ, Message: message}
	switch strings.ToLower(typ) {
	case "throttlingexception":
		e.Kind = adapters.ErrRateLimit
	case "modelnotreadyexception", "serviceunavailableexception":
		e.Kind = adapters.ErrOverloaded
	case "accessdeniedexception", "unrecognizedclientexception", "invalidsignatureexception", "expiredtokenexception":
		e.Kind = adapters.ErrAuth
	case "resourcenotfoundexception":
		e.Kind = adapters.ErrNotFound
	case "modeltimeoutexception", "modelerrorexception", "modelstreamerrorexception", "internalserverexception":
		e.Kind = adapters.ErrServer
	case "validationexception":
		e.Kind = adapters.ErrInvalidRequest
	default:
		e.Kind = adapters.StatusKind(status)
		if status == http.StatusForbidden {
			e.Kind = adapters.ErrAuth // Bedrock's way to refuse a key
		}
	}
	if e.Kind == adapters.ErrInvalidRequest && adapters.SaysContextLength(message) {
		e.Kind = adapters.ErrContextLength
	}
	e.Retryable = e.Kind.Retryable()
	return e
}
