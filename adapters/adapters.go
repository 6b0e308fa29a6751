// Package adapters owns everything about the providers' wire formats: the
// Provider interface through which the gateway reaches an upstream, the
// types shared across formats (the unified request, response, stream events,
// usage and upstream errors of unified.go), and the SSE framing.
// One subfolder per provider family holds its encoder and decoder.
package adapters

import (
	"context"
	"net/http"
)

// Call is one request to forward upstream, already encoded in the
// provider's format.
type Call struct {
	// Path is appended to the provider's base URL, for example "/chat/completions".
	Path string
	// Body is the request body to send.
	Body []byte
	// Stream says the response is expected to be an event stream.
	Stream bool
	// Model is the upstream model the body asks for, for providers that
	// name it in the URL instead (an Azure deployment).
	Model string
}

// Provider sends calls to one upstream service.
type Provider interface {
	// Name is the provider's name from the configuration.
	Name() string
	// Send forwards the call and returns the upstream's response, whatever
	// its status; the caller closes the body. The error is for calls that
	// got no response at all (connection refused, cancelled, timed out).
	Send(ctx context.Context, call *Call) (*http.Response, error)
}

// Usage is the token count of one call, as the provider reported it.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	TotalTokens      int
	// CachedTokens are prompt tokens served from the provider's cache.
	CachedTokens int
	// CacheWriteTokens are prompt tokens written to the provider's cache
	// (Anthropic's cache_creation_input_tokens); they are already counted
	// in PromptTokens.
	CacheWriteTokens int
	// ReasoningTokens are completion tokens spent on hidden reasoning;
	// they are already counted in CompletionTokens.
	ReasoningTokens int
}
