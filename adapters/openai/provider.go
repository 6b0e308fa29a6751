package openai

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"portcullis/adapters"
)

// Provider reaches one OpenAI-compatible upstream.
type Provider struct {
	name    string
	baseURL string
	secrets []string // the key and header values, never to be echoed
	headers http.Header
	client  *http.Client
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
	if o.APIKey != "" {
		h.Set("Authorization", "Bearer "+o.APIKey)
	}
	t := o.Transport
	if t == nil {
		t = NewTransport()
	}
	return &Provider{
		name:    o.Name,
		baseURL: strings.TrimRight(o.BaseURL, "/"),
		secrets: secretsOf(o),
		headers: h,
		client:  &http.Client{Transport: t},
	}
}

// NewTransport returns the transport a provider uses by default: one
// connection pool per provider, kept warm, HTTP/2 where the upstream offers it.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
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

// Redact removes the provider's key and configured header values from
// upstream text before it is shown to a client or logged: a self-hosted
// upstream may echo what it was sent.
func (p *Provider) Redact(s string) string {
	for _, secret := range p.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// secretsOf lists the values Redact hides. Short header values (a version
// number, say) are not secrets and would garble messages if replaced.
func secretsOf(o Options) []string {
	var out []string
	if o.APIKey != "" {
		out = append(out, o.APIKey)
	}
	for _, v := range o.Headers {
		if len(v) >= 12 {
			out = append(out, v)
		}
	}
	return out
}
