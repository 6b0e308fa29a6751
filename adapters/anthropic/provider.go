// Package anthropic speaks Anthropic's Messages API: it sends calls to
// Anthropic (x-api-key and anthropic-version headers), translates the
// gateway's unified request into a Messages request and Anthropic's
// answers, streams and errors back, and reads and writes the same format
// for clients that call the gateway's own POST /v1/messages.
package anthropic

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"

	"portcullis/adapters"
)

// DefaultBaseURL is Anthropic's API root.
const DefaultBaseURL = "https://api.anthropic.com"

// Version is the anthropic-version header the gateway speaks.
const Version = "2023-06-01"

// Provider reaches Anthropic's Messages API.
type Provider struct {
	name    string
	baseURL string
	secrets []string
	headers http.Header
	client  *http.Client
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
	// Transport carries the requests. Zero value: http.DefaultTransport's
	// settings in a transport of the provider's own.
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
	if o.APIKey != "" {
		h.Set("X-Api-Key", o.APIKey)
	}
	base := o.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	t := o.Transport
	if t == nil {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	var secrets []string
	if o.APIKey != "" {
		secrets = append(secrets, o.APIKey)
	}
	for _, v := range o.Headers {
		if len(v) >= 12 {
			secrets = append(secrets, v)
		}
	}
	return &Provider{
		name:    o.Name,
		baseURL: strings.TrimRight(base, "/"),
		secrets: secrets,
		headers: h,
		client:  &http.Client{Transport: t},
	}
}

// Name implements adapters.Provider.
func (p *Provider) Name() string { return p.name }

// Send implements adapters.Provider. Only the provider's own headers go
// upstream: nothing of the client's request but the body.
func (p *Provider) Send(ctx context.Context, call *adapters.Call) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.baseURL+call.Path, bytes.NewReader(call.Body))
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", p.name, err)
	}
	for k, v := range p.headers {
		req.Header[k] = v
	}
	if call.Stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", p.name, err)
	}
	return resp, nil
}

// Redact removes the provider's key and long header values from upstream
// text before it is shown to a client or logged.
func (p *Provider) Redact(s string) string {
	for _, secret := range p.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}
