// Package ollama speaks Ollama's native chat API (POST /api/chat): it
// translates the gateway's unified request into an Ollama chat request,
// and Ollama's answers, NDJSON streams and errors back. A local Ollama
// takes no key; Ollama Cloud and remote hosts take a bearer key.
package ollama

import "portcullis/adapters"

// DefaultBaseURL is where a local Ollama listens.
const DefaultBaseURL = "http://localhost:11434"

// Path is the chat endpoint below the base URL, streamed or not.
const Path = "/api/chat"

// Provider reaches Ollama's native API.
type Provider struct {
	adapters.Upstream
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider; a key, if any, goes in Authorization: Bearer.
type Options = adapters.ProviderOptions

// New returns a provider for Ollama's native API.
func New(o Options) *Provider {
	uo := o.UpstreamOptions(DefaultBaseURL, "Authorization", "Bearer ")
	uo.StreamAccept = "application/x-ndjson"
	return &Provider{adapters.NewUpstream(uo)}
}
