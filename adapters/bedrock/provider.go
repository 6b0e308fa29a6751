// Package bedrock speaks AWS Bedrock Runtime's Converse API (POST
// /model/{modelId}/converse, and /converse-stream, whose answer is a
// binary AWS event stream): it translates the gateway's unified request
// into a Converse request, and Bedrock's answers, event streams and errors
// back. It authenticates with a Bedrock API key (Authorization: Bearer);
// SigV4 signing with IAM credentials is not supported.
package bedrock

import (
	"net/url"

	"portcullis/adapters"
)

// Provider reaches Bedrock's Converse API in one region.
type Provider struct {
	adapters.Upstream
}

var _ adapters.Provider = (*Provider)(nil)

// Options configure a Provider. BaseURL is required: the regional runtime
// endpoint, https://bedrock-runtime.{region}.amazonaws.com. The key is a
// Bedrock API key.
type Options = adapters.ProviderOptions

// New returns a provider for Bedrock's Converse API.
func New(o Options) *Provider {
	uo := o.UpstreamOptions("", "Authorization", "Bearer ")
	uo.StreamAccept = "application/vnd.amazon.eventstream"
	return &Provider{adapters.NewUpstream(uo)}
}

// Path is the endpoint below the base URL for a call to model (a model
// id, an inference profile or an ARN, which goes in the URL escaped).
func Path(model string, stream bool) string {
	if stream {
		return "/model/" + url.PathEscape(model) + "/converse-stream"
	}
	return "/model/" + url.PathEscape(model) + "/converse"
}
