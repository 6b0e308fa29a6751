package openai

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"portcullis/adapters"
)

// DecodeError reads the error response of an OpenAI-compatible provider,
// in any of the shapes they use: OpenAI's {"error":{...}} (whose code is a
// number on Perplexity and a string of digits on Azure's gateway),
// Mistral's top-level {"object":"error","message",...}, its older
// {"message":...} and its 422 {"detail":[...]}, and Ollama's
// {"error":"..."}. Message is empty when the body holds none of them (an
// HTML page from an edge proxy, say).
func DecodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	e := &adapters.UpstreamError{Status: status}
	e.Type, e.Code, e.Message = readError(body)
	e.Kind = errorKind(status, e.Type, e.Code, e.Message)
	e.Retryable = e.Kind == adapters.ErrRateLimit || e.Kind == adapters.ErrOverloaded || e.Kind == adapters.ErrServer
	e.RetryAfter = retryAfter(h)
	return e
}

// retryAfter reads Retry-After in seconds, or Azure's retry-after-ms.
func retryAfter(h http.Header) time.Duration {
	if secs, err := strconv.ParseFloat(h.Get("Retry-After"), 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	return 0
}

// readError finds the type, code and message of an error body.
func readError(body []byte) (errType, code, message string) {
	var w struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
		Detail  []struct {
			Loc []any  `json:"loc"`
			Msg string `json:"msg"`
		} `json:"detail"`
	}
	if json.Unmarshal(body, &w) != nil {
		return "", "", ""
	}
	switch {
	case len(w.Error) > 0 && w.Error[0] == '{':
		var e ErrorBody
		if json.Unmarshal(w.Error, &e) == nil {
			return e.Type, codeText(e.Code), e.Message
		}
	case len(w.Error) > 0 && w.Error[0] == '"':
		_ = json.Unmarshal(w.Error, &message)
		return "", "", message
	case w.Message != "":
		return w.Type, codeText(w.Code), w.Message
	case len(w.Detail) > 0:
		parts := make([]string, 0, len(w.Detail))
		for _, d := range w.Detail {
			loc := make([]string, 0, len(d.Loc))
			for _, l := range d.Loc {
				loc = append(loc, strings.Trim(strings.TrimSpace(jsonText(l)), `"`))
			}
			parts = append(parts, strings.Join(loc, ".")+": "+d.Msg)
		}
		return "invalid_request_error", "", strings.Join(parts, "; ")
	}
	return "", "", ""
}

// codeText is an error code as text, whether the provider sent a string
// or a number.
func codeText(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// contextLengthPhrases are how providers without OpenAI's
// context_length_exceeded code say the prompt is too long (Groq's "Please
// reduce the length of the messages", Mistral's "... maximum context
// length", Ollama's "input length exceeds the context length").
var contextLengthPhrases = []string{"maximum context length", "context length", "context window", "reduce the length of the messages", "prompt is too long"}

func errorKind(status int, typ, code, message string) adapters.ErrorKind {
	switch {
	case code == "insufficient_quota" || typ == "insufficient_quota":
		return adapters.ErrQuota
	case status == http.StatusTooManyRequests:
		return adapters.ErrRateLimit
	case status == http.StatusUnauthorized:
		return adapters.ErrAuth
	case status == http.StatusForbidden:
		return adapters.ErrPermission
	case status == http.StatusNotFound:
		return adapters.ErrNotFound
	case status == http.StatusRequestEntityTooLarge:
		return adapters.ErrTooLarge
	case code == "context_length_exceeded" || (status < 500 && isContextLength(message)):
		return adapters.ErrContextLength
	case status == http.StatusServiceUnavailable || status == 529 || status == 498:
		// 498 is Groq's flex tier at capacity.
		return adapters.ErrOverloaded
	case status >= 500 || status == 0:
		return adapters.ErrServer
	default:
		return adapters.ErrInvalidRequest
	}
}

func isContextLength(message string) bool {
	m := strings.ToLower(message)
	for _, p := range contextLengthPhrases {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}
