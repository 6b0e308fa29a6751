// Package anthropic speaks Anthropic's Messages API: it sends calls to
// Anthropic (x-api-key and anthropic-version headers), translates the
// gateway's unified request into a Messages request and Anthropic's
// answers, streams and errors back, and reads and writes the same format
// for clients that call the gateway's own POST /v1/messages.
package anthropic

import (
	"net/http"

	"portcullis/adapters"
)

// DefaultBaseURL is Anthropic's API root.
const DefaultBaseURL = "https://api.anthropic.com"

// Version is the anthropic-version header the gateway speaks.
const Version = "2023-06-01"

// Provider reaches Anthropic's Messages API.
type Provider struct {
	adapters.Upstream
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider.
type Options struct {
	// Name is the provider's name from the configuration.
	Name string
	// BaseURL is the API root. Zero value: DefaultBaseURL.
	BaseURL string
	// APIKey is sent as x-api-key; empty sends none.
	APIKey string
	// Headers are sent with every request (anthropic-beta, say).
	Headers map[string]string
	// Transport carries the requests. Zero value: a transport of the
	// provider's own, tuned for many concurrent long-lived streams.
	Transport http.RoundTripper
	// UserAgent identifies the gateway upstream.
	UserAgent string
}

// New returns a provider for Anthropic's Messages API.
func New(o Options) *Provider {
	h := make(http.Header, len(o.Headers)+4)
	for k, v := range o.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Anthropic-Version", Version)
	if o.UserAgent != "" {
		h.Set("User-Agent", o.UserAgent)
	}
	secrets := adapters.SecretHeaderValues(o.Headers)
	if o.APIKey != "" {
		h.Set("X-Api-Key", o.APIKey)
		secrets = append(secrets, o.APIKey)
	}
	base := o.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return &Provider{adapters.NewUpstream(adapters.UpstreamOptions{
		Name:      o.Name,
		BaseURL:   base,
		Headers:   h,
		Secrets:   secrets,
		Transport: o.Transport,
	})}
}
