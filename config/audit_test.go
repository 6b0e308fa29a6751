package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestAuditSinks(t *testing.T) {
	t.Setenv("SIEM_TOKEN", "Bearer s3cret")
	src := `audit:
  file: audit.log
  on_failure: fail-closed
  rotate_bytes: 1048576
  rotate_every: 24h
  fsync: 1s
  checkpoint_key: k
  sinks:
    - type: webhook
      url: https://siem.example.com/ingest
      headers: {Authorization: "${SIEM_TOKEN}"}
      batch_size: 50
      on_failure: drop-and-count
    - type: file
      path: more.log
      fsync: always
`
	cfg, err := Parse("/srv/pc/config.yaml", []byte(src), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Audit
	if a.OnFailure != "fail-closed" || a.RotateBytes != 1<<20 || a.RotateEvery.Std() != 24*time.Hour || FsyncInterval(a.Fsync) != time.Second ||
		len(a.Sinks) != 2 || a.Sinks[0].Headers["Authorization"].Reveal() != "Bearer s3cret" || a.Sinks[0].BatchSize != 50 ||
		a.Sinks[1].Path != "/srv/pc/more.log" || FsyncInterval(a.Sinks[1].Fsync) != -1 {
		t.Errorf("audit = %+v", a)
	}

	for _, tc := range []struct{ src, path, text string }{
		{"audit:\n  file: a.log\n  on_failure: panic\n", "audit.on_failure", "not a failure mode"},
		{"audit:\n  file: a.log\n  fsync: sometimes\n", "audit.fsync", "not never, always or an interval"},
		{"audit:\n  sinks:\n    - type: kafka\n", "audit.sinks[0].type", "not a sink type"},
		{"audit:\n  sinks:\n    - type: webhook\n      url: ftp://x\n", "audit.sinks[0].url", "not an http(s) URL"},
		{"audit:\n  sinks:\n    - type: file\n", "audit.sinks[0].path", "is required"},
		{"audit:\n  sinks:\n    - type: stdout\n      rotate_bytes: 5\n", "audit.sinks[0]", "for file sinks only"},
		{"audit:\n  stdout: true\n  queue_size: -1\n", "audit.queue_size", "negative"},
	} {
		_, err := Parse("c.yaml", []byte(tc.src), os.LookupEnv)
		var errs *Errors
		if !errors.As(err, &errs) {
			t.Errorf("%q: error %v", tc.src, err)
			continue
		}
		found := false
		for _, fe := range errs.List {
			found = found || (fe.Path == tc.path && strings.Contains(fe.Problem, tc.text))
		}
		if !found {
			t.Errorf("%q: %v; want %s: %s", tc.src, err, tc.path, tc.text)
		}
	}
}
