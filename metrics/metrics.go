// Package metrics owns the gateway's Prometheus metrics and the listener
// that serves them, apart from the API listener so that scrapes need no
// credentials and cannot be reached where the API is exposed.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"portcullis/authz"
)

// Registry holds the gateway's metrics.
type Registry struct {
	reg     *prometheus.Registry
	calls   *calls
	routing *routing
}

// New returns a registry with the Go runtime and process metrics.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg, calls: newCalls(reg), routing: newRouting(reg)}
}

// WatchPolicy exports the state of the policy engine, read at each scrape.
func (r *Registry) WatchPolicy(status func() authz.Status) {
	r.reg.MustRegister(&policyCollector{status: status})
}

// Serve serves /metrics on addr until ctx ends.
func (r *Registry) Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics listener: %w", err)
	}
	return nil
}

// Handler returns the /metrics handler, for tests.
func (r *Registry) Handler() http.Handler { return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{}) }

// policyCollector turns authz.Status into metrics at scrape time, so the
// policy engine knows nothing of Prometheus.
type policyCollector struct {
	status func() authz.Status
}

var (
	policyReloads = prometheus.NewDesc("portcullis_policy_reloads_total",
		"Policy reloads attempted since start, by result.", []string{"result"}, nil)
	policyLastReloadOK = prometheus.NewDesc("portcullis_policy_last_reload_ok",
		"1 when the last policy reload succeeded (or none failed since start), 0 while a failed reload left the previous policy in force.", nil, nil)
	policyRevision = prometheus.NewDesc("portcullis_policy_info",
		"The policy revision in force, as a label; the value is always 1.", []string{"revision"}, nil)
	policyLoaded = prometheus.NewDesc("portcullis_policy_loaded_timestamp_seconds",
		"When the policy in force was loaded.", nil, nil)
)

func (c *policyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- policyReloads
	ch <- policyLastReloadOK
	ch <- policyRevision
	ch <- policyLoaded
}

func (c *policyCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	ch <- prometheus.MustNewConstMetric(policyReloads, prometheus.CounterValue, float64(s.Reloads-s.Failures), "success")
	ch <- prometheus.MustNewConstMetric(policyReloads, prometheus.CounterValue, float64(s.Failures), "failure")
	ok := 1.0
	if s.LastError != "" {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(policyLastReloadOK, prometheus.GaugeValue, ok)
	ch <- prometheus.MustNewConstMetric(policyRevision, prometheus.GaugeValue, 1, s.Revision)
	ch <- prometheus.MustNewConstMetric(policyLoaded, prometheus.GaugeValue, float64(s.LoadedAt.Unix()))
}
