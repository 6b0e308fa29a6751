package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"portcullis/audit"
)

// calls are the per-call metrics, fed from each call's audit record.
type calls struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	cost     *prometheus.CounterVec
	refusals *prometheus.CounterVec
	cuts     *prometheus.CounterVec
	total    *prometheus.HistogramVec
	ttfb     *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	upstream *prometheus.HistogramVec
	policy   prometheus.Histogram
	authn    prometheus.Histogram
}

// Buckets, in seconds: from 1ms to a minute for calls, finer for the
// gateway's own steps.
var (
	callBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	stepBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}
)

func newCalls(reg prometheus.Registerer) *calls {
	c := &calls{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_requests_total",
			Help: "Calls, by endpoint, model, provider, HTTP status (499: the client went away) and policy decision (allow, deny, none when not asked)."},
			[]string{"endpoint", "model", "provider", "status", "decision"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_tokens_total",
			Help: "Tokens the providers reported, by model, provider and kind (prompt, completion)."},
			[]string{"model", "provider", "kind"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_cost_usd_total",
			Help: "What the calls cost by the price table, in US dollars, by model and provider (unpriced models count 0)."},
			[]string{"model", "provider"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_spend_refusals_total",
			Help: "Calls the gateway refused for their budgets or rate limits, by reason (budget_exceeded, rate_limited, usage_store_unavailable)."},
			[]string{"reason"}),
		cuts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_stream_cuts_total",
			Help: "Streams the gateway ended at their budget, by model and provider."},
			[]string{"model", "provider"}),
		total: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_request_duration_seconds",
			Help: "Whole calls, from arrival to the end of the response.", Buckets: callBuckets}, []string{"endpoint"}),
		ttfb: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_time_to_first_byte_seconds",
			Help: "Time until the first byte of the response body went to the client.", Buckets: callBuckets}, []string{"endpoint"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_time_to_first_token_seconds",
			Help: "Streams: time until the first event with content went to the client.", Buckets: callBuckets}, []string{"model", "provider"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "portcullis_upstream_duration_seconds",
			Help: "Time from sending a call upstream to the provider's response headers.", Buckets: callBuckets}, []string{"provider"}),
		policy: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "portcullis_policy_evaluation_seconds",
			Help: "Time the policy took to decide a call.", Buckets: stepBuckets}),
		authn: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "portcullis_authentication_seconds",
			Help: "Time spent authenticating a caller.", Buckets: stepBuckets}),
	}
	reg.MustRegister(c.requests, c.tokens, c.cost, c.refusals, c.cuts, c.total, c.ttfb, c.ttft, c.upstream, c.policy, c.authn)
	return c
}

// ObserveCall counts one call from its audit record. Labels come only from
// values the gateway chose (a configured model, a known endpoint), never
// from unchecked client input, so a client cannot grow the label space.
func (r *Registry) ObserveCall(rec *audit.Record) {
	c := r.calls
	endpoint := rec.Endpoint
	if rec.ErrorClass == "not_found" {
		endpoint = "other"
	}
	// The model is a configured one once the call was routed, which
	// happens before the policy is asked.
	model := ""
	if rec.Decision.Evaluated || rec.Provider != "" {
		model = rec.Model
	}
	decision := "none"
	if rec.Decision.Evaluated {
		decision = "deny"
		if rec.Decision.Allow {
			decision = "allow"
		}
	}
	c.requests.WithLabelValues(endpoint, model, rec.Provider, strconv.Itoa(rec.Status), decision).Inc()
	if rec.UsageReported {
		c.tokens.WithLabelValues(model, rec.Provider, "prompt").Add(float64(rec.PromptTokens))
		c.tokens.WithLabelValues(model, rec.Provider, "completion").Add(float64(rec.CompletionTokens))
	}
	r.routing.observe(model, rec.Attempts)
	if rec.CostUSD > 0 {
		c.cost.WithLabelValues(model, rec.Provider).Add(rec.CostUSD)
	}
	switch rec.ErrorClass {
	case "budget_exceeded", "rate_limited", "usage_store_unavailable":
		c.refusals.WithLabelValues(rec.ErrorClass).Inc()
	}
	if rec.StreamCut != "" {
		c.cuts.WithLabelValues(model, rec.Provider).Inc()
	}
	c.total.WithLabelValues(endpoint).Observe(seconds(rec.Latency))
	if rec.TimeToFirstByte > 0 {
		c.ttfb.WithLabelValues(endpoint).Observe(seconds(rec.TimeToFirstByte))
	}
	if rec.TimeToFirstToken > 0 {
		c.ttft.WithLabelValues(model, rec.Provider).Observe(seconds(rec.TimeToFirstToken))
	}
	if rec.UpstreamLatency > 0 {
		c.upstream.WithLabelValues(rec.Provider).Observe(seconds(rec.UpstreamLatency))
	}
	if rec.PolicyLatency > 0 {
		c.policy.Observe(seconds(rec.PolicyLatency))
	}
	if rec.AuthLatency > 0 {
		c.authn.Observe(seconds(rec.AuthLatency))
	}
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// WatchAudit exports the audit sinks' queues, writes, drops and health,
// read at each scrape.
func (r *Registry) WatchAudit(stats func() []audit.SinkStats) {
	r.reg.MustRegister(&auditCollector{stats: stats})
}

type auditCollector struct {
	stats func() []audit.SinkStats
}

var (
	auditQueue = prometheus.NewDesc("portcullis_audit_queue_depth",
		"Audit records waiting for the sink's writer.", []string{"sink", "mode"}, nil)
	auditCapacity = prometheus.NewDesc("portcullis_audit_queue_capacity",
		"The bound of the sink's queue.", []string{"sink", "mode"}, nil)
	auditWritten = prometheus.NewDesc("portcullis_audit_records_written_total",
		"Audit records the sink wrote.", []string{"sink", "mode"}, nil)
	auditDropped = prometheus.NewDesc("portcullis_audit_records_dropped_total",
		"Audit records the sink lost: its queue was full or its writes failed (drop-and-count), or the gateway stopped while it could not write.", []string{"sink", "mode"}, nil)
	auditFailing = prometheus.NewDesc("portcullis_audit_sink_failing",
		"1 while the sink's last write failed; a fail-closed sink then refuses calls.", []string{"sink", "mode"}, nil)
)

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{auditQueue, auditCapacity, auditWritten, auditDropped, auditFailing} {
		ch <- d
	}
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		failing := 0.0
		if s.Failing {
			failing = 1
		}
		mode := string(s.Mode)
		ch <- prometheus.MustNewConstMetric(auditQueue, prometheus.GaugeValue, float64(s.Queue), s.Name, mode)
		ch <- prometheus.MustNewConstMetric(auditCapacity, prometheus.GaugeValue, float64(s.Capacity), s.Name, mode)
		ch <- prometheus.MustNewConstMetric(auditWritten, prometheus.CounterValue, float64(s.Written), s.Name, mode)
		ch <- prometheus.MustNewConstMetric(auditDropped, prometheus.CounterValue, float64(s.Dropped), s.Name, mode)
		ch <- prometheus.MustNewConstMetric(auditFailing, prometheus.GaugeValue, failing, s.Name, mode)
	}
}
