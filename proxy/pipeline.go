package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/authn"
	"portcullis/authz"
)

// decidable is what applying a policy decision needs of a request: the
// inbound request itself when its bytes pass through, or the unified
// request when it is translated.
type decidable interface {
	OfferedTools() []string
	PolicyToolChoice() (choice string, named bool)
	HistoryToolCalls() []string
	StripTools(permit func(name string) bool) (removed []string)
	CapMaxTokens(limit int) bool
}

// chatCall is one chat call on the shared pipeline, whichever inbound API
// it came in by: route, decide, apply the decision, forward (passing the
// bytes through or translating), relay or translate the answer back.
type chatCall struct {
	// api is the inbound API as the policy sees it: "chat" or "messages".
	api string
	// client is the inbound API's format, in which answers and errors go back.
	client clientCodec
	model  string
	stream bool
	// maxTokens is the client's own output cap; 0 for none.
	maxTokens int
	// includeUsage is the client asking for usage in an OpenAI stream.
	includeUsage bool
	// native is the request as sent, edited in place for a passthrough.
	native decidable
	// passthrough encodes native for a provider of the client's format.
	passthrough func(upstreamModel string, forceUsage bool) ([]byte, error)
	// reparse reads the request as sent afresh, for a target whose own
	// edits (a smaller max_tokens) must not carry over to the next one.
	reparse func() (decidable, func(upstreamModel string, forceUsage bool) ([]byte, error), error)
	// unified decodes the request for a provider of another format.
	unified func() (*adapters.Request, error)
	// body is the request as sent, for the audit record's content when
	// unified cannot read it.
	body []byte
	// endpoint is the inbound API when it is not chat (embeddings, token
	// counting); such calls only pass through. nil for chat.
	endpoint *upstreamEndpoint
}

// serveChat runs an authenticated, parsed chat call to its end: the
// policy decides on the model the client named, and the router sends the
// call to that model's targets (router.go).
func (s *Server) serveChat(c *call, id *authn.Identity, cc *chatCall) {
	c.rec.Model = cc.model
	c.rec.Stream = cc.stream
	rtr, ok := s.route(c, cc.model)
	if !ok {
		return
	}
	rt := rtr.targets[0]
	if cc.endpoint != nil {
		served := rtr.targetsFor(cc)
		if len(served) == 0 {
			c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "unsupported_endpoint", "model",
				"the model "+strconv.Quote(cc.model)+" does not offer "+cc.endpoint.what+": its provider "+rt.provider.Name()+" has no such API")
			return
		}
		rt = served[0]
	}
	choice, _ := cc.native.PolicyToolChoice()
	// The input estimate (spend.go) stays out of the policy input: the
	// decision cache is keyed on the whole input, and a per-prompt number
	// would miss it.
	d, ok := s.decide(c, id, &authz.Request{
		API:        cc.api,
		Model:      cc.model,
		Stream:     cc.stream,
		MaxTokens:  cc.maxTokens,
		Tools:      cc.native.OfferedTools(),
		ToolChoice: choice,
	})
	if d.LogContent {
		s.keepContent(c, cc, rt)
	}
	if !ok {
		return
	}
	// The decision is enforced on the request as sent; a target that
	// needs it translated gets the same edits (requestEncoder).
	if !s.applyTools(c, cc.native, d.Tools) {
		return
	}
	cc.native.CapMaxTokens(d.MaxTokens)
	c.spend.model = rt.upstreamModel
	if !s.reserve(c, id, cc, &d) {
		return
	}
	s.forward(c, cc, rtr, &d)
}

// refuseRequest answers 400 for a request the gateway cannot forward.
func (s *Server) refuseRequest(c *call, err error) {
	param, msg := "", err.Error()
	var re *adapters.RequestError
	if errors.As(err, &re) {
		param = re.Param
	}
	c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", param, msg)
}

// relayUpstreamError passes a provider's error on in the client's format,
// with its status, except that the provider refusing the gateway's own
// key is a 502 (the client's credentials are not at fault), and an
// overloaded provider is a 503 to OpenAI clients (Anthropic's 529 is no
// HTTP status they know).
func (s *Server) relayUpstreamError(c *call, rt *route, cc *chatCall, resp *http.Response) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	e := rt.codec().decodeError(resp.StatusCode, resp.Header, raw)
	status := resp.StatusCode
	msg := redact(rt.provider, e.Message)
	errType, code := e.Type, e.Code
	if rt.codec().format() != formatOpenAI || e.Type == "" {
		// Another format's error, or one without OpenAI's type (Azure's
		// gateway errors, Mistral's oldest): named as OpenAI would.
		errType, code = openaiErrorType(e)
	}
	if e.Message == "" {
		msg, errType = "provider "+rt.provider.Name()+" answered HTTP "+strconv.Itoa(status), "upstream_error"
	}
	class := upstreamErrorClass(status)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden || e.Kind == adapters.ErrAuth:
		// Gemini refuses a bad key with a 400, Cohere with a 498.
		class = "upstream_auth"
		c.logger().Error("provider refused the gateway's credentials",
			zap.String("provider", rt.provider.Name()), zap.Int("status", status), zap.String("message", msg))
		status, errType, code = http.StatusBadGateway, "upstream_error", "upstream_auth_failed"
		msg = "provider " + rt.provider.Name() + " refused the gateway's credentials; ask the gateway operator to check its key"
	case e.Kind == adapters.ErrOverloaded && cc.client.format() == formatOpenAI:
		status = http.StatusServiceUnavailable
	case e.Kind == adapters.ErrContextLength:
		status = http.StatusBadRequest
	}
	if status == http.StatusTooManyRequests || e.Kind == adapters.ErrOverloaded {
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			c.w.Header().Set("Retry-After", ra)
		} else if e.RetryAfter > 0 {
			c.w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		}
	}
	c.fail(status, class, errType, code, "", msg)
}
