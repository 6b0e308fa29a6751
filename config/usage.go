package config

import (
	"strings"
	"time"
)

// Usage configures spend control: where the usage counters live, the
// time zone of calendar budgets, and the price table (docs/budgets.md).
type Usage struct {
	// Store is "embedded" (counters in this process, kept in File) or a
	// redis:// or rediss:// URL shared by every replica. Zero value: embedded.
	Store string `yaml:"store"`
	// File is the embedded store's append-only log. Zero value:
	// portcullis-usage.log beside the configuration file.
	File string `yaml:"file"`
	// FlushInterval is how often the embedded store writes and fsyncs its
	// log: the most a kill -9 or power cut can lose. Zero value: 1s.
	FlushInterval Duration `yaml:"flush_interval"`
	// TimeZone is the IANA zone of calendar windows (day, week, month).
	// Zero value: UTC.
	TimeZone string `yaml:"time_zone"`
	// DefaultMaxTokens is the output reserved for a call that sets no
	// max_tokens and counts against a budget; the call is sent with it.
	// Zero value: 4096.
	DefaultMaxTokens int `yaml:"default_max_tokens"`
	// MinOutputTokens is the smallest answer worth sending: a call is
	// refused only when not even this much output fits. Zero value: 16.
	MinOutputTokens int `yaml:"min_output_tokens"`
	// OnStoreError is what happens when the store cannot be reached, for
	// budgets whose decision does not say: fail-closed (refuse the call
	// with 503) or local (count it against this replica's own limit, with
	// a warning). Zero value: fail-closed.
	OnStoreError string `yaml:"on_store_error"`
	// Prices override and extend the shipped price table, by model name.
	Prices map[string]Price `yaml:"prices"`
	// ReportRetention is how long the report counters (GET
	// /v1/usage/report) are kept after a day's last call. Zero value: 400 days.
	ReportRetention Duration `yaml:"report_retention"`
}

// Price is a model's price in US dollars per million tokens.
type Price struct {
	Input float64 `yaml:"input"`
	// Output is the price of completion tokens.
	Output float64 `yaml:"output"`
	// CachedInput is the price of prompt tokens read from the provider's
	// cache. Zero value: Input.
	CachedInput float64 `yaml:"cached_input"`
	// CacheWrite is the price of prompt tokens written to the cache
	// (Anthropic). Zero value: Input.
	CacheWrite float64 `yaml:"cache_write"`
	// Reasoning is the price of hidden reasoning tokens. Zero value: Output.
	Reasoning float64 `yaml:"reasoning"`
}

// Defaults of the usage section.
const (
	DefaultUsageFile          = "portcullis-usage.log"
	DefaultUsageFlushInterval = time.Second
)

// RedisStore reports whether the counters live in Redis.
func (u *Usage) RedisStore() bool {
	return strings.HasPrefix(u.Store, "redis://") || strings.HasPrefix(u.Store, "rediss://")
}

func (u *Usage) applyDefaults() {
	if u.Store == "" {
		u.Store = "embedded"
	}
	if u.File == "" {
		u.File = DefaultUsageFile
	}
	if u.FlushInterval == 0 {
		u.FlushInterval = Duration(DefaultUsageFlushInterval)
	}
	if u.OnStoreError == "" {
		u.OnStoreError = "fail-closed"
	}
}

func (c *Config) validateUsage(l *loader) {
	u := &c.Usage
	if u.Store != "embedded" && !u.RedisStore() {
		l.fail("usage.store", "%q is not a store; use embedded, or a redis:// or rediss:// URL shared by the replicas", u.Store)
	}
	if u.FlushInterval < 0 {
		l.fail("usage.flush_interval", "must not be negative; write it like 1s")
	}
	if u.ReportRetention < 0 {
		l.fail("usage.report_retention", "must not be negative; write it like 9600h")
	}
	if u.TimeZone != "" {
		if _, err := time.LoadLocation(u.TimeZone); err != nil {
			l.fail("usage.time_zone", "%q is not a known time zone; use an IANA name such as Europe/Berlin, or leave it out for UTC", u.TimeZone)
		}
	}
	if u.DefaultMaxTokens < 0 {
		l.fail("usage.default_max_tokens", "must not be negative")
	}
	if u.MinOutputTokens < 0 {
		l.fail("usage.min_output_tokens", "must not be negative")
	}
	if u.OnStoreError != "fail-closed" && u.OnStoreError != "local" {
		l.fail("usage.on_store_error", "%q is not a choice; use fail-closed or local", u.OnStoreError)
	}
	for name, p := range u.Prices {
		path := "usage.prices." + name
		for _, v := range []float64{p.Input, p.Output, p.CachedInput, p.CacheWrite, p.Reasoning} {
			if v < 0 {
				l.fail(path, "prices are dollars per million tokens and must not be negative")
				break
			}
		}
		if p.Input == 0 && p.Output == 0 {
			l.fail(path, "sets no price; give input and output in dollars per million tokens")
		}
	}
}

// Location is the time zone of calendar windows.
func (u *Usage) Location() *time.Location {
	if loc, err := time.LoadLocation(u.TimeZone); err == nil && u.TimeZone != "" {
		return loc
	}
	return time.UTC
}
