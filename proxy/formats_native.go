package proxy

import (
	"io"
	"net/http"

	"portcullis/adapters"
	"portcullis/adapters/bedrock"
	"portcullis/adapters/cohere"
	"portcullis/adapters/gemini"
	"portcullis/adapters/ollama"
)

// nativeFormat is the codec of a native-format provider (Gemini, Cohere,
// Ollama's /api/chat, Bedrock's Converse): no inbound API speaks these
// formats, so every call to them is translated, and each is no more than
// its adapter's functions.
type nativeFormat struct {
	name   string
	paths  func(model string, stream bool) string
	encode func(req *adapters.Request, model string) ([]byte, error)
	decode func(body []byte) (*adapters.Response, error)
	stream func(r io.Reader) streamDecoder
	errors func(status int, h http.Header, body []byte) *adapters.UpstreamError
}

var _ upstreamCodec = (*nativeFormat)(nil)

func (f *nativeFormat) format() string                        { return f.name }
func (f *nativeFormat) path(model string, stream bool) string { return f.paths(model, stream) }
func (f *nativeFormat) encodeRequest(req *adapters.Request, model string) ([]byte, error) {
	return f.encode(req, model)
}
func (f *nativeFormat) decodeResponse(body []byte) (*adapters.Response, error) { return f.decode(body) }
func (f *nativeFormat) decodeStream(r io.Reader) streamDecoder                 { return f.stream(r) }
func (f *nativeFormat) decodeError(status int, h http.Header, body []byte) *adapters.UpstreamError {
	return f.errors(status, h, body)
}

// fixedPath is the paths of a format whose endpoint is the same for every call.
func fixedPath(p string) func(string, bool) string { return func(string, bool) string { return p } }

var (
	geminiFormat = &nativeFormat{"gemini", gemini.Path, gemini.EncodeRequest, gemini.DecodeResponse,
		func(r io.Reader) streamDecoder { return gemini.NewStreamDecoder(r) }, gemini.DecodeError}
	cohereFormat = &nativeFormat{"cohere", fixedPath(cohere.Path), cohere.EncodeRequest, cohere.DecodeResponse,
		func(r io.Reader) streamDecoder { return cohere.NewStreamDecoder(r) }, cohere.DecodeError}
	ollamaFormat = &nativeFormat{"ollama", fixedPath(ollama.Path), ollama.EncodeRequest, ollama.DecodeResponse,
		func(r io.Reader) streamDecoder { return ollama.NewStreamDecoder(r) }, ollama.DecodeError}
	bedrockFormat = &nativeFormat{"bedrock", bedrock.Path, bedrock.EncodeRequest, bedrock.DecodeResponse,
		func(r io.Reader) streamDecoder { return bedrock.NewStreamDecoder(r) }, bedrock.DecodeError}
)

// nativeCodec is the codec of a native-format provider, if p is one.
func nativeCodec(p adapters.Provider) (upstreamCodec, bool) {
	switch p.(type) {
	case *gemini.Provider:
		return geminiFormat, true
	case *cohere.Provider:
		return cohereFormat, true
	case *ollama.Provider:
		return ollamaFormat, true
	case *bedrock.Provider:
		return bedrockFormat, true
	}
	return nil, false
}
