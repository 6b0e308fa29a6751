package proxy

import (
	"net/http"
	"strconv"

	"portcullis/adapters/anthropic"
)

// messages serves POST /v1/messages, Anthropic's Messages API: passed
// through to an Anthropic provider, translated for any other. Errors go
// back in Anthropic's shape, so Anthropic's SDKs read them.
func (s *Server) messages(c *call) {
	s.serveMessages(c, anthropic.ParseMessagesRequest, nil)
}

// countTokens serves POST /v1/messages/count_tokens for Anthropic models,
// passed through (Anthropic counts the tokens; the call costs none); any
// other model gets a 400 that says why. The policy decides it as a
// messages call.
func (s *Server) countTokens(c *call) {
	s.serveMessages(c, anthropic.ParseCountTokensRequest, countTokensEndpoint)
}

// serveMessages runs a call of Anthropic's API, its body read by parse,
// on the chat pipeline; endpoint is nil for the Messages API itself.
func (s *Server) serveMessages(c *call, parse func([]byte) (*anthropic.MessagesRequest, error), endpoint *upstreamEndpoint) {
	id, body, ok := s.admit(c)
	if !ok {
		return
	}
	req, err := parse(body)
	if err != nil {
		s.refuseRequest(c, err)
		return
	}
	cc := &chatCall{
		api:       "messages",
		client:    anthropicCodec{},
		model:     req.Model,
		stream:    req.Stream,
		maxTokens: req.MaxTokens,
		native:    req,
		passthrough: func(upstreamModel string, _ bool) ([]byte, error) {
			return req.Encode(upstreamModel), nil
		},
		reparse: func() (decidable, func(string, bool) ([]byte, error), error) {
			r, err := parse(body)
			if err != nil {
				return nil, nil, err
			}
			return r, func(upstreamModel string, _ bool) ([]byte, error) { return r.Encode(upstreamModel), nil }, nil
		},
		unified:  req.Unified,
		body:     body,
		endpoint: endpoint,
	}
	if endpoint != nil {
		cc.stream, cc.unified = false, nil // passed through whole, never translated
	}
	s.serveChat(c, id, cc)
}

// writeAnthropicError writes an error in Anthropic's shape, its type
// chosen by status.
func writeAnthropicError(w http.ResponseWriter, status int, message, requestID string) {
	body := anthropic.ErrorBody(anthropic.ErrorType(status), message, requestID)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
