package openai

import (
	"net/http"

	"portcullis/adapters"
)

// Provider reaches one OpenAI-compatible upstream.
type Provider struct {
	adapters.Upstream
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider.
type Options struct {
	// Name is the provider's name from the configuration.
	Name string
	// BaseURL is the API root, such as https://api.openai.com/v1.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer"; empty sends none.
	APIKey string
	// Headers are sent with every request.
	Headers map[string]string
	// Transport carries the requests. Zero value: a transport of the
	// provider's own, tuned for many concurrent long-lived streams.
	Transport http.RoundTripper
	// UserAgent identifies the gateway upstream.
	UserAgent string
}

// New returns a provider for an OpenAI-compatible upstream.
func New(o Options) *Provider {
	h := make(http.Header, len(o.Headers)+3)
	for k, v := range o.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	if o.UserAgent != "" {
		h.Set("User-Agent", o.UserAgent)
	}
	secrets := adapters.SecretHeaderValues(o.Headers)
	if o.APIKey != "" {
		h.Set("Authorization", "Bearer "+o.APIKey)
		secrets = append(secrets, o.APIKey)
	}
	return &Provider{adapters.NewUpstream(adapters.UpstreamOptions{
		Name:      o.Name,
		BaseURL:   o.BaseURL,
		Headers:   h,
		Secrets:   secrets,
		Transport: o.Transport,
	})}
}
