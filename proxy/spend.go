package proxy

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"portcullis/adapters"
	"portcullis/authn"
	"portcullis/authz"
	"portcullis/usage"
)

// spend is a call's accounting: what it reserved against its budgets and
// rate limits, what its stream was counted at, and whether the gateway
// cut it. Settled when the call ends, whichever way it ends (settle).
type spend struct {
	res *usage.Reservation
	// estimate is the estimated input tokens of the request.
	estimate int64
	// model prices the call: the upstream model.
	model string
	// outputCap is the most output a stream may carry before it is cut;
	// 0 for no cut.
	outputCap int64
	// counted is the output the gateway counted in a stream.
	counted int64
	// answered says the provider began a successful answer (a 2xx), so
	// the call is charged; streamed that it was a stream.
	answered, streamed bool
	// usage is the provider's report, when c.rec.UsageReported.
	usage adapters.Usage
	// earlyInput is the input a provider reported before any output
	// (Anthropic's message_start); 0 otherwise.
	earlyInput int64
}

// reserve holds the call's estimated input and output cap against its
// budgets and rate limits, lowering the output cap in the request (in
// the client's own field) when less is left than it asks; or it answers
// 429 with Retry-After and x-ratelimit-* headers naming the limit, or 503
// when the store is down and the budget fails closed.
func (s *Server) reserve(c *call, id *authn.Identity, cc *chatCall, d *authz.Decision) bool {
	if cc.endpoint == countTokensEndpoint {
		c.spend.model = "" // counting tokens costs nothing
		return true
	}
	if s.meter == nil {
		return true
	}
	c.spend.estimate = usage.EstimateRequest(cc.body)
	capOut := int64(cc.maxTokens)
	if d.MaxTokens > 0 && (capOut == 0 || int64(d.MaxTokens) < capOut) {
		capOut = int64(d.MaxTokens)
	}
	req := usage.Request{
		Model:           c.spend.model,
		InputTokens:     c.spend.estimate,
		MaxOutputTokens: capOut,
		InputOnly:       cc.endpoint != nil,
		Rate: usage.RateLimits{
			Key:               usage.KeyFor(string(id.Type), id.Subject),
			RequestsPerMinute: int64(d.RateLimits.RequestsPerMinute),
			TokensPerMinute:   int64(d.RateLimits.TokensPerMinute),
		},
	}
	if len(d.Budgets) > 0 {
		req.Budgets = make([]usage.Budget, len(d.Budgets))
		for i, b := range d.Budgets {
			req.Budgets[i] = usage.Budget{Key: b.Key, Window: b.Window, Tokens: b.Tokens, USD: b.USD, OnStoreError: b.OnStoreError}
		}
	}
	if !req.Limited() {
		return true
	}
	res, err := s.meter.Reserve(c.r.Context(), &req)
	if err != nil {
		s.refuseSpend(c, err)
		return false
	}
	c.spend.res = res
	if req.InputOnly || len(req.Budgets) == 0 && req.Rate.TokensPerMinute == 0 {
		return true
	}
	// Tokens are limited: the call may generate what was reserved and no more.
	out := res.OutputTokens()
	c.spend.outputCap = out
	if capOut == 0 || out < capOut {
		// As the policy's own cap: every target's request gets it (applyEdits).
		d.MaxTokens = int(out)
		cc.native.CapMaxTokens(int(out))
	}
	return true
}

func (s *Server) refuseSpend(c *call, err error) {
	var le *usage.LimitError
	if errors.As(err, &le) {
		le.SetHeaders(c.w.Header())
		class, errType := "budget_exceeded", "insufficient_quota"
		if le.Kind == "rate_limit" {
			class, errType = "rate_limited", string(le.Unit)
		}
		c.fail(http.StatusTooManyRequests, class, errType, le.Code(), "", le.Error())
		return
	}
	c.logger().Error("usage store unavailable; refusing the call (on_store_error: fail-closed)", zap.Error(err))
	c.w.Header().Set("Retry-After", "1")
	c.fail(http.StatusServiceUnavailable, "usage_store_unavailable", "server_error", "usage_store_unavailable", "",
		"the gateway cannot reach its usage store to check your budget, so it refuses the call; try again shortly")
}

// countOutput adds the output of one streamed event to the call's count
// and reports whether relaying it would cross the output the call
// reserved, when the stream must be cut instead.
func (c *call) countOutput(n int64) (cut bool) {
	if limit := c.spend.outputCap; limit > 0 {
		// A provider that reports the input as the stream starts
		// (Anthropic) shows an estimate that fell short: the output makes
		// up the difference, so the call stays within its reservation.
		if in := c.spend.earlyInput; in > c.spend.res.InputTokens() {
			limit -= in - c.spend.res.InputTokens()
		}
		if c.spend.counted+n > limit {
			return true
		}
	}
	c.spend.counted += n
	return false
}

// cutReason is the audit record's and the client's explanation of a cut.
func (c *call) cutReason() string {
	return "budget: the answer reached the " + strconv.FormatInt(c.spend.counted, 10) +
		" output tokens its budget had room for, so the gateway ended it"
}

// settle charges the call for what it used and releases the rest of its
// reservation, and records its cost. A provider that answered with an
// error, or was never reached, charged nothing; a stream that was cut or
// abandoned is charged the provider's usage where it sent one, else the
// output the gateway counted; an answer without usage, its whole reservation.
func (s *Server) settle(c *call) {
	sp := &c.spend
	if s.meter == nil || sp.model == "" {
		return
	}
	var used usage.Tokens
	complete := c.rec.ErrorClass == "" && c.rec.StreamCut == ""
	switch {
	case !sp.answered:
	case c.rec.UsageReported:
		u := &sp.usage
		used = usage.Tokens{Input: int64(u.PromptTokens), CachedInput: int64(u.CachedTokens), CacheWrite: int64(u.CacheWriteTokens),
			Output: int64(u.CompletionTokens), Reasoning: int64(u.ReasoningTokens)}
		if !complete {
			used.Input = max(used.Input, sp.estimate)
			used.Output = max(used.Output, sp.counted)
		}
	case sp.streamed:
		used = usage.Tokens{Input: sp.estimate, Output: sp.counted}
	case sp.res != nil:
		used = usage.Tokens{Input: sp.estimate, Output: sp.res.OutputTokens()}
	}
	if !sp.answered && sp.res == nil {
		return
	}
	// Priced as the target that served it, which a fallback may have
	// made another than the one reserved for.
	model := sp.model
	if c.rec.UpstreamModel != "" {
		model = c.rec.UpstreamModel
	}
	if !s.meter.Prices().Has(model) && c.rec.ModelServed != "" {
		model = c.rec.ModelServed
	}
	cost := s.meter.Cost(model, used)
	if sp.res != nil {
		// The client may be gone: the settlement must still happen. The
		// store bounds its own wait (Redis: 1 s timeouts).
		var err error
		if cost, err = sp.res.SettleAs(context.WithoutCancel(c.r.Context()), model, used); err != nil {
			c.logger().Warn("usage settlement failed; the call stays charged its whole reservation", zap.Error(err))
		}
	}
	if sp.answered {
		c.rec.CostUSD, c.rec.PriceMissing = cost.USD(), cost.PriceMissing
		// The report counters: by the model the client asked for and the
		// provider that served it, for the caller and each of its groups.
		if err := s.meter.Record(context.WithoutCancel(c.r.Context()), &usage.Call{
			Subject: c.rec.Identity.Subject, Groups: c.rec.Identity.Groups, Model: c.rec.Model, Provider: c.rec.Provider,
			Used: used, Pico: cost.Pico,
		}); err != nil {
			// The meter warns, at most every 10 s; this is the call's own line.
			c.logger().Debug("usage report counters not updated", zap.Error(err))
		}
	}
}

// unifiedOutput is the output a unified stream event carries, estimated.
func unifiedOutput(ev *adapters.StreamEvent) int64 {
	switch ev.Type {
	case adapters.EventText, adapters.EventReasoning:
		return usage.EstimateText(ev.Text)
	case adapters.EventToolCall:
		return usage.EstimateText(ev.ToolName) + usage.EstimateText(ev.Arguments)
	case adapters.EventToolArgs:
		return usage.EstimateText(ev.Arguments)
	}
	return 0
}

// cutOpenAIStream ends an OpenAI-format stream at its budget: a final
// chunk with finish_reason "length" and a portcullis field saying why,
// the usage chunk when the client asked for usage, and [DONE].
func (s *Server) cutOpenAIStream(c *call, rc *http.ResponseController, id, model string, withUsage bool) {
	c.rec.StreamCut = c.cutReason()
	created := strconv.FormatInt(time.Now().Unix(), 10)
	head := `{"id":` + strconv.Quote(id) + `,"object":"chat.completion.chunk","created":` + created + `,"model":` + strconv.Quote(model)
	b := make([]byte, 0, 512)
	b = append(b, "data: "...)
	b = append(b, head...)
	b = append(b, `,"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"portcullis":{"stream_cut":"budget","message":`...)
	b = strconv.AppendQuote(b, c.rec.StreamCut)
	b = append(b, "}}\n\n"...)
	if withUsage {
		prompt := c.spend.estimate
		if c.rec.UsageReported {
			prompt = int64(c.spend.usage.PromptTokens)
		}
		b = append(b, "data: "...)
		b = append(b, head...)
		b = append(b, `,"choices":[],"usage":{"prompt_tokens":`...)
		b = strconv.AppendInt(b, prompt, 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, c.spend.counted, 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, prompt+c.spend.counted, 10)
		b = append(b, "}}\n\n"...)
	}
	b = append(b, "data: [DONE]\n\n"...)
	s.endCutStream(c, rc, b)
}

// cutAnthropicStream ends an Anthropic stream at its budget: the open
// content block closed, a message_delta with stop_reason "max_tokens"
// and a portcullis field saying why, and message_stop.
func (s *Server) cutAnthropicStream(c *call, rc *http.ResponseController, openBlock int) {
	c.rec.StreamCut = c.cutReason()
	b := make([]byte, 0, 512)
	if openBlock >= 0 {
		b = append(b, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
		b = strconv.AppendInt(b, int64(openBlock), 10)
		b = append(b, "}\n\n"...)
	}
	b = append(b, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":"...)
	b = strconv.AppendInt(b, c.spend.counted, 10)
	b = append(b, `},"portcullis":{"stream_cut":"budget","message":`...)
	b = strconv.AppendQuote(b, c.rec.StreamCut)
	b = append(b, "}}\n\n"...)
	b = append(b, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
	s.endCutStream(c, rc, b)
}

func (s *Server) endCutStream(c *call, rc *http.ResponseController, tail []byte) {
	c.logger().Info("stream cut at its budget", zap.Int64("output_tokens", c.spend.counted), zap.Int64("output_cap", c.spend.outputCap))
	if _, err := c.w.Write(tail); err != nil {
		s.clientGone(c)
		return
	}
	_ = rc.Flush()
}

// chunkID reads the id of an OpenAI chunk, cheaply.
func chunkID(data []byte) string {
	const key = `"id":"`
	i := bytesIndex(data, key)
	if i < 0 {
		return ""
	}
	rest := data[i+len(key):]
	j := bytesIndex(rest, `"`)
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func bytesIndex(b []byte, s string) int { return bytes.Index(b, []byte(s)) }
