package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"portcullis/audit"
	"portcullis/authz"
)

func TestPolicyMetrics(t *testing.T) {
	status := authz.Status{Revision: "abc123", LoadedAt: time.Unix(1700000000, 0), Reloads: 5, Failures: 2, LastError: "p.rego:3: rego_parse_error"}
	r := New()
	r.WatchPolicy(func() authz.Status { return status })
	scrape := func() string {
		rec := httptest.NewRecorder()
		r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		b, _ := io.ReadAll(rec.Body)
		return string(b)
	}
	out := scrape()
	for _, want := range []string{
		`portcullis_policy_reloads_total{result="success"} 3`,
		`portcullis_policy_reloads_total{result="failure"} 2`,
		`portcullis_policy_last_reload_ok 0`,
		`portcullis_policy_info{revision="abc123"} 1`,
		`portcullis_policy_loaded_timestamp_seconds 1.7e+09`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	status.LastError, status.Reloads = "", 6
	if out := scrape(); !strings.Contains(out, `portcullis_policy_last_reload_ok 1`) || !strings.Contains(out, `portcullis_policy_reloads_total{result="success"} 4`) {
		t.Errorf("scrape after a good reload:\n%s", out)
	}
}

func TestSpendMetrics(t *testing.T) {
	r := New()
	evaluated := audit.Decision{Evaluated: true, Allow: true}
	for _, rec := range []audit.Record{
		{Endpoint: "/v1/chat/completions", Model: "smart", Provider: "openai", Decision: evaluated, CostUSD: 0.25, UsageReported: true},
		{Endpoint: "/v1/chat/completions", Model: "smart", Provider: "openai", Decision: evaluated, CostUSD: 0.5, StreamCut: "budget: ...", UsageReported: true},
		{Endpoint: "/v1/chat/completions", Model: "smart", Decision: evaluated, Status: 429, ErrorClass: "budget_exceeded"},
		{Endpoint: "/v1/chat/completions", Model: "smart", Decision: evaluated, Status: 429, ErrorClass: "rate_limited"},
		{Endpoint: "/v1/chat/completions", Model: "smart", Decision: evaluated, Status: 429, ErrorClass: "rate_limited"},
	} {
		r.ObserveCall(&rec)
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		`portcullis_cost_usd_total{model="smart",provider="openai"} 0.75`,
		`portcullis_spend_refusals_total{reason="budget_exceeded"} 1`,
		`portcullis_spend_refusals_total{reason="rate_limited"} 2`,
		`portcullis_stream_cuts_total{model="smart",provider="openai"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
