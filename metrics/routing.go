package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"portcullis/audit"
)

// routing are the router's per-call metrics, read from each record's
// attempts: every attempt by result, the retries (an attempt on the
// target the one before tried) and the fallbacks (one on another target).
type routing struct {
	attempts  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
}

func newRouting(reg prometheus.Registerer) *routing {
	r := &routing{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_upstream_attempts_total",
			Help: "Requests sent upstream, by model, provider and result (ok, or the attempt's error class)."},
			[]string{"model", "provider", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_retries_total",
			Help: "Attempts that tried the same target again after a retryable failure, by model and provider."},
			[]string{"model", "provider"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "portcullis_fallbacks_total",
			Help: "Calls that moved on from one target to another, by model and the providers left (from) and tried (to)."},
			[]string{"model", "from", "to"}),
	}
	reg.MustRegister(r.attempts, r.retries, r.fallbacks)
	return r
}

func (r *routing) observe(model string, attempts []audit.Attempt) {
	for i, a := range attempts {
		result := a.ErrorClass
		if result == "" {
			result = "ok"
		}
		r.attempts.WithLabelValues(model, a.Provider, result).Inc()
		if i == 0 {
			continue
		}
		prev := attempts[i-1]
		if prev.Provider == a.Provider && prev.UpstreamModel == a.UpstreamModel {
			r.retries.WithLabelValues(model, a.Provider).Inc()
		} else {
			r.fallbacks.WithLabelValues(model, prev.Provider, a.Provider).Inc()
		}
	}
}

// Target is one routing target's state, as WatchTargets reads it.
type Target struct {
	Model, Provider, UpstreamModel string
	// Open is true while the target is cooling down.
	Open bool
	// Cooldowns counts the times it was taken out of rotation.
	Cooldowns uint64
	// InFlight are the calls on it now.
	InFlight int64
}

// WatchTargets exports the routing targets' cooldown state and load,
// read at each scrape.
func (r *Registry) WatchTargets(targets func() []Target) {
	r.reg.MustRegister(&targetCollector{targets: targets})
}

type targetCollector struct {
	targets func() []Target
}

var (
	targetOpen = prometheus.NewDesc("portcullis_target_cooling_down",
		"1 while the target is out of rotation after repeated failures, 0 while it is in rotation (or half-open, awaiting its probe).",
		[]string{"model", "provider", "upstream_model"}, nil)
	targetCooldowns = prometheus.NewDesc("portcullis_target_cooldowns_total",
		"Times the target was taken out of rotation.", []string{"model", "provider", "upstream_model"}, nil)
	targetInFlight = prometheus.NewDesc("portcullis_target_in_flight",
		"Calls in flight on the target.", []string{"model", "provider", "upstream_model"}, nil)
)

func (c *targetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- targetOpen
	ch <- targetCooldowns
	ch <- targetInFlight
}

func (c *targetCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.targets() {
		open := 0.0
		if t.Open {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(targetOpen, prometheus.GaugeValue, open, t.Model, t.Provider, t.UpstreamModel)
		ch <- prometheus.MustNewConstMetric(targetCooldowns, prometheus.CounterValue, float64(t.Cooldowns), t.Model, t.Provider, t.UpstreamModel)
		ch <- prometheus.MustNewConstMetric(targetInFlight, prometheus.GaugeValue, float64(t.InFlight), t.Model, t.Provider, t.UpstreamModel)
	}
}
