package openai

import (
	"context"
	"net/http"
	"net/url"

	"portcullis/adapters"
)

// Provider reaches one OpenAI-compatible upstream.
type Provider struct {
	adapters.Upstream
	dialect    Dialect
	apiVersion string
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider.
type Options struct {
	// Name is the provider's name from the configuration.
	Name string
	// BaseURL is the API root, such as https://api.openai.com/v1; for
	// Azure, the resource's endpoint, https://{resource}.openai.azure.com.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer" (as "api-key" to Azure);
	// empty sends none.
	APIKey string
	// Headers are sent with every request.
	Headers map[string]string
	// Transport carries the requests. Zero value: a transport of the
	// provider's own, tuned for many concurrent long-lived streams.
	Transport http.RoundTripper
	// UserAgent identifies the gateway upstream.
	UserAgent string
	// Dialect is the provider's variant of the format. Zero value: OpenAI.
	Dialect Dialect
	// APIVersion is Azure's api-version query parameter.
	APIVersion string
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
		if o.Dialect == DialectAzure {
			h.Set("Api-Key", o.APIKey)
		} else {
			h.Set("Authorization", "Bearer "+o.APIKey)
		}
		secrets = append(secrets, o.APIKey)
	}
	d := o.Dialect
	if d == "" {
		d = DialectOpenAI
	}
	return &Provider{
		Upstream: adapters.NewUpstream(adapters.UpstreamOptions{
			Name:      o.Name,
			BaseURL:   o.BaseURL,
			Headers:   h,
			Secrets:   secrets,
			Transport: o.Transport,
		}),
		dialect:    d,
		apiVersion: o.APIVersion,
	}
}

// Dialect is the provider's variant of the format.
func (p *Provider) Dialect() Dialect { return p.dialect }

// Send implements Provider. Azure's dated API names the deployment (the
// upstream model) in the URL and the API version in the query:
// {base}/openai/deployments/{deployment}/chat/completions?api-version=...
func (p *Provider) Send(ctx context.Context, call *adapters.Call) (*http.Response, error) {
	if p.dialect == DialectAzure {
		c := *call
		c.Path = "/openai/deployments/" + url.PathEscape(call.Model) + call.Path + "?api-version=" + url.QueryEscape(p.apiVersion)
		call = &c
	}
	return p.Upstream.Send(ctx, call)
}
