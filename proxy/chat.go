package proxy

import (
	"context"
	"io"
	"mime"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/adapters/openai"
	"portcullis/authn"
)

// statusClientClosed is the status recorded (never sent) for a call the
// client abandoned, as nginx logs it.
const statusClientClosed = 499

// maxResponseBytes bounds a non-streamed upstream response.
const maxResponseBytes = 64 << 20

// admit authenticates a call of an inbound API and reads its body, or
// answers why not (401, 413, 400).
func (s *Server) admit(c *call) (*authn.Identity, []byte, bool) {
	id, ok := s.authenticate(c)
	if !ok {
		return nil, nil, false
	}
	body, ok := s.readBody(c)
	return id, body, ok
}

// chatCompletions serves POST /v1/chat/completions.
func (s *Server) chatCompletions(c *call) {
	id, body, ok := s.admit(c)
	if !ok {
		return
	}
	req, err := openai.ParseChatRequest(body)
	if err != nil {
		s.refuseRequest(c, err)
		return
	}
	s.serveChat(c, id, &chatCall{
		api:          "chat",
		client:       openaiCodec{},
		model:        req.Model,
		stream:       req.Stream,
		maxTokens:    req.MaxTokens,
		includeUsage: req.IncludeUsage,
		native:       req,
		passthrough:  req.Encode,
		reparse: func() (decidable, func(string, bool) ([]byte, error), error) {
			r, err := openai.ParseChatRequest(body)
			if err != nil {
				return nil, nil, err
			}
			return r, r.Encode, nil
		},
		unified: req.Unified,
		body:    body,
	})
}

// route finds where a model goes, or answers 404.
func (s *Server) route(c *call, model string) (*router, bool) {
	if rt, ok := s.routes[model]; ok {
		return rt, true
	}
	msg := "the model " + strconv.Quote(model) + " does not exist on this gateway; GET /v1/models lists the models you may use"
	if why, ok := s.disabled[model]; ok {
		msg = "the model " + strconv.Quote(model) + " is not available: " + why
	}
	c.fail(http.StatusNotFound, "model_not_found", "invalid_request_error", "model_not_found", "model", msg)
	return nil, false
}

// upstreamUnreachable records a call that got no response at all.
func (s *Server) upstreamUnreachable(ctx context.Context, c *call, err error) {
	if ctx.Err() != nil {
		s.clientGone(c)
		return
	}
	c.logger().Warn("upstream unreachable", zap.String("provider", c.rec.Provider), zap.Error(err))
	c.fail(http.StatusBadGateway, "upstream_unreachable", "upstream_error", "upstream_unreachable", "",
		"provider "+c.rec.Provider+" could not be reached")
}

func upstreamErrorClass(status int) string {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return "upstream_auth"
	case status == http.StatusTooManyRequests:
		return "upstream_rate_limited"
	case status >= 500:
		return "upstream_server_error"
	default:
		return "upstream_bad_request"
	}
}

// redact strips the provider's key from upstream text, for providers that
// know their key.
func redact(p adapters.Provider, s string) string {
	if r, ok := p.(interface{ Redact(string) string }); ok {
		return r.Redact(s)
	}
	return s
}

// relayResponse passes a non-streamed response on unchanged, reading its
// model and usage with read.
func (s *Server) relayResponse(c *call, resp *http.Response, read func([]byte) (string, *adapters.Usage)) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err == nil && len(body) > maxResponseBytes {
		c.fail(http.StatusBadGateway, "upstream_too_large", "upstream_error", "upstream_response_too_large", "",
			"provider "+c.rec.Provider+" sent a response larger than "+strconv.Itoa(maxResponseBytes>>20)+" MiB")
		return
	}
	if err != nil {
		if c.r.Context().Err() != nil {
			s.clientGone(c)
			return
		}
		c.fail(http.StatusBadGateway, "upstream_broken", "upstream_error", "upstream_broken", "", "provider "+c.rec.Provider+" broke off its response")
		return
	}
	var usage *adapters.Usage
	c.rec.ModelServed, usage = read(body)
	if c.transcript != nil {
		c.transcript.response(body)
	}
	if usage != nil {
		s.recordUsage(c, usage)
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(resp.StatusCode)
	if _, err := c.w.Write(body); err != nil {
		s.clientGone(c)
	}
}

// readOpenAISummary reads the model and usage of a chat completion.
func readOpenAISummary(body []byte) (string, *adapters.Usage) {
	summary := openai.ReadSummary(body)
	return summary.Model, summary.Usage
}

// isStream reports whether a response is a stream: an event stream,
// Ollama's newline-delimited JSON, or AWS's binary event stream.
func isStream(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream" || mt == "application/x-ndjson" || mt == "application/vnd.amazon.eventstream"
}
