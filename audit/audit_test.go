package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// documentedKeys are the record's fields in the order docs/audit.md gives.
var documentedKeys = []string{
	"time", "kind", "request_id", "trace_id", "identity", "client_ip", "user_agent", "method", "endpoint",
	"model", "provider", "upstream_model", "model_served", "upstream_request_id", "decision",
	"stream", "status", "error_class", "error", "tools_removed", "prompt_tokens", "completion_tokens",
	"usage_reported", "usage_estimated", "attempts", "cost_usd", "price_missing", "latency_ms", "ttfb_ms", "ttft_ms", "upstream_ms", "authn_ms", "policy_ms", "outcome",
	"prev_hash", "hash",
}

var (
	identityKeys = []string{"type", "subject", "groups", "credential"}
	decisionKeys = []string{"evaluated", "allow", "reasons", "policy_revision", "max_tokens", "budgets", "rate_limits", "tools", "log_content"}
)

func fullRecord() *Record {
	return &Record{
		Time:              time.Date(2026, 11, 25, 14, 28, 0, 420642977, time.UTC),
		RequestID:         "req_ea6da16cf6ffbd6890311b6a",
		Identity:          Identity{Type: "apikey", Subject: "demo-user", Groups: []string{"demo", "eng"}, Credential: "demo"},
		ClientIP:          "127.0.0.1",
		UserAgent:         "curl/7.88.1",
		Method:            "POST",
		Endpoint:          "/v1/chat/completions",
		Model:             "fast",
		Provider:          "openai",
		UpstreamModel:     "gpt-4o-mini",
		ModelServed:       "gpt-4o-mini-2024-07-18",
		UpstreamRequestID: "req_upstream_1",
		Decision:          Decision{Evaluated: true, Allow: true, Reasons: []string{"ok"}, Revision: "e6156ee7983d337c"},
		Stream:            true,
		Status:            200,
		ErrorClass:        "upstream_stream_error",
		Error:             "the provider sent an error event",
		PromptTokens:      11,
		CompletionTokens:  22,
		UsageReported:     true,
		Latency:           543924 * time.Microsecond,
		TimeToFirstByte:   6132 * time.Microsecond,
		TimeToFirstToken:  7250 * time.Microsecond,
		UpstreamLatency:   5 * time.Millisecond,
		AuthLatency:       40 * time.Microsecond,
		PolicyLatency:     310 * time.Microsecond,
	}
}

// writeRecords writes records through a Log on a new file and returns the
// file's lines.
func writeRecords(t *testing.T, records ...*Record) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return readLines(t, path)
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("file does not end with a newline: %q", b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// objectKeys returns the keys of the JSON object in line, in order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestRecordJSON(t *testing.T) {
	lines := writeRecords(t, fullRecord())
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1: %q", len(lines), lines)
	}
	line := []byte(lines[0])
	if got := objectKeys(t, line); !reflect.DeepEqual(got, documentedKeys) {
		t.Errorf("keys = %v\nwant   %v", got, documentedKeys)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	if got := objectKeys(t, m["identity"]); !reflect.DeepEqual(got, identityKeys) {
		t.Errorf("identity keys = %v, want %v", got, identityKeys)
	}
	if got := objectKeys(t, m["decision"]); !reflect.DeepEqual(got, decisionKeys) {
		t.Errorf("decision keys = %v, want %v", got, decisionKeys)
	}

	var got struct {
		Time      time.Time `json:"time"`
		Kind      string    `json:"kind"`
		RequestID string    `json:"request_id"`
		Identity  struct {
			Type, Subject, Credential string
			Groups                    []string
		} `json:"identity"`
		ClientIP          string `json:"client_ip"`
		UserAgent         string `json:"user_agent"`
		Method            string `json:"method"`
		Endpoint          string `json:"endpoint"`
		Model             string `json:"model"`
		Provider          string `json:"provider"`
		UpstreamModel     string `json:"upstream_model"`
		ModelServed       string `json:"model_served"`
		UpstreamRequestID string `json:"upstream_request_id"`
		Decision          struct {
			Evaluated      bool     `json:"evaluated"`
			Allow          bool     `json:"allow"`
			Reasons        []string `json:"reasons"`
			PolicyRevision string   `json:"policy_revision"`
		} `json:"decision"`
		Stream           bool    `json:"stream"`
		Status           int     `json:"status"`
		ErrorClass       string  `json:"error_class"`
		Error            string  `json:"error"`
		PromptTokens     int     `json:"prompt_tokens"`
		CompletionTokens int     `json:"completion_tokens"`
		UsageReported    bool    `json:"usage_reported"`
		LatencyMS        float64 `json:"latency_ms"`
		TTFBMS           float64 `json:"ttfb_ms"`
	}
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	r := fullRecord()
	checks := []struct {
		field     string
		got, want any
	}{
		{"time", got.Time.Equal(r.Time), true},
		{"kind", got.Kind, "call"},
		{"request_id", got.RequestID, r.RequestID},
		{"identity.type", got.Identity.Type, "apikey"},
		{"identity.subject", got.Identity.Subject, "demo-user"},
		{"identity.groups", strings.Join(got.Identity.Groups, ","), "demo,eng"},
		{"identity.credential", got.Identity.Credential, "demo"},
		{"client_ip", got.ClientIP, r.ClientIP},
		{"user_agent", got.UserAgent, r.UserAgent},
		{"method", got.Method, r.Method},
		{"endpoint", got.Endpoint, r.Endpoint},
		{"model", got.Model, r.Model},
		{"provider", got.Provider, r.Provider},
		{"upstream_model", got.UpstreamModel, r.UpstreamModel},
		{"model_served", got.ModelServed, r.ModelServed},
		{"upstream_request_id", got.UpstreamRequestID, r.UpstreamRequestID},
		{"decision.evaluated", got.Decision.Evaluated, true},
		{"decision.allow", got.Decision.Allow, true},
		{"decision.reasons", strings.Join(got.Decision.Reasons, ","), "ok"},
		{"decision.policy_revision", got.Decision.PolicyRevision, r.Decision.Revision},
		{"stream", got.Stream, true},
		{"status", got.Status, 200},
		{"error_class", got.ErrorClass, r.ErrorClass},
		{"error", got.Error, r.Error},
		{"prompt_tokens", got.PromptTokens, 11},
		{"completion_tokens", got.CompletionTokens, 22},
		{"usage_reported", got.UsageReported, true},
		{"latency_ms", got.LatencyMS, 543.924},
		{"ttfb_ms", got.TTFBMS, 6.132},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.field, c.got, c.want)
		}
	}
	for _, want := range []string{`"ttft_ms":7.25,`, `"upstream_ms":5,`, `"authn_ms":0.04,`, `"policy_ms":0.31,`, `"outcome":"failed"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("record lacks %s: %s", want, lines[0])
		}
	}
	if !strings.HasPrefix(lines[0], `{"time":"2026-11-25T14:28:00.420642977Z","kind":"call",`) {
		t.Errorf("time is not RFC 3339 with nanoseconds: %s", lines[0])
	}
}

// A record of a call that ended early still has every field, with empty
// lists rather than nulls.
func TestEmptyRecordHasEveryField(t *testing.T) {
	lines := writeRecords(t, &Record{Time: time.Unix(0, 0)})
	line := []byte(lines[0])
	if got := objectKeys(t, line); !reflect.DeepEqual(got, documentedKeys) {
		t.Errorf("keys = %v, want %v", got, documentedKeys)
	}
	for _, want := range []string{
		`"identity":{"type":"","subject":"","groups":[],"credential":""}`,
		`"decision":{"evaluated":false,"allow":false,"reasons":[],"policy_revision":"","max_tokens":0,"budgets":[],` +
			`"rate_limits":{"requests_per_minute":0,"tokens_per_minute":0},"tools":{"restricted":false,"allowed":[],"on_violation":""},"log_content":false}`,
		`"tools_removed":[]`,
		`"status":0`, `"latency_ms":0`, `"ttfb_ms":0`, `"usage_reported":false`,
	} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("record lacks %s: %s", want, lines[0])
		}
	}
}

// Whatever the strings hold, a record stays one line of valid JSON.
func TestRecordEscaping(t *testing.T) {
	nasty := "line\nbreak \"quoted\" \\ tab\t \u2028 \x00 \xff\xfe end"
	r := fullRecord()
	r.UserAgent, r.Error, r.Model = nasty, nasty, nasty
	r.Decision.Reasons = []string{nasty, `model "x" is not allowed`}
	r.Identity.Groups = []string{nasty}
	lines := writeRecords(t, r, fullRecord())
	if len(lines) != 2 {
		t.Fatalf("two records made %d lines", len(lines))
	}
	var got struct {
		UserAgent string `json:"user_agent"`
		Decision  struct {
			Reasons []string `json:"reasons"`
		} `json:"decision"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", lines[0], err)
	}
	if !strings.HasPrefix(got.UserAgent, "line\nbreak \"quoted\" \\ tab\t \u2028 \x00 ") || got.Decision.Reasons[1] != `model "x" is not allowed` {
		t.Errorf("round trip = %q, %q", got.UserAgent, got.Decision.Reasons)
	}
}

func TestLogAppendsAndCreatesPrivately(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for i := range 2 {
		l, err := Open(Options{File: path})
		if err != nil {
			t.Fatal(err)
		}
		r := fullRecord()
		r.RequestID = fmt.Sprintf("req_%d", i)
		l.Write(r)
		l.Write(r)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	lines := readLines(t, path)
	if len(lines) != 4 || !strings.Contains(lines[0], `"req_0"`) || !strings.Contains(lines[3], `"req_1"`) {
		t.Errorf("lines after two opens = %q", lines)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v, want 0600", perm)
	}
}

func TestLogConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Options{File: path})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := fullRecord()
				r.RequestID = fmt.Sprintf("req_%d_%d", w, i)
				r.Error = strings.Repeat("x", 4096) // large enough to tear if unsynchronised
				l.Write(r)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != writers*each {
		t.Fatalf("got %d lines, want %d", len(lines), writers*each)
	}
	seen := map[string]bool{}
	for _, line := range lines {
		var r struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("torn line: %v", err)
		}
		seen[r.RequestID] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct records, want %d", len(seen), writers*each)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(Options{}); err == nil || !strings.Contains(err.Error(), "no sink") {
		t.Errorf("Open with no sink: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "missing-dir", "audit.log")
	if _, err := Open(Options{File: bad}); err == nil || !strings.Contains(err.Error(), "open audit file") {
		t.Errorf("Open(%s): %v", bad, err)
	}
}

// With both sinks, standard output gets the same line as the file.
func TestLogStdoutAndFile(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Options{File: path, Stdout: true})
	os.Stdout = stdout
	if err != nil {
		t.Fatal(err)
	}
	l.Write(fullRecord())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	out, err := io.ReadAll(bufio.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if string(out) != lines[0]+"\n" {
		t.Errorf("stdout = %q\nfile   = %q", out, lines[0])
	}
}
