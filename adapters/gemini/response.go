package gemini

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"portcullis/adapters"
)

// wireResponse is a GenerateContentResponse, whole or one stream chunk.
type wireResponse struct {
	Candidates []struct {
		Content      wireContent `json:"content"`
		FinishReason string      `json:"finishReason"`
	} `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback"`
	UsageMetadata *wireUsage `json:"usageMetadata"`
	ModelVersion  string     `json:"modelVersion"`
	ResponseID    string     `json:"responseId"`
	Error         *wireError `json:"error"`
}

// wireUsage is usageMetadata. candidatesTokenCount leaves out the
// thinking tokens, which OpenAI's completion_tokens count.
type wireUsage struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount"`
	CachedContentTokenCount int `json:"cachedContentTokenCount"`
	ThoughtsTokenCount      int `json:"thoughtsTokenCount"`
	ToolUsePromptTokenCount int `json:"toolUsePromptTokenCount"`
}

func (u *wireUsage) usage() adapters.Usage {
	prompt := u.PromptTokenCount + u.ToolUsePromptTokenCount
	completion := u.CandidatesTokenCount + u.ThoughtsTokenCount
	return adapters.Usage{
		PromptTokens:     prompt,
		CompletionTokens: completion,
		TotalTokens:      prompt + completion,
		CachedTokens:     u.CachedContentTokenCount,
		ReasoningTokens:  u.ThoughtsTokenCount,
	}
}

// FinishReason maps a finishReason onto OpenAI's finish_reason. Gemini
// says STOP when the model called functions, so calledTools decides then.
func FinishReason(reason string, calledTools bool) adapters.FinishReason {
	switch reason {
	case "MAX_TOKENS":
		return adapters.FinishLength
	case "SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "LANGUAGE",
		"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION":
		return adapters.FinishContentFilter
	}
	if calledTools {
		return adapters.FinishToolCalls
	}
	return adapters.FinishStop // STOP, OTHER, MALFORMED_FUNCTION_CALL, ...
}

// parts is what one response or chunk says, in the unified terms.
type parts struct {
	text, reasoning string
	calls           []adapters.ToolCall
}

func readParts(content wireContent) parts {
	var p parts
	var text, reasoning strings.Builder
	for _, part := range content.Parts {
		switch {
		case part.FunctionCall != nil:
			p.calls = append(p.calls, adapters.ToolCall{
				ID:        callID(part.FunctionCall.ID, part.ThoughtSignature),
				Name:      part.FunctionCall.Name,
				Arguments: adapters.ArgumentsText(part.FunctionCall.Args),
			})
		case part.Thought:
			reasoning.WriteString(part.Text)
		default:
			text.WriteString(part.Text)
		}
	}
	p.text, p.reasoning = text.String(), reasoning.String()
	return p
}

// DecodeResponse reads a GenerateContentResponse into the unified
// response; only the first candidate counts. A prompt Gemini blocked
// outright is an empty answer finished by content_filter.
func DecodeResponse(body []byte) (*adapters.Response, error) {
	var w wireResponse
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	resp := &adapters.Response{ID: w.ResponseID, Model: w.ModelVersion, Finish: adapters.FinishStop}
	if w.UsageMetadata != nil {
		resp.Usage = w.UsageMetadata.usage()
	}
	if len(w.Candidates) == 0 {
		if w.PromptFeedback != nil && w.PromptFeedback.BlockReason != "" {
			resp.Finish = adapters.FinishContentFilter
		}
		return resp, nil
	}
	c := w.Candidates[0]
	p := readParts(c.Content)
	resp.Text, resp.Reasoning, resp.ToolCalls = p.text, p.reasoning, p.calls
	resp.Finish = FinishReason(c.FinishReason, len(p.calls) > 0)
	return resp, nil
}

// wireError is Google's error object.
type wireError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Status  string `json:"status"`
	Details []struct {
		Type       string `json:"@type"`
		Reason     string `json:"reason"`
		RetryDelay string `json:"retryDelay"`
	} `json:"details"`
}

// DecodeError reads a Gemini error response: {"error":{code, message,
// status, details}}, or Vertex's [{"error":...}]. Gemini answers a bad
// key with 400 API_KEY_INVALID, which is an authentication error here,
// and says how long to wait in a RetryInfo detail, not in Retry-After.
func DecodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	var w struct {
		Error wireError `json:"error"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		var list []struct {
			Error wireError `json:"error"`
		}
		if json.Unmarshal(body, &list) == nil && len(list) > 0 {
			w.Error = list[0].Error
		}
	}
	e := upstreamError(status, &w.Error)
	if d := adapters.RetryAfter(h); d > 0 {
		e.RetryAfter = d
	}
	return e
}

func upstreamError(status int, w *wireError) *adapters.UpstreamError {
	e := &adapters.UpstreamError{Status: status, Type: w.Status, Message: w.Message}
	e.Kind = adapters.StatusKind(status)
	for _, d := range w.Details {
		if d.Reason != "" {
			e.Code = d.Reason
		}
		if strings.HasSuffix(d.Type, "google.rpc.RetryInfo") {
			if delay, err := time.ParseDuration(d.RetryDelay); err == nil && delay > 0 {
				e.RetryAfter = delay
			}
		}
	}
	switch {
	case e.Code == "API_KEY_INVALID" || strings.Contains(w.Message, "API key not valid"):
		e.Kind = adapters.ErrAuth
	case w.Status == "UNAUTHENTICATED":
		e.Kind = adapters.ErrAuth
	case w.Status == "PERMISSION_DENIED":
		e.Kind = adapters.ErrPermission
	case status == http.StatusTooManyRequests || w.Status == "RESOURCE_EXHAUSTED" && status != http.StatusPaymentRequired:
		e.Kind = adapters.ErrRateLimit
	case w.Status == "UNAVAILABLE":
		e.Kind = adapters.ErrOverloaded
	case status == http.StatusBadRequest && saysContextLength(w.Message):
		e.Kind = adapters.ErrContextLength
	}
	e.Retryable = e.Kind.Retryable()
	return e
}

// saysContextLength matches Gemini's "The input token count (N) exceeds
// the maximum number of tokens allowed (M)."
func saysContextLength(message string) bool {
	return strings.Contains(message, "input token count") || adapters.SaysContextLength(message)
}
