package proxy

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"portcullis/audit"
	"portcullis/authn"
	"portcullis/authz"
	"portcullis/usage"
)

// usageReport is GET /v1/usage's answer: where each of the caller's
// limits stands.
type usageReport struct {
	Object     string      `json:"object"`
	Subject    string      `json:"subject"`
	Budgets    []usageLine `json:"budgets"`
	RateLimits []usageLine `json:"rate_limits"`
	Time       time.Time   `json:"time"`
}

// usageLine is one limit: its key and window, the limits set, what the
// window holds (calls in flight counted at what they reserved), and when
// it next frees room.
type usageLine struct {
	Key           string    `json:"key"`
	Window        string    `json:"window"`
	LimitTokens   int64     `json:"limit_tokens,omitempty"`
	LimitUSD      float64   `json:"limit_usd,omitempty"`
	LimitRequests int64     `json:"limit_requests,omitempty"`
	UsedTokens    int64     `json:"used_tokens"`
	UsedUSD       float64   `json:"used_usd"`
	UsedRequests  int64     `json:"used_requests"`
	Resets        time.Time `json:"resets_at"`
}

// standings is where id stands against every budget and rate limit the
// policy sets it on any model it may use (asked once per model).
func (s *Server) standings(ctx context.Context, id *authn.Identity, clientIP, userAgent string, now time.Time) ([]usage.Standing, error) {
	models, err := s.visibleModels(ctx, id, clientIP, userAgent, now)
	if err != nil {
		return nil, err
	}
	var req usage.Request
	seen := map[string]bool{}
	// Budgets the policy shows the caller beyond its own (an admin's view
	// of its teams', say) come from a decision for api "usage"; a policy
	// that denies it, or does not know it, shows none.
	if d, err := s.policy.Decide(ctx, &authz.Input{Identity: id, Time: now,
		Request: authz.Request{API: "usage", ClientIP: clientIP, UserAgent: userAgent}}); err == nil && d.Allow {
		addBudgets(&req, seen, d.Budgets)
	}
	for _, m := range models {
		d, err := s.policy.Decide(ctx, &authz.Input{Identity: id, Time: now,
			Request: authz.Request{API: "chat", Model: m, ClientIP: clientIP, UserAgent: userAgent}})
		if err != nil {
			return nil, err
		}
		if !d.Allow {
			continue
		}
		addBudgets(&req, seen, d.Budgets)
		req.Rate.RequestsPerMinute = max(req.Rate.RequestsPerMinute, int64(d.RateLimits.RequestsPerMinute))
		req.Rate.TokensPerMinute = max(req.Rate.TokensPerMinute, int64(d.RateLimits.TokensPerMinute))
	}
	req.Rate.Key = usage.KeyFor(string(id.Type), id.Subject)
	return s.meter.Standings(ctx, &req)
}

// addBudgets adds the budgets not seen yet (by key and window) to req.
func addBudgets(req *usage.Request, seen map[string]bool, budgets []authz.Budget) {
	for _, b := range budgets {
		if k := b.Key + " " + b.Window; !seen[k] {
			seen[k] = true
			req.Budgets = append(req.Budgets, usage.Budget{Key: b.Key, Window: b.Window, Tokens: b.Tokens, USD: b.USD})
		}
	}
}

// Usage is where id stands against its limits, for the portal; nil
// without a meter.
func (s *Server) Usage(r *http.Request, id *authn.Identity) ([]usage.Standing, error) {
	if s.meter == nil {
		return nil, nil
	}
	return s.standings(r.Context(), id, s.clientIP(r), r.UserAgent(), time.Now())
}

// usageOf serves GET /v1/usage: the caller's own usage against every
// budget and rate limit the policy sets for it, on any model it may use.
func (s *Server) usageOf(c *call) {
	id, ok := s.authenticate(c)
	if !ok {
		return
	}
	if s.meter == nil {
		c.fail(http.StatusNotFound, "not_found", "invalid_request_error", "usage_off", "", "this gateway does not count usage")
		return
	}
	began := time.Now()
	standings, err := s.standings(c.r.Context(), id, c.rec.ClientIP, c.rec.UserAgent, c.start)
	c.rec.PolicyLatency = time.Since(began)
	c.rec.Decision = audit.Decision{Evaluated: true, Allow: err == nil, Revision: s.policy.Revision()}
	var se *usage.StoreError
	switch {
	case errors.As(err, &se):
		s.refuseSpend(c, err)
		return
	case err != nil:
		c.logger().Error("policy could not say the caller's limits", zap.Error(err))
		c.fail(http.StatusForbidden, "policy_error", "permission_denied", "policy_error", "", "the policy could not say your limits")
		return
	}
	report := usageReport{Object: "usage", Subject: id.Subject, Budgets: []usageLine{}, RateLimits: []usageLine{}, Time: time.Now().UTC()}
	for _, st := range standings {
		line := usageLine{Key: st.Key, Window: st.Window, LimitTokens: st.LimitTokens, LimitUSD: st.LimitUSD, LimitRequests: st.LimitRequests,
			UsedTokens: st.UsedTokens, UsedUSD: st.UsedUSD, UsedRequests: st.UsedRequests, Resets: st.Reset.UTC()}
		if st.Kind == "rate_limit" {
			report.RateLimits = append(report.RateLimits, line)
		} else {
			report.Budgets = append(report.Budgets, line)
		}
	}
	writeJSON(c.w, http.StatusOK, report)
}
