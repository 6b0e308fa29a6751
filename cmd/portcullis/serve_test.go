package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer for a writer and a reader on two goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logMessages reads a log of JSON lines, failing on any other line, and
// returns each line's level and message.
func logMessages(t *testing.T, log string) (levels, msgs []string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var l struct{ Level, Msg string }
		if err := json.Unmarshal([]byte(line), &l); err != nil || l.Msg == "" {
			t.Fatalf("log line is not a structured line: %q", line)
		}
		levels, msgs = append(levels, l.Level), append(msgs, l.Msg)
	}
	return levels, msgs
}

// serve writes one structured line per start-up and shutdown step, in
// order; a failure is one structured error line, and nothing else.
func TestServeLogsEachStepOnce(t *testing.T) {
	policies, _ := filepath.Abs("../../policies")
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, []string{"--config", minimalConfig(t, "127.0.0.1:0", policies)}, &out) }()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), `"msg":"listening"`); {
		if time.Now().After(deadline) {
			t.Fatalf("not listening:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, msgs := logMessages(t, out.String())
	want := []string{
		"configuration loaded",
		"the demo API key is enabled: its value is published in the README; remove it before real use",
		"api keys loaded",
		"policy compiled",
		"audit log open",
		"tracing off: no tracing.endpoint",
		"usage store open",
		"provider ready",
		"listening",
		"shutting down: draining in-flight requests",
		"stopped",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package portcullis\n\ndecision := {\"allow\": true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd(t, "serve", "--config", minimalConfig(t, "127.0.0.1:0", dir))
	levels, msgs := logMessages(t, stderr)
	if code != 1 || stdout != "" || levels[len(levels)-1] != "error" || msgs[len(msgs)-1] != "the gateway stopped" || strings.Count(stderr, `"level":"error"`) != 1 {
		t.Errorf("exit %d, log:\n%s", code, stderr)
	}
}
