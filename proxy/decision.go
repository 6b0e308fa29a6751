package proxy

import (
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/audit"
	"portcullis/authn"
	"portcullis/authz"
)

// decide asks the policy and answers 403 on a deny. A policy error is a
// deny too (fail closed), audited with its cause. The decision, with every
// limit it set, goes into the audit record either way.
func (s *Server) decide(c *call, id *authn.Identity, req *authz.Request) (authz.Decision, bool) {
	req.ClientIP = c.rec.ClientIP
	req.UserAgent = c.rec.UserAgent
	began := time.Now()
	span := s.startSpan(c, "authorize", trace.SpanKindInternal)
	d, err := s.policy.Decide(c.r.Context(), &authz.Input{Identity: id, Request: *req, Time: c.start})
	c.rec.PolicyLatency = time.Since(began)
	endAuthzSpan(span, &d, err)
	c.rec.Decision = auditDecision(d)
	if err != nil {
		c.logger().Error("policy evaluation failed; denying", zap.Error(err))
		c.fail(http.StatusForbidden, "policy_error", "permission_denied", "policy_error", "",
			"the request was denied because the policy could not decide it; the gateway operator can find the cause under request id "+c.rec.RequestID)
		c.rec.Error = err.Error()
		return d, false
	}
	if !d.Allow {
		msg := "denied by policy"
		if len(d.Reasons) > 0 {
			msg += ": " + strings.Join(d.Reasons, "; ")
		}
		c.fail(http.StatusForbidden, "policy_denied", "permission_denied", "policy_denied", "", msg)
		return d, false
	}
	return d, true
}

// auditDecision copies a decision into its audit form.
func auditDecision(d authz.Decision) audit.Decision {
	a := audit.Decision{
		Evaluated:  true,
		Allow:      d.Allow,
		Reasons:    d.Reasons,
		Revision:   d.Revision,
		MaxTokens:  d.MaxTokens,
		RateLimits: audit.RateLimits(d.RateLimits),
		Tools:      audit.Tools(d.Tools),
		LogContent: d.LogContent,
	}
	for _, b := range d.Budgets {
		a.Budgets = append(a.Budgets, audit.Budget(b))
	}
	return a
}

// applyTools enforces the decision's tool rule. Tools the conversation
// already called, and a tool_choice that names a tool, must be allowed
// whatever the rule says on violation; other offered tools are refused
// (on_violation "deny") or removed from the request ("strip").
func (s *Server) applyTools(c *call, req decidable, rule authz.Tools) bool {
	if !rule.Restricted {
		return true
	}
	if refused := refusedTools(req.HistoryToolCalls(), rule); len(refused) > 0 {
		s.refuseTools(c, "the conversation calls tools the policy does not allow: "+strings.Join(refused, ", "))
		return false
	}
	choice, named := req.PolicyToolChoice()
	if named && !rule.Permits(choice) {
		s.refuseTools(c, "tool_choice names "+choice+", a tool the policy does not allow")
		return false
	}
	refused := refusedTools(req.OfferedTools(), rule)
	if len(refused) == 0 {
		return true
	}
	if rule.OnViolation != authz.ToolsStrip {
		s.refuseTools(c, "the policy does not allow these tools: "+strings.Join(refused, ", "))
		return false
	}
	c.rec.ToolsRemoved = req.StripTools(rule.Permits)
	if choice == "required" && len(req.OfferedTools()) == 0 {
		s.refuseTools(c, "tool_choice is \"required\" but the policy allows none of the offered tools")
		return false
	}
	return true
}

func refusedTools(names []string, rule authz.Tools) []string {
	var refused []string
	for _, n := range names {
		if !rule.Permits(n) {
			refused = append(refused, n)
		}
	}
	return refused
}

func (s *Server) refuseTools(c *call, msg string) {
	c.fail(http.StatusForbidden, "tool_denied", "permission_denied", "tool_not_allowed", "tools", msg)
}
