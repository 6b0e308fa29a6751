// Package gemini speaks Google's Gemini Developer API (generateContent and
// streamGenerateContent?alt=sse): it sends calls with the x-goog-api-key
// header, translates the gateway's unified request into a
// GenerateContentRequest, and Gemini's answers, streams and errors back.
//
// Gemini's thinking models put a thoughtSignature on the function call
// parts they answer with, and refuse the next turn unless it comes back
// unchanged. OpenAI and Anthropic clients have no place for it, so the
// gateway carries it inside the tool call's id (see callID), which every
// client echoes in the next turn.
package gemini

import (
	"net/url"
	"strings"

	"portcullis/adapters"
)

// DefaultBaseURL is the Gemini Developer API root.
const DefaultBaseURL = "https://generativelanguage.googleapis.com/v1beta"

// Provider reaches the Gemini Developer API.
type Provider struct {
	adapters.Upstream
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider; the key goes in x-goog-api-key.
type Options = adapters.ProviderOptions

// New returns a provider for the Gemini Developer API.
func New(o Options) *Provider {
	return &Provider{o.Upstream(DefaultBaseURL, "X-Goog-Api-Key", "")}
}

// Path is the endpoint below the API root for a call to model: Gemini
// names the model in the URL, and streams from another method, as SSE
// only when asked with alt=sse.
func Path(model string, stream bool) string {
	model = strings.TrimPrefix(model, "models/") // the path has it already
	if stream {
		return "/models/" + url.PathEscape(model) + ":streamGenerateContent?alt=sse"
	}
	return "/models/" + url.PathEscape(model) + ":generateContent"
}
