package config

import (
	"fmt"
	"net/url"
	"slices"
	"time"
)

// AuditModes are the values of on_failure.
var AuditModes = []string{"fail-closed", "block", "drop-and-count"}

// FsyncInterval reads an fsync setting: 0 for never, -1 for after every
// batch, else the interval. It accepts what validateAudit accepts.
func FsyncInterval(s string) time.Duration {
	switch s {
	case "", "never":
		return 0
	case "always":
		return -1
	}
	d, _ := time.ParseDuration(s)
	return d
}

func (c *Config) validateAudit(l *loader) {
	a := &c.Audit
	if a.File == "" && !a.Stdout && len(a.Sinks) == 0 {
		l.fail("audit", "no sink is enabled; set audit.file to a path, audit.stdout to true, or list audit.sinks, since every call must leave a record")
	}
	validateSinkOptions(l, "audit", &a.AuditSinkOptions)
	if a.ContentMaxBytes < 0 {
		l.fail("audit.content_max_bytes", "%d is negative; give the bytes of prompt and of completion a record may keep, such as 32768", a.ContentMaxBytes)
	}
	for i := range a.Sinks {
		s := &a.Sinks[i]
		path := fmt.Sprintf("audit.sinks[%d]", i)
		validateSinkOptions(l, path, &s.AuditSinkOptions)
		switch s.Type {
		case "file":
			if s.Path == "" {
				l.fail(path+".path", "is required for a file sink; give the file to append records to")
			}
		case "stdout":
		case "webhook":
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				l.fail(path+".url", "%q is not an http(s) URL; give the endpoint that takes the records, such as https://siem.example.com/ingest", s.URL)
			}
		default:
			l.fail(path+".type", "%q is not a sink type; use file, stdout or webhook", s.Type)
		}
		if s.Type != "webhook" && (s.URL != "" || len(s.Headers) > 0 || s.BatchSize != 0 || s.FlushInterval != 0 || s.Retries != 0 || s.Timeout != 0) {
			l.fail(path, "url, headers, batch_size, flush_interval, retries and timeout are for webhook sinks only")
		}
		if s.Type != "file" && (s.Path != "" || s.RotateBytes != 0 || s.RotateEvery != 0 || s.Fsync != "") {
			l.fail(path, "path, rotate_bytes, rotate_every and fsync are for file sinks only")
		}
		if s.BatchSize < 0 || s.FlushInterval < 0 || s.Timeout < 0 || s.Retries < -1 {
			l.fail(path, "batch_size, flush_interval and timeout must not be negative, and retries is -1 (none) or more")
		}
	}
}

func validateSinkOptions(l *loader, path string, o *AuditSinkOptions) {
	if o.OnFailure != "" && !slices.Contains(AuditModes, o.OnFailure) {
		l.fail(path+".on_failure", "%q is not a failure mode; use fail-closed (refuse calls while records cannot be written), block (calls wait) or drop-and-count", o.OnFailure)
	}
	if o.QueueSize < 0 {
		l.fail(path+".queue_size", "%d is negative; give the number of records that may wait, such as 8192", o.QueueSize)
	}
	if o.RotateBytes < 0 {
		l.fail(path+".rotate_bytes", "%d is negative; give a size in bytes such as 104857600 (100 MiB), or leave it out", o.RotateBytes)
	}
	if o.RotateEvery < 0 {
		l.fail(path+".rotate_every", "must not be negative; write it like 24h")
	}
	switch o.Fsync {
	case "", "never", "always":
	default:
		if d, err := time.ParseDuration(o.Fsync); err != nil || d <= 0 {
			l.fail(path+".fsync", "%q is not never, always or an interval such as 1s", o.Fsync)
		}
	}
}
