package proxy

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/adapters/openai"
	"portcullis/authz"
)

// statusClientClosed is the status recorded (never sent) for a call the
// client abandoned, as nginx logs it.
const statusClientClosed = 499

// maxResponseBytes bounds a non-streamed upstream response.
const maxResponseBytes = 64 << 20

// chatCompletions serves POST /v1/chat/completions.
func (s *Server) chatCompletions(c *call) {
	id, ok := s.authenticate(c)
	if !ok {
		return
	}
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	req, err := openai.ParseChatRequest(body)
	if err != nil {
		var re *openai.RequestError
		if !errors.As(err, &re) {
			re = &openai.RequestError{Message: err.Error()}
		}
		c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", re.Param, re.Message)
		return
	}
	c.rec.Model = req.Model
	c.rec.Stream = req.Stream

	rt, ok := s.route(c, req.Model)
	if !ok {
		return
	}
	d, ok := s.decide(c, id, &authz.Request{
		API:        "chat",
		Model:      req.Model,
		Stream:     req.Stream,
		MaxTokens:  req.MaxTokens,
		Tools:      req.Tools,
		ToolChoice: req.ToolChoice,
	})
	if !ok || !s.applyTools(c, req, d.Tools) {
		return
	}
	req.CapMaxTokens(d.MaxTokens)

	upstreamBody, err := req.Encode(rt.upstreamModel, rt.forceUsage)
	if err != nil {
		c.fail(http.StatusInternalServerError, "internal", "server_error", "", "", "could not encode the upstream request")
		return
	}
	c.rec.Provider = rt.provider.Name()
	c.rec.UpstreamModel = rt.upstreamModel
	c.w.Header().Set("X-Portcullis-Provider", rt.provider.Name())

	// The request's context ends when the client goes away, which cancels
	// the upstream request with it.
	ctx := c.r.Context()
	sent := time.Now()
	resp, err := rt.provider.Send(ctx, &adapters.Call{Path: "/chat/completions", Body: upstreamBody, Stream: req.Stream})
	c.rec.UpstreamLatency = time.Since(sent)
	if err != nil {
		s.upstreamUnreachable(ctx, c, err)
		return
	}
	defer resp.Body.Close()
	c.rec.UpstreamRequestID = resp.Header.Get("X-Request-Id")
	if resp.StatusCode >= 400 {
		s.relayUpstreamError(c, rt, resp)
		return
	}
	if req.Stream && isEventStream(resp.Header.Get("Content-Type")) {
		s.relayStream(c, resp, req.IncludeUsage)
		return
	}
	s.relayResponse(c, resp)
}

// route finds where a model goes, or answers 404.
func (s *Server) route(c *call, model string) (*route, bool) {
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
	s.log.Warn("upstream unreachable", zap.String("request_id", c.rec.RequestID), zap.String("provider", c.rec.Provider), zap.Error(err))
	c.fail(http.StatusBadGateway, "upstream_unreachable", "upstream_error", "upstream_unreachable", "",
		"provider "+c.rec.Provider+" could not be reached")
}

// relayUpstreamError passes a provider's error on in OpenAI's shape, with
// its status, except that the provider refusing the gateway's own key is a
// 502: the client's credentials are not at fault.
func (s *Server) relayUpstreamError(c *call, rt *route, resp *http.Response) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	summary := openai.ReadSummary(raw)
	status := resp.StatusCode
	msg := "provider " + rt.provider.Name() + " answered HTTP " + strconv.Itoa(status)
	errType, code := "upstream_error", ""
	if e := summary.Error; e != nil {
		msg, errType, code = redact(rt.provider, e.Message), e.Type, e.CodeString()
	}
	class := upstreamErrorClass(status)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		s.log.Error("provider refused the gateway's credentials", zap.String("request_id", c.rec.RequestID),
			zap.String("provider", rt.provider.Name()), zap.Int("status", status), zap.String("message", msg))
		status, errType, code = http.StatusBadGateway, "upstream_error", "upstream_auth_failed"
		msg = "provider " + rt.provider.Name() + " refused the gateway's credentials; ask the gateway operator to check its key"
	case status == http.StatusTooManyRequests:
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			c.w.Header().Set("Retry-After", ra)
		}
	}
	c.fail(status, class, errType, code, "", msg)
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

// relayResponse passes a non-streamed response on unchanged.
func (s *Server) relayResponse(c *call, resp *http.Response) {
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
	summary := openai.ReadSummary(body)
	c.rec.ModelServed = summary.Model
	if summary.Usage != nil {
		c.rec.PromptTokens = summary.Usage.PromptTokens
		c.rec.CompletionTokens = summary.Usage.CompletionTokens
		c.rec.UsageReported = true
	}
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(resp.StatusCode)
	if _, err := c.w.Write(body); err != nil {
		s.clientGone(c)
	}
}

func isEventStream(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/event-stream"
}
