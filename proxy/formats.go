package proxy

import (
	"io"
	"net/http"

	"portcullis/adapters"
	"portcullis/adapters/anthropic"
	"portcullis/adapters/openai"
)

// The wire formats the gateway speaks. Each inbound API speaks one and so
// does each provider; a call whose two sides speak the same format passes
// through, any other is translated through the unified types.
const (
	formatOpenAI    = "openai"
	formatAnthropic = "anthropic"
)

// upstreamCodec translates a unified request into a provider's wire
// format, and the provider's answers back.
type upstreamCodec interface {
	format() string
	// path is the chat endpoint below the provider's base URL for a call
	// to model, streamed or not.
	path(model string, stream bool) string
	encodeRequest(req *adapters.Request, model string) ([]byte, error)
	decodeResponse(body []byte) (*adapters.Response, error)
	decodeStream(r io.Reader) streamDecoder
	decodeError(status int, h http.Header, body []byte) *adapters.UpstreamError
}

// clientCodec writes answers in an inbound API's wire format.
type clientCodec interface {
	format() string
	encodeResponse(resp *adapters.Response, model string) []byte
	encodeStream(model string, includeUsage bool) streamEncoder
}

// streamDecoder reads a provider's stream as unified events; io.EOF ends
// a complete stream, any other error a broken one.
type streamDecoder interface {
	Next() (adapters.StreamEvent, error)
	// Buffered is what has arrived and not been decoded yet.
	Buffered() int
}

// streamEncoder writes unified events as a client's stream.
type streamEncoder interface {
	Encode(ev adapters.StreamEvent) []byte
	// End closes a stream that completed.
	End() []byte
	// Fail ends a stream with an error event.
	Fail(e *adapters.UpstreamError) []byte
}

type openaiCodec struct{}

var (
	_ upstreamCodec = openaiCodec{}
	_ clientCodec   = openaiCodec{}
)

func (openaiCodec) format() string           { return formatOpenAI }
func (openaiCodec) path(string, bool) string { return "/chat/completions" }
func (openaiCodec) encodeRequest(req *adapters.Request, model string) ([]byte, error) {
	return openai.EncodeRequest(req, model)
}
func (openaiCodec) decodeResponse(body []byte) (*adapters.Response, error) {
	return openai.DecodeResponse(body)
}
func (openaiCodec) decodeStream(r io.Reader) streamDecoder { return openai.NewStreamDecoder(r) }
func (openaiCodec) decodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	return openai.DecodeError(status, h, body)
}
func (openaiCodec) encodeResponse(resp *adapters.Response, model string) []byte {
	return openai.EncodeResponse(resp, model)
}
func (openaiCodec) encodeStream(model string, includeUsage bool) streamEncoder {
	return openaiStream{openai.NewStreamEncoder(model, includeUsage)}
}

type openaiStream struct{ *openai.StreamEncoder }

func (s openaiStream) Fail(e *adapters.UpstreamError) []byte {
	errType, code := openaiErrorType(e)
	return s.StreamEncoder.Fail(errType, code, e.Message)
}

// compatCodec is the OpenAI format as spoken by a provider whose dialect
// departs from it too far for bytes to pass through (Mistral, Groq,
// Perplexity, Ollama): a format of its own, so that every client's call
// to it is translated, and answers reach OpenAI clients in OpenAI's exact
// shape.
type compatCodec struct {
	openaiCodec
	dialect openai.Dialect
}

var _ upstreamCodec = compatCodec{}

func (c compatCodec) format() string { return formatOpenAI + "/" + string(c.dialect) }
func (c compatCodec) encodeRequest(req *adapters.Request, model string) ([]byte, error) {
	return openai.EncodeRequestFor(req, model, c.dialect)
}

type anthropicCodec struct{}

var (
	_ upstreamCodec = anthropicCodec{}
	_ clientCodec   = anthropicCodec{}
)

func (anthropicCodec) format() string           { return formatAnthropic }
func (anthropicCodec) path(string, bool) string { return "/v1/messages" }
func (anthropicCodec) encodeRequest(req *adapters.Request, model string) ([]byte, error) {
	return anthropic.EncodeRequest(req, model)
}
func (anthropicCodec) decodeResponse(body []byte) (*adapters.Response, error) {
	return anthropic.DecodeResponse(body)
}
func (anthropicCodec) decodeStream(r io.Reader) streamDecoder { return anthropic.NewStreamDecoder(r) }
func (anthropicCodec) decodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	return anthropic.DecodeError(status, h, body)
}
func (anthropicCodec) encodeResponse(resp *adapters.Response, model string) []byte {
	return anthropic.EncodeResponse(resp, model)
}
func (anthropicCodec) encodeStream(model string, _ bool) streamEncoder {
	return anthropicStream{anthropic.NewStreamEncoder(model)}
}

type anthropicStream struct{ *anthropic.StreamEncoder }

func (s anthropicStream) Fail(e *adapters.UpstreamError) []byte {
	return s.StreamEncoder.Fail(anthropicErrorType(e), e.Message)
}

// openaiErrorType is the OpenAI error type and code for an upstream error
// of any format, per the error table of the wire mapping.
func openaiErrorType(e *adapters.UpstreamError) (errType, code string) {
	switch e.Kind {
	case adapters.ErrRateLimit:
		return "requests", "rate_limit_exceeded"
	case adapters.ErrQuota:
		return "insufficient_quota", "insufficient_quota"
	case adapters.ErrOverloaded:
		return "server_error", "overloaded"
	case adapters.ErrContextLength:
		return "invalid_request_error", "context_length_exceeded"
	case adapters.ErrAuth:
		return "invalid_request_error", "invalid_api_key"
	case adapters.ErrServer:
		return "server_error", ""
	case adapters.ErrNotFound:
		return "invalid_request_error", "model_not_found"
	case adapters.ErrTooLarge:
		return "invalid_request_error", "request_too_large"
	default:
		return "invalid_request_error", e.Code
	}
}

// anthropicErrorType is the Anthropic error type for an upstream error of
// any format.
func anthropicErrorType(e *adapters.UpstreamError) string {
	switch e.Kind {
	case adapters.ErrRateLimit:
		return "rate_limit_error"
	case adapters.ErrQuota:
		return "billing_error"
	case adapters.ErrOverloaded:
		return "overloaded_error"
	case adapters.ErrAuth:
		return "authentication_error"
	case adapters.ErrPermission:
		return "permission_error"
	case adapters.ErrNotFound:
		return "not_found_error"
	case adapters.ErrTooLarge:
		return "request_too_large"
	case adapters.ErrServer:
		return "api_error"
	default:
		return "invalid_request_error"
	}
}

// codec is the wire format of the route's provider.
func (rt *route) codec() upstreamCodec {
	if c, ok := nativeCodec(rt.provider); ok {
		return c
	}
	switch p := rt.provider.(type) {
	case *anthropic.Provider:
		return anthropicCodec{}
	case *openai.Provider:
		if !p.Dialect().Exact() {
			return compatCodec{dialect: p.Dialect()}
		}
	}
	return openaiCodec{}
}

// upstreamEndpoint is an inbound API other than chat whose calls pass
// through, in the client's format, to the providers that serve it.
type upstreamEndpoint struct {
	// what names the endpoint in a refusal: "embeddings".
	what string
	// path is the endpoint below the provider's base URL.
	path string
	// servedBy says whether a provider has the endpoint.
	servedBy func(p adapters.Provider) bool
}

var (
	embeddingsEndpoint = &upstreamEndpoint{what: "embeddings", path: "/embeddings", servedBy: func(p adapters.Provider) bool {
		op, ok := p.(*openai.Provider)
		return ok && op.Dialect().ServesEmbeddings()
	}}
	countTokensEndpoint = &upstreamEndpoint{what: "token counting", path: "/v1/messages/count_tokens", servedBy: func(p adapters.Provider) bool {
		_, ok := p.(*anthropic.Provider)
		return ok
	}}
)
