package main

import (
	"slices"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestCheckResult(t *testing.T) {
	stream, plain := Modes[1], Modes[0]
	tests := []struct {
		name string
		mode Mode
		r    vegeta.Result
		want string
	}{
		{"completion", plain, vegeta.Result{Code: 200, Body: chatResponse}, ""},
		{"whole stream", stream, vegeta.Result{Code: 200, Body: chatStream}, ""},
		{"stream without [DONE]", stream, vegeta.Result{Code: 200, Body: chatStream[:len(chatStream)-len(streamEnd)]}, errIncompleteStream},
		{"stream cut mid-way", stream, vegeta.Result{Error: "unexpected EOF", Body: chatStream[:100]}, errIncompleteStream},
		{"stream cut before its first event", stream, vegeta.Result{Error: "unexpected EOF"}, errIncompleteStream},
		{"stream too slow", stream, vegeta.Result{Error: "context deadline exceeded (Client.Timeout or context cancellation while reading body)", Body: chatStream[:100]},
			"context deadline exceeded (Client.Timeout or context cancellation while reading body)"},
		{"refused", stream, vegeta.Result{Error: "connection refused"}, "connection refused"},
		{"HTTP error", plain, vegeta.Result{Code: 403, Error: "403 Forbidden"}, "403 Forbidden"},
		{"not a completion", plain, vegeta.Result{Code: 200, Body: []byte(`{}`)}, "not a chat completion: {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkResult(&tt.r, tt.mode); got != tt.want {
				t.Errorf("checkResult = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMeasurement(t *testing.T) {
	m := &Measurement{Errors: map[string]int{}}
	for i := 1; i <= 100; i++ {
		m.add(&vegeta.Result{Code: 200, Body: chatResponse, Latency: time.Duration(i) * time.Millisecond}, Modes[0])
	}
	m.add(&vegeta.Result{Code: 500, Error: "500 Internal Server Error"}, Modes[0])
	slices.Sort(m.latencies)
	m.Elapsed = 2 * time.Second
	if got := m.Quantile(0.50); got != 50*time.Millisecond {
		t.Errorf("p50 = %s, want 50ms", got)
	}
	if got := m.Quantile(0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s, want 99ms", got)
	}
	if got := m.Throughput(); got != 50 {
		t.Errorf("throughput = %v, want 50", got)
	}
	if m.Failed() != 1 || m.OK != 100 {
		t.Errorf("failed %d, ok %d; want 1 and 100", m.Failed(), m.OK)
	}
	if got := m.TopErrors(3); len(got) != 1 || got[0] != "1× 500 Internal Server Error" {
		t.Errorf("TopErrors = %q", got)
	}
}
