package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Target is one place a model's calls may go.
type Target struct {
	// Provider is the name of a declared provider.
	Provider string `yaml:"provider"`
	// UpstreamModel is the model name sent to the provider. Zero value:
	// the model's name.
	UpstreamModel string `yaml:"upstream_model"`
	// Weight is the target's share of calls under the weighted strategy.
	// Zero value: 1.
	Weight int `yaml:"weight"`
	// MaxTokens caps the output of calls this target serves (a smaller
	// model's limit, say), below the client's and the policy's caps.
	// Zero value: no cap of its own.
	MaxTokens int `yaml:"max_tokens"`
	// Timeouts override the model's for this target, field by field.
	Timeouts Timeouts `yaml:"timeouts"`
}

// Strategies are the values Model.Strategy may take.
var Strategies = []string{"fallback", "weighted", "least-busy"}

// Retry says how the gateway tries a failing target again. Only failures
// that may pass are retried: 429, 5xx (Anthropic's 529 included),
// connection errors and time-outs before the first byte.
type Retry struct {
	// Attempts is how many times each target is tried, the first time
	// included, before the call moves to the next target. Zero value: 1
	// (no retry).
	Attempts int `yaml:"attempts"`
	// Backoff is the wait before the first retry; each later wait doubles,
	// up to MaxBackoff, and every wait is drawn at random between half of
	// it and all of it (jitter). Zero value: 250ms.
	Backoff Duration `yaml:"backoff"`
	// MaxBackoff bounds one wait. Zero value: 5s.
	MaxBackoff Duration `yaml:"max_backoff"`
	// MaxRetryAfter is the longest Retry-After the gateway waits for; a
	// provider asking for longer is left for the next target at once.
	// Zero value: 30s.
	MaxRetryAfter Duration `yaml:"max_retry_after"`
}

// Timeouts bound one attempt on a target. Zero values: no bound of the
// gateway's own beyond the transport's (10s to connect). The client's
// cancellation always ends an attempt, whatever these say.
type Timeouts struct {
	// Connect bounds opening a new connection to the provider (TCP and TLS).
	Connect Duration `yaml:"connect"`
	// FirstByte bounds the wait from sending the request to the first
	// byte of the provider's answer (its body, for a stream). Running out
	// is a retryable failure: nothing has reached the client yet.
	FirstByte Duration `yaml:"first_byte"`
	// Idle bounds the provider's silence: how long one read of its
	// answer waits for data (not the time spent writing to a slow
	// client). Running out ends a stream with an error event.
	Idle Duration `yaml:"idle"`
	// Total bounds the whole attempt, the answer's last byte included.
	Total Duration `yaml:"total"`
}

// Over returns t with the fields that o sets replaced by o's.
func (t Timeouts) Over(o Timeouts) Timeouts {
	if o.Connect != 0 {
		t.Connect = o.Connect
	}
	if o.FirstByte != 0 {
		t.FirstByte = o.FirstByte
	}
	if o.Idle != 0 {
		t.Idle = o.Idle
	}
	if o.Total != 0 {
		t.Total = o.Total
	}
	return t
}

// Cooldown is passive health checking: a target whose calls fail
// Failures times in a row is skipped for Period, then one call probes it;
// the probe's success puts it back, its failure starts another Period.
type Cooldown struct {
	// Failures is how many consecutive retryable failures take a target
	// out of rotation. Zero value: cooldown off.
	Failures int `yaml:"failures"`
	// Period is how long a target stays out. Zero value: 30s.
	Period Duration `yaml:"period"`
}

// Routing defaults applied by Load.
const (
	DefaultRetryBackoff       = 250 * time.Millisecond
	DefaultRetryMaxBackoff    = 5 * time.Second
	DefaultRetryMaxRetryAfter = 30 * time.Second
	DefaultCooldownPeriod     = 30 * time.Second
)

func (m *Model) applyDefaults() {
	if m.UpstreamModel == "" {
		m.UpstreamModel = m.Name
	}
	if len(m.Targets) == 0 && m.Provider != "" {
		m.Targets = []Target{{Provider: m.Provider, UpstreamModel: m.UpstreamModel}}
		m.shorthand = true
	}
	for i := range m.Targets {
		t := &m.Targets[i]
		if t.UpstreamModel == "" {
			t.UpstreamModel = m.Name
		}
		if t.Weight == 0 {
			t.Weight = 1
		}
	}
	if m.Strategy == "" {
		m.Strategy = "fallback"
	}
	r := &m.Retry
	if r.Attempts == 0 {
		r.Attempts = 1
	}
	if r.Backoff == 0 {
		r.Backoff = Duration(DefaultRetryBackoff)
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = Duration(DefaultRetryMaxBackoff)
	}
	if r.MaxRetryAfter == 0 {
		r.MaxRetryAfter = Duration(DefaultRetryMaxRetryAfter)
	}
	if m.Cooldown.Period == 0 {
		m.Cooldown.Period = Duration(DefaultCooldownPeriod)
	}
}

// validateModels checks the models section: unique names, targets that
// name declared providers, and routing settings that make sense.
func (c *Config) validateModels(l *loader, providers map[string]bool) {
	models := map[string]bool{}
	for _, m := range c.Models {
		models[m.Name] = true
	}
	seen := map[string]bool{}
	for i, m := range c.Models {
		path := fmt.Sprintf("models[%d]", i)
		switch {
		case m.Name == "":
			l.fail(path+".name", "is required; it is the name callers put in the request's model field")
		case seen[m.Name]:
			l.fail(path+".name", "%q is declared twice; each model name must be unique", m.Name)
		}
		seen[m.Name] = true
		switch {
		case m.Provider != "" && !m.shorthand:
			l.fail(path+".provider", "is given with targets; name the provider in each target instead, or give only provider for a model of one target")
		case !m.shorthand && len(m.Targets) > 0 && m.UpstreamModel != m.Name:
			l.fail(path+".upstream_model", "is given with targets; give each target its upstream_model instead")
		case len(m.Targets) == 0:
			l.fail(path+".provider", "is required; name the provider that serves the model (one of %s), or list targets", strings.Join(c.providerNames(), ", "))
		}
		for j, t := range m.Targets {
			tpath := fmt.Sprintf("%s.targets[%d]", path, j)
			if m.shorthand {
				tpath = path // the one-provider form
			}
			if !providers[t.Provider] {
				l.fail(tpath+".provider", "%q is not a declared provider; use one of %s", t.Provider, strings.Join(c.providerNames(), ", "))
			}
			if t.Weight < 0 {
				l.fail(tpath+".weight", "%d is negative; give a share such as 1 or 3", t.Weight)
			}
			if t.MaxTokens < 0 {
				l.fail(tpath+".max_tokens", "%d is negative; give a cap such as 1024, or leave it out", t.MaxTokens)
			}
			validateTimeouts(l, tpath+".timeouts", t.Timeouts)
		}
		if !slices.Contains(Strategies, m.Strategy) {
			l.fail(path+".strategy", "%q is not a strategy; use one of %s", m.Strategy, strings.Join(Strategies, ", "))
		}
		if m.Retry.Attempts < 0 {
			l.fail(path+".retry.attempts", "%d is negative; 1 tries each target once, 3 retries it twice", m.Retry.Attempts)
		}
		for _, d := range []struct {
			name string
			v    Duration
		}{{"backoff", m.Retry.Backoff}, {"max_backoff", m.Retry.MaxBackoff}, {"max_retry_after", m.Retry.MaxRetryAfter}} {
			if d.v < 0 {
				l.fail(path+".retry."+d.name, "must not be negative; write it like 250ms or 5s")
			}
		}
		validateTimeouts(l, path+".timeouts", m.Timeouts)
		if m.Cooldown.Failures < 0 {
			l.fail(path+".cooldown.failures", "%d is negative; give a count such as 3, or leave it out to turn cooldown off", m.Cooldown.Failures)
		}
		if m.Cooldown.Period < 0 {
			l.fail(path+".cooldown.period", "must not be negative; write it like 30s")
		}
		switch {
		case m.ContextFallback == "":
		case m.ContextFallback == m.Name:
			l.fail(path+".context_fallback", "names the model itself; name a model with a larger context window")
		case !models[m.ContextFallback]:
			l.fail(path+".context_fallback", "%q is not a declared model; name one of the models section", m.ContextFallback)
		}
	}
}

func validateTimeouts(l *loader, path string, t Timeouts) {
	for _, d := range []struct {
		name string
		v    Duration
	}{{"connect", t.Connect}, {"first_byte", t.FirstByte}, {"idle", t.Idle}, {"total", t.Total}} {
		if d.v < 0 {
			l.fail(path+"."+d.name, "must not be negative; write it like 10s, or leave it out for no bound")
		}
	}
}
