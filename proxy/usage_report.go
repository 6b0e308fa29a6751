package proxy

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"portcullis/audit"
	"portcullis/authz"
	"portcullis/usage"
)

// usageReportAnswer is GET /v1/usage/report's answer.
type usageReportAnswer struct {
	Object  string           `json:"object"`
	From    string           `json:"from"`
	To      string           `json:"to"`
	GroupBy []string         `json:"group_by"`
	Subject string           `json:"subject,omitempty"`
	Group   string           `json:"group,omitempty"`
	Rows    []usageReportRow `json:"rows"`
	Totals  usageReportRow   `json:"totals"`
}

// usageReportRow is one row: its group-by keys and what it counted.
type usageReportRow struct {
	Identity     string  `json:"identity,omitempty"`
	Group        string  `json:"group,omitempty"`
	Model        string  `json:"model,omitempty"`
	Provider     string  `json:"provider,omitempty"`
	Day          string  `json:"day,omitempty"`
	Calls        int64   `json:"calls"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

func reportRow(keys map[string]string, t usage.Totals) usageReportRow {
	return usageReportRow{Identity: keys["identity"], Group: keys["group"], Model: keys["model"], Provider: keys["provider"], Day: keys["day"],
		Calls: t.Calls, InputTokens: t.InputTokens, OutputTokens: t.OutputTokens, CostUSD: t.USD()}
}

// usageReportOf serves GET /v1/usage/report?group_by=…&from=…&to=…
// [&subject=…|&group=…|&all=true]: the caller's own usage by default;
// another subject's, a group's or everyone's when the policy's decision
// for api "usage" with request.usage_scope allows it.
func (s *Server) usageReportOf(c *call) {
	id, ok := s.authenticate(c)
	if !ok {
		return
	}
	if s.meter == nil {
		c.fail(http.StatusNotFound, "not_found", "invalid_request_error", "usage_off", "", "this gateway does not count usage")
		return
	}
	qs := c.r.URL.Query()
	q := usage.ReportQuery{From: qs.Get("from"), To: qs.Get("to"), Subject: qs.Get("subject"), Group: qs.Get("group")}
	if g := qs.Get("group_by"); g != "" {
		q.GroupBy = strings.Split(g, ",")
	}
	all := qs.Get("all") == "true"
	today := s.meter.Day(c.start)
	if q.To == "" {
		q.To = today
	}
	if q.From == "" {
		q.From = q.To[:min(len(q.To), 8)] + "01"
	}
	if err := q.Check(); err != nil {
		c.fail(http.StatusBadRequest, "invalid_request", "invalid_request_error", "invalid_report", "", err.Error())
		return
	}
	own := !all && q.Group == "" && (q.Subject == "" || q.Subject == id.Subject)
	if own {
		q.Subject = id.Subject
	} else if all && (q.Subject != "" || q.Group != "") {
		c.fail(http.StatusBadRequest, "invalid_request", "invalid_request_error", "invalid_report", "", "all=true asks for everyone: give no subject or group with it")
		return
	}
	if own {
		c.rec.Decision = audit.Decision{Evaluated: false}
	} else {
		began := time.Now()
		d, err := s.policy.Decide(c.r.Context(), &authz.Input{Identity: id, Time: c.start,
			Request: authz.Request{API: "usage", ClientIP: c.rec.ClientIP, UserAgent: c.rec.UserAgent,
				UsageScope: &authz.UsageScope{Subject: q.Subject, Group: q.Group}}})
		c.rec.PolicyLatency = time.Since(began)
		allow := err == nil && d.Allow
		c.rec.Decision = audit.Decision{Evaluated: true, Allow: allow, Revision: s.policy.Revision()}
		if err != nil {
			c.logger().Error("policy could not decide a usage report's scope", zap.Error(err))
		}
		if !allow {
			c.fail(http.StatusForbidden, "policy_denied", "permission_denied", "usage_scope_denied", "",
				"the policy does not let you see this usage: ask without subject, group or all for your own")
			return
		}
	}
	rows, total, err := s.meter.Report(c.r.Context(), q)
	var se *usage.StoreError
	switch {
	case errors.As(err, &se):
		s.refuseSpend(c, err)
		return
	case err != nil:
		c.fail(http.StatusBadRequest, "invalid_request", "invalid_request_error", "invalid_report", "", err.Error())
		return
	}
	ans := usageReportAnswer{Object: "usage.report", From: q.From, To: q.To, GroupBy: q.GroupBy, Subject: q.Subject, Group: q.Group,
		Rows: make([]usageReportRow, len(rows)), Totals: reportRow(nil, total)}
	if ans.GroupBy == nil {
		ans.GroupBy = []string{}
	}
	for i, r := range rows {
		ans.Rows[i] = reportRow(r.Keys, r.Totals)
	}
	writeJSON(c.w, http.StatusOK, ans)
}
