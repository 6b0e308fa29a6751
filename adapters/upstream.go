package adapters

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Upstream is the HTTP side every provider shares: where its API lives, the
// headers it sends (its credentials among them), a connection pool of its
// own, and the values that must never be echoed back. A provider embeds it
// and adds its format.
type Upstream struct {
	name    string
	baseURL string
	headers http.Header
	secrets []string
	client  *http.Client
	accept  string
}

// UpstreamOptions configure an Upstream.
type UpstreamOptions struct {
	// Name is the provider's name from the configuration.
	Name string
	// BaseURL is the API root; requests go to BaseURL + Call.Path.
	BaseURL string
	// Headers are sent with every request, credentials included.
	Headers http.Header
	// Secrets are values Redact removes: the key, and header values long
	// enough to be credentials.
	Secrets []string
	// Transport carries the requests. Zero value: NewTransport().
	Transport http.RoundTripper
	// StreamAccept is the Accept header of a streamed call. Zero value:
	// text/event-stream.
	StreamAccept string
}

// NewUpstream returns an Upstream.
func NewUpstream(o UpstreamOptions) Upstream {
	t := o.Transport
	if t == nil {
		t = NewTransport()
	}
	return Upstream{
		name:    o.Name,
		baseURL: strings.TrimRight(o.BaseURL, "/"),
		headers: o.Headers,
		secrets: o.Secrets,
		client:  &http.Client{Transport: t},
		accept:  o.StreamAccept,
	}
}

// NewTransport returns the transport a provider uses by default: one
// connection pool per provider, kept warm, HTTP/2 where the upstream
// offers it. A request whose context carries WithConnectTimeout dials a
// new connection within that bound instead of the default 10s.
func NewTransport() *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if d, ok := ctx.Value(connectTimeoutKey{}).(time.Duration); ok && d > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			return dialer.DialContext(ctx, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

type connectTimeoutKey struct{}

// WithConnectTimeout returns ctx carrying a bound on opening a new
// connection (TCP) for the requests sent with it, a routing target's own
// connect time-out; a pooled connection needs none.
func WithConnectTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, connectTimeoutKey{}, d)
}

// SecretHeaderValues lists the header values long enough to be credentials
// (an Azure api-key, an organisation token); short ones (a version number)
// would garble messages if redacted.
func SecretHeaderValues(headers map[string]string) []string {
	var out []string
	for _, v := range headers {
		if len(v) >= 12 {
			out = append(out, v)
		}
	}
	return out
}

// Name implements Provider.
func (u *Upstream) Name() string { return u.name }

// Send implements Provider. Only the provider's own headers go upstream:
// nothing of the client's request but the body.
func (u *Upstream) Send(ctx context.Context, call *Call) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.baseURL+call.Path, bytes.NewReader(call.Body))
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", u.name, err)
	}
	for k, v := range u.headers {
		req.Header[k] = v
	}
	if call.Stream && u.accept != "" {
		req.Header.Set("Accept", u.accept)
	} else if call.Stream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", u.name, err)
	}
	return resp, nil
}

// Redact removes the provider's secrets from upstream text before it is
// shown to a client or logged: an upstream may echo what it was sent.
func (u *Upstream) Redact(s string) string {
	for _, secret := range u.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}
