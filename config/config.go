// Package config owns Portcullis's configuration file: its schema, the
// expansion of ${VAR} references, strict decoding (unknown fields are errors)
// and validation whose every message names the field path, what is wrong and
// what would be right.
package config

import (
	"fmt"
	"time"
)

// Config is the whole configuration file.
type Config struct {
	// Server holds the listener and the limits of the HTTP server.
	Server Server `yaml:"server"`
	// Log sets up the application log (not the audit log).
	Log Log `yaml:"log"`
	// Providers are the upstream LLM services the gateway can call.
	Providers []Provider `yaml:"providers"`
	// Models are the model names callers may ask for, each served by one provider.
	Models []Model `yaml:"models"`
	// Auth declares the credentials the gateway accepts.
	Auth Auth `yaml:"auth"`
	// Identity declares trusted token issuers and gateway-minted tokens (identity.go).
	Identity Identity `yaml:"identity"`
	// Policy locates the Rego policies that decide every call.
	Policy Policy `yaml:"policy"`
	// Audit says where the audit records go.
	Audit Audit `yaml:"audit"`
	// Metrics configures the Prometheus listener.
	Metrics Metrics `yaml:"metrics"`
	// SSO configures browser sign-in, sessions and the portal (sso.go).
	SSO SSO `yaml:"sso"`
	// Tracing configures OpenTelemetry traces, exported with OTLP (tracing.go).
	Tracing Tracing `yaml:"tracing"`
	// Usage configures budgets, rate limits and prices (usage.go).
	Usage Usage `yaml:"usage"`

	// Path is the file the configuration was loaded from; relative paths in
	// the file are resolved against its folder.
	Path string `yaml:"-"`
}

// Server configures the HTTP listener.
type Server struct {
	// Listen is the address to listen on. Zero value: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// ShutdownGrace bounds how long in-flight requests and streams may run
	// after SIGTERM or SIGINT before they are cut. Zero value: 30s.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// MaxBodyBytes is the largest request body accepted. Zero value: 10 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout bounds the time to read request headers. Zero value: 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// TrustedProxies are the networks (CIDRs) of the load balancers in
	// front of the gateway. A request from one of them is taken to come
	// from the address it names in X-Forwarded-For; the header is ignored
	// from anyone else, so clients cannot choose their own address.
	// Zero value: none; the client address is the connection's peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Log configures the application log.
type Log struct {
	// Level is debug, info, warn or error. Zero value: info.
	Level string `yaml:"level"`
}

// Provider is one upstream LLM service.
type Provider struct {
	// Name is how models refer to this provider.
	Name string `yaml:"name"`
	// Type is the provider's wire format: demo, openai, anthropic, one of
	// the OpenAI-compatible providers whose quirks the gateway handles
	// (azure, groq, mistral, perplexity, ollama-openai (Ollama's /v1 API)
	// and vllm), or one of the native formats it translates: gemini,
	// cohere, ollama (Ollama's own /api/chat) and bedrock (AWS Bedrock's
	// Converse API).
	Type string `yaml:"type"`
	// BaseURL is the upstream's API root, for example https://api.openai.com/v1.
	// Zero value: the provider's public API root (DefaultBaseURL); azure,
	// vllm and bedrock have none and need one (an Azure resource's
	// endpoint, https://{resource}.openai.azure.com; Bedrock's regional
	// runtime endpoint, https://bedrock-runtime.{region}.amazonaws.com).
	BaseURL string `yaml:"base_url"`
	// APIVersion is the api-version query parameter of an azure provider.
	// Zero value: DefaultAzureAPIVersion.
	APIVersion string `yaml:"api_version"`
	// APIKey is injected into every upstream request. When the key is empty
	// after ${VAR} expansion, the provider is disabled with a warning.
	APIKey Secret `yaml:"api_key"`
	// Headers are extra headers sent upstream on every request.
	Headers map[string]Secret `yaml:"headers"`
	// WordDelay is the pause between streamed words of the demo provider.
	// Zero value: 25ms.
	WordDelay Duration `yaml:"word_delay"`

	// keyDeclared records that the file has an api_key line for this
	// provider, so an empty value means "disabled", not "needs no key".
	keyDeclared bool
}

// Model is a model name callers may ask for (a real model's name or an
// alias such as "smart") and where its calls go: one provider, or an
// ordered list of targets with a strategy to choose among them, retries,
// time-outs and cooldown (routing.go; docs/routing.md).
type Model struct {
	// Name is what callers put in the request's "model" field.
	Name string `yaml:"name"`
	// Provider is the name of the provider that serves it, for a model of
	// one target; Load turns it into Targets[0]. Leave it out when
	// Targets is given.
	Provider string `yaml:"provider"`
	// UpstreamModel is the model name sent to Provider. Zero value: Name.
	UpstreamModel string `yaml:"upstream_model"`
	// Targets are where calls may go, in order of preference.
	Targets []Target `yaml:"targets"`
	// Strategy chooses the target a call tries first: fallback (in
	// order), weighted (at random, by weight) or least-busy (fewest calls
	// in flight); the other targets follow as fallbacks. Zero value: fallback.
	Strategy string `yaml:"strategy"`
	// Retry says how often a target is tried again before the next one.
	Retry Retry `yaml:"retry"`
	// Timeouts bound each attempt on every target; a target's own
	// timeouts override them field by field.
	Timeouts Timeouts `yaml:"timeouts"`
	// Cooldown takes a target that keeps failing out of rotation for a
	// while. Zero value: off.
	Cooldown Cooldown `yaml:"cooldown"`
	// ContextFallback names another model whose targets get the call when
	// this model's provider says the prompt is longer than its context
	// window (context_length_exceeded). Zero value: that error is returned.
	ContextFallback string `yaml:"context_fallback"`

	// shorthand records that Targets came from Provider, for errors that
	// name the field the file has.
	shorthand bool
}

// Auth declares accepted credentials.
type Auth struct {
	// APIKeys are gateway API keys, stored as hashes.
	APIKeys []APIKey `yaml:"api_keys"`
}

// APIKey is one gateway API key and the identity it stands for.
type APIKey struct {
	// Name identifies the key in logs and audit records.
	Name string `yaml:"name"`
	// Hash is "sha256:" followed by the hex SHA-256 of the key, as printed by
	// `portcullis keys generate`.
	Hash string `yaml:"hash"`
	// Subject is the identity's subject.
	Subject string `yaml:"subject"`
	// Groups are the identity's groups, as the policy sees them.
	Groups []string `yaml:"groups"`
	// Expires is when the key stops working, as an RFC 3339 time. Zero value: never.
	Expires string `yaml:"expires,omitempty"`
	// Models narrows the key to these model names, which the policy sees as
	// input.identity.claims.models. Zero value: no narrowing.
	Models []string `yaml:"models,omitempty"`
	// Description says what the key is for.
	Description string `yaml:"description,omitempty"`
	// Demo marks a key whose value is published (the quickstart's key). The
	// gateway warns while one is enabled and refuses to listen on a
	// non-loopback address with it.
	Demo bool `yaml:"demo"`
}

// Policy locates the Rego policies.
type Policy struct {
	// Dir is the folder of .rego and data files. Zero value: policies.
	Dir string `yaml:"dir"`
	// Reload is "watch" (reload when a file in Dir changes, and on SIGHUP)
	// or "signal" (only on SIGHUP). Zero value: watch.
	Reload string `yaml:"reload"`
	// RequireTests makes every load and reload run the folder's
	// _test.rego tests and refuse a policy whose tests fail.
	RequireTests bool `yaml:"require_tests"`
}

// Metrics configures the Prometheus /metrics listener, kept apart from
// the API listener.
type Metrics struct {
	// Listen is the address of the /metrics listener, such as
	// 127.0.0.1:9090. Zero value: no metrics listener.
	Listen string `yaml:"listen"`
}

// Audit says where audit records are written (docs/audit.md#sinks).
type Audit struct {
	// Stdout writes records to standard output, in mode block.
	Stdout bool `yaml:"stdout"`
	// File appends records to this file. The sink options below (mode,
	// queue, rotation, fsync) apply to it.
	File string `yaml:"file"`
	// AuditSinkOptions are the options of File.
	AuditSinkOptions `yaml:",inline"`
	// CheckpointKey, when set, signs the checkpoint that starts each
	// rotated-to file (HMAC-SHA256). Zero value: checkpoints are unsigned.
	CheckpointKey Secret `yaml:"checkpoint_key"`
	// Sinks are further sinks: file, stdout or webhook.
	Sinks []AuditSink `yaml:"sinks"`
	// ContentMaxBytes bounds the prompt and the completion each that a
	// record keeps when the policy's decision says log_content; longer
	// content is cut and the record says content_truncated. Zero value:
	// 32768 (32 KiB).
	ContentMaxBytes int `yaml:"content_max_bytes"`
}

// AuditSink is one audit sink of audit.sinks.
type AuditSink struct {
	// Type is file, stdout or webhook.
	Type string `yaml:"type"`
	// Path is the file of a file sink.
	Path string `yaml:"path"`
	// URL receives a webhook sink's records, POSTed as NDJSON.
	URL string `yaml:"url"`
	// Headers are sent with every webhook request (an Authorization
	// header, say).
	Headers map[string]Secret `yaml:"headers"`
	// BatchSize is the most records a webhook request carries. Zero value: 100.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is how long a webhook waits to fill a batch. Zero value: 1s.
	FlushInterval Duration `yaml:"flush_interval"`
	// Retries is how often a failed webhook request is tried again, with
	// exponential backoff, before the sink's mode applies. Zero value: 3.
	Retries int `yaml:"retries"`
	// Timeout bounds one webhook request. Zero value: 10s.
	Timeout Duration `yaml:"timeout"`

	AuditSinkOptions `yaml:",inline"`
}

// AuditSinkOptions are the options every sink type shares, and those of
// files.
type AuditSinkOptions struct {
	// OnFailure is fail-closed, block or drop-and-count. Zero value:
	// fail-closed for files, block for stdout, drop-and-count for webhooks.
	OnFailure string `yaml:"on_failure"`
	// QueueSize bounds the records waiting to be written. Zero value: 8192.
	QueueSize int `yaml:"queue_size"`
	// RotateBytes starts a new file before the current one would grow
	// past this size. Zero value: no rotation by size.
	RotateBytes int64 `yaml:"rotate_bytes"`
	// RotateEvery starts a new file when the current one is older. Zero
	// value: no rotation by age.
	RotateEvery Duration `yaml:"rotate_every"`
	// Fsync is "never" (the OS writes back), "always" (after every batch
	// of records) or an interval such as 1s. Zero value: never.
	Fsync string `yaml:"fsync"`
}

// Secret is a string that never prints: fmt, zap and encoders show
// "[redacted]" so that provider keys cannot leak through a log line.
type Secret string

// String hides the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText hides the value from encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret's value, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// Duration is a time.Duration written as "30s", "1m30s" or "250ms".
type Duration time.Duration

// UnmarshalText parses Go's duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like 30s, 1m or 250ms", b)
	}
	*d = Duration(v)
	return nil
}

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Defaults applied by Load.
const (
	DefaultListen            = "127.0.0.1:8080"
	DefaultShutdownGrace     = 30 * time.Second
	DefaultMaxBodyBytes      = 10 << 20
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultWordDelay         = 25 * time.Millisecond
	DefaultPolicyDir         = "policies"
	DefaultContentMaxBytes   = 32 << 10
)

// ProviderTypes are the values Provider.Type may take.
var ProviderTypes = []string{"demo", "openai", "anthropic", "azure", "groq", "mistral", "perplexity", "ollama-openai", "vllm",
	"gemini", "cohere", "ollama", "bedrock"}

// DefaultAnthropicBaseURL is the base_url of an anthropic provider that sets none.
const DefaultAnthropicBaseURL = "https://api.anthropic.com"

// DefaultBaseURL is the base_url of a provider of type typ that sets
// none: the provider's public API (a local Ollama for ollama and
// ollama-openai), or "" for the types that need one (openai, azure, vllm,
// bedrock) or take none (demo). An
// openai provider names its own, since the type also serves any
// OpenAI-compatible upstream.
func DefaultBaseURL(typ string) string {
	switch typ {
	case "anthropic":
		return DefaultAnthropicBaseURL
	case "groq":
		return "https://api.groq.com/openai/v1"
	case "mistral":
		return "https://api.mistral.ai/v1"
	case "perplexity":
		return "https://api.perplexity.ai"
	case "ollama-openai":
		return "http://localhost:11434/v1"
	case "gemini":
		return "https://generativelanguage.googleapis.com/v1beta"
	case "cohere":
		return "https://api.cohere.com"
	case "ollama":
		return "http://localhost:11434"
	}
	return ""
}

// DefaultAzureAPIVersion is the api-version of an azure provider that sets
// none: the GA version that has stream_options and max_completion_tokens.
const DefaultAzureAPIVersion = "2024-10-21"

func (c *Config) applyDefaults() {
	if c.Server.Listen == "" {
		c.Server.Listen = DefaultListen
	}
	if c.Server.ShutdownGrace == 0 {
		c.Server.ShutdownGrace = Duration(DefaultShutdownGrace)
	}
	if c.Server.MaxBodyBytes == 0 {
		c.Server.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Server.ReadHeaderTimeout == 0 {
		c.Server.ReadHeaderTimeout = Duration(DefaultReadHeaderTimeout)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Policy.Dir == "" {
		c.Policy.Dir = DefaultPolicyDir
	}
	if c.Policy.Reload == "" {
		c.Policy.Reload = "watch"
	}
	if c.Audit.ContentMaxBytes == 0 {
		c.Audit.ContentMaxBytes = DefaultContentMaxBytes
	}
	c.Tracing.applyDefaults()
	c.Usage.applyDefaults()
	for i := range c.Providers {
		p := &c.Providers[i]
		if p.Type == "demo" && p.WordDelay == 0 {
			p.WordDelay = Duration(DefaultWordDelay)
		}
		if p.BaseURL == "" {
			p.BaseURL = DefaultBaseURL(p.Type)
		}
		if p.Type == "azure" && p.APIVersion == "" {
			p.APIVersion = DefaultAzureAPIVersion
		}
	}
	for i := range c.Models {
		c.Models[i].applyDefaults()
	}
}
