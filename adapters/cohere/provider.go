// Package cohere speaks Cohere's Chat API v2 (POST /v2/chat): it sends
// calls with a bearer key, translates the gateway's unified request into
// a v2 chat request, and Cohere's answers, typed event streams
// (message-start, content-delta, tool-call-start/delta/end, message-end)
// and errors back.
package cohere

import "portcullis/adapters"

// DefaultBaseURL is Cohere's API root.
const DefaultBaseURL = "https://api.cohere.com"

// Path is the chat endpoint below the API root, streamed or not.
const Path = "/v2/chat"

// Provider reaches Cohere's Chat API v2.
type Provider struct {
	adapters.Upstream
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider; the key goes in Authorization: Bearer.
type Options = adapters.ProviderOptions

// New returns a provider for Cohere's Chat API v2.
func New(o Options) *Provider {
	return &Provider{o.Upstream(DefaultBaseURL, "Authorization", "Bearer ")}
}
