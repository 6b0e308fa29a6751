package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

const routingProviders = minimal + `providers:
  - name: openai
    type: openai
    base_url: https://api.openai.com/v1
  - name: anthropic
    type: anthropic
  - name: azure
    type: azure
    base_url: https://r.openai.azure.com
`

// A model of one provider, as before, is a model of one target with the
// routing defaults: no retry, no cooldown, no time-outs of its own.
func TestOneProviderModelIsOneTarget(t *testing.T) {
	c := mustParse(t, routingProviders+"models:\n  - name: gpt-4o-mini\n    provider: openai\n  - name: fast\n    provider: openai\n    upstream_model: gpt-4.1-nano\n", nil)
	for i, want := range []Target{{Provider: "openai", UpstreamModel: "gpt-4o-mini", Weight: 1}, {Provider: "openai", UpstreamModel: "gpt-4.1-nano", Weight: 1}} {
		m := c.Models[i]
		if len(m.Targets) != 1 || m.Targets[0] != want {
			t.Errorf("%s targets = %+v, want [%+v]", m.Name, m.Targets, want)
		}
		if m.Strategy != "fallback" || m.Retry.Attempts != 1 || m.Cooldown.Failures != 0 || m.Timeouts != (Timeouts{}) {
			t.Errorf("%s routing = %s %+v %+v %+v", m.Name, m.Strategy, m.Retry, m.Cooldown, m.Timeouts)
		}
		if m.Retry.Backoff.Std() != DefaultRetryBackoff || m.Retry.MaxBackoff.Std() != DefaultRetryMaxBackoff ||
			m.Retry.MaxRetryAfter.Std() != DefaultRetryMaxRetryAfter || m.Cooldown.Period.Std() != DefaultCooldownPeriod {
			t.Errorf("%s defaults = %+v %+v", m.Name, m.Retry, m.Cooldown)
		}
	}
}

// A target's time-outs override the model's field by field.
func TestTargetTimeoutsOverModels(t *testing.T) {
	got := Timeouts{Connect: Duration(time.Second), Idle: Duration(time.Minute)}.Over(Timeouts{Idle: Duration(time.Second), Total: Duration(time.Hour)})
	want := Timeouts{Connect: Duration(time.Second), Idle: Duration(time.Second), Total: Duration(time.Hour)}
	if got != want {
		t.Errorf("Over = %+v, want %+v", got, want)
	}
}

func TestRoutingValidation(t *testing.T) {
	for _, tc := range []struct{ models, path, says string }{
		{"  - name: m\n", "models[0].provider", "is required"},
		{"  - name: m\n    provider: openai\n    targets: [{provider: anthropic}]\n", "models[0].provider", "is given with targets"},
		{"  - name: m\n    upstream_model: x\n    targets: [{provider: openai}]\n", "models[0].upstream_model", "give each target its upstream_model"},
		{"  - name: m\n    provider: nope\n", "models[0].provider", `"nope" is not a declared provider`},
		{"  - name: m\n    targets: [{provider: openai}, {provider: nope}]\n", "models[0].targets[1].provider", `"nope" is not a declared provider`},
		{"  - name: m\n    strategy: round-robin\n    targets: [{provider: openai}]\n", "models[0].strategy", "use one of fallback, weighted, least-busy"},
		{"  - name: m\n    targets: [{provider: openai, weight: -1}]\n", "models[0].targets[0].weight", "negative"},
		{"  - name: m\n    targets: [{provider: openai, max_tokens: -5}]\n", "models[0].targets[0].max_tokens", "negative"},
		{"  - name: m\n    targets: [{provider: openai, timeouts: {idle: -1s}}]\n", "models[0].targets[0].timeouts.idle", "must not be negative"},
		{"  - name: m\n    provider: openai\n    timeouts: {first_byte: -1s}\n", "models[0].timeouts.first_byte", "must not be negative"},
		{"  - name: m\n    provider: openai\n    retry: {attempts: -1}\n", "models[0].retry.attempts", "negative"},
		{"  - name: m\n    provider: openai\n    retry: {max_retry_after: -1s}\n", "models[0].retry.max_retry_after", "must not be negative"},
		{"  - name: m\n    provider: openai\n    cooldown: {failures: -2}\n", "models[0].cooldown.failures", "negative"},
		{"  - name: m\n    provider: openai\n    context_fallback: m\n", "models[0].context_fallback", "names the model itself"},
		{"  - name: m\n    provider: openai\n    context_fallback: big\n", "models[0].context_fallback", `"big" is not a declared model`},
		{"  - name: m\n    provider: openai\n  - name: m\n    provider: openai\n", "models[1].name", "declared twice"},
	} {
		wantFieldError(t, routingProviders+"models:\n"+tc.models, tc.path, tc.says)
	}
}

// The commented routing example of config.example.yaml loads once
// uncommented.
func TestExampleRoutingBlock(t *testing.T) {
	src, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(src), "\n# models:\n")
	if !found {
		t.Fatal("config.example.yaml has no commented routing block")
	}
	var lines []string
	for _, l := range strings.Split("# models:\n"+block, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
	}
	c := mustParse(t, routingProviders+strings.Join(lines, "\n")+"\n", nil)
	if len(c.Models) != 3 {
		t.Fatalf("%d models, want 3", len(c.Models))
	}
	smart := c.Models[0]
	if smart.Name != "smart" || len(smart.Targets) != 2 || smart.Targets[1].MaxTokens != 4096 || smart.Retry.Attempts != 2 ||
		smart.Cooldown.Failures != 3 || smart.ContextFallback != "long-context" || smart.Targets[0].Timeouts.FirstByte.Std() != 20*time.Second {
		t.Errorf("smart = %+v", smart)
	}
	if b := c.Models[2]; b.Strategy != "weighted" || b.Targets[0].Weight != 3 || b.Targets[1].Weight != 1 {
		t.Errorf("balanced = %+v", b)
	}
}
