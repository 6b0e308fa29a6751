package adapters

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// This file holds what the native-format providers (Gemini, Cohere,
// Ollama) share: how they are constructed, how their errors are
// classified when the body says little, and the tool-call bookkeeping
// their formats need (argument objects, synthesized ids, names looked up
// by call id).

// ProviderOptions configure a provider of any format.
type ProviderOptions struct {
	// Name is the provider's name from the configuration.
	Name string
	// BaseURL is the API root. Zero value: the provider's public API.
	BaseURL string
	// APIKey is the provider's credential; empty sends none.
	APIKey string
	// Headers are sent with every request.
	Headers map[string]string
	// Transport carries the requests. Zero value: NewTransport().
	Transport http.RoundTripper
	// UserAgent identifies the gateway upstream.
	UserAgent string
}

// Upstream returns the Upstream these options describe for a provider
// whose API lives at defaultBaseURL unless BaseURL says otherwise, and
// which takes its key in header keyHeader, after keyPrefix ("Bearer ").
func (o ProviderOptions) Upstream(defaultBaseURL, keyHeader, keyPrefix string) Upstream {
	return NewUpstream(o.UpstreamOptions(defaultBaseURL, keyHeader, keyPrefix))
}

// UpstreamOptions are the options of the Upstream that Upstream returns,
// for a provider that sets more of them.
func (o ProviderOptions) UpstreamOptions(defaultBaseURL, keyHeader, keyPrefix string) UpstreamOptions {
	h := make(http.Header, len(o.Headers)+3)
	for k, v := range o.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	if o.UserAgent != "" {
		h.Set("User-Agent", o.UserAgent)
	}
	secrets := SecretHeaderValues(o.Headers)
	if o.APIKey != "" {
		h.Set(keyHeader, keyPrefix+o.APIKey)
		secrets = append(secrets, o.APIKey)
	}
	base := o.BaseURL
	if base == "" {
		base = defaultBaseURL
	}
	return UpstreamOptions{Name: o.Name, BaseURL: base, Headers: h, Secrets: secrets, Transport: o.Transport}
}

// StatusKind is the kind of error an HTTP status says by itself, for
// providers whose error bodies carry only a message.
func StatusKind(status int) ErrorKind {
	switch {
	case status == http.StatusUnauthorized:
		return ErrAuth
	case status == http.StatusPaymentRequired:
		return ErrQuota
	case status == http.StatusForbidden:
		return ErrPermission
	case status == http.StatusNotFound:
		return ErrNotFound
	case status == http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case status == http.StatusTooManyRequests:
		return ErrRateLimit
	case status == http.StatusServiceUnavailable:
		return ErrOverloaded
	case status >= 500:
		return ErrServer
	default:
		return ErrInvalidRequest
	}
}

// Retryable reports whether a call that failed this way may succeed
// later or on another upstream.
func (k ErrorKind) Retryable() bool {
	return k == ErrRateLimit || k == ErrOverloaded || k == ErrServer
}

// contextLengthPhrases are how providers without a structured code say
// the prompt is longer than the model's context window.
var contextLengthPhrases = []string{
	"context length", "context window", "context size", "context_length",
	"too many tokens", "prompt is too long", "input is too long",
	"exceeds the maximum number of tokens", "maximum context",
}

// SaysContextLength reports whether an error message says the prompt does
// not fit the model's context window.
func SaysContextLength(message string) bool {
	m := strings.ToLower(message)
	for _, p := range contextLengthPhrases {
		if strings.Contains(m, p) {
			return true
		}
	}
	return false
}

// RetryAfter reads a Retry-After header (seconds or an HTTP date); 0 when
// there is none.
func RetryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if s, err := strconv.ParseFloat(v, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// NewCallID returns a fresh tool-call id in OpenAI's style, for providers
// whose calls come without one.
func NewCallID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "call_" + hex.EncodeToString(b[:])
}

// ArgumentsObject returns a tool call's arguments as a JSON object, for
// the formats that carry them as objects rather than text. Empty
// arguments are {}; anything but an object is refused.
func ArgumentsObject(c ToolCall, param string) (json.RawMessage, error) {
	args := strings.TrimSpace(c.Arguments)
	if args == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(args)) || args[0] != '{' {
		return nil, &RequestError{Param: param, Message: param + ": the arguments of " + c.Name + " are not a JSON object"}
	}
	return json.RawMessage(args), nil
}

// ArgumentsText returns arguments a provider sent as a JSON value as the
// compact JSON text OpenAI carries; none is {}.
func ArgumentsText(args json.RawMessage) string {
	if len(args) == 0 || string(args) == "null" {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, args) != nil {
		return string(args)
	}
	return b.String()
}

// ToolNames maps each tool call id in the conversation to the name of the
// tool called, for formats whose tool results name the tool instead of
// the call.
func (r *Request) ToolNames() map[string]string {
	names := map[string]string{}
	for _, m := range r.Messages {
		for _, c := range m.ToolCalls {
			names[c.ID] = c.Name
		}
	}
	return names
}

// Text joins a message's text parts.
func (m *Message) Text() string {
	var b strings.Builder
	for _, p := range m.Content {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
