package proxy_test

import (
	"bufio"
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"portcullis/internal/testkit"
)

// After 1,000 streams that failed or were cancelled in every way the
// router handles, no goroutine and no upstream request is left behind:
// the goroutine count comes back to what it was, and neither the targets
// nor the fake provider have a call in flight.
func TestNoLeakAfterFailedAndCancelledStreams(t *testing.T) {
	h := newRouted(t, `
  - name: leaky
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
    retry: {attempts: 2, backoff: 1ms, max_backoff: 1ms}
    timeouts: {first_byte: 10s, idle: 10s, total: 1m}`)
	client := &http.Client{Transport: &http.Transport{}}
	body := chatFor("leaky", true)
	kinds := []struct {
		name   string
		faults []testkit.Fault
		// leave says when the client hangs up: never (reads to the end),
		// once the upstream has the request, or after the first event.
		leave string
	}{
		{"cut after 3 events", []testkit.Fault{{Cut: true, CutAfter: 3}}, ""},
		{"500 on every attempt", []testkit.Fault{serverError, serverError}, ""},
		{"cut before any event, then 500", []testkit.Fault{{Cut: true}, serverError}, ""},
		{"client leaves before the first byte", []testkit.Fault{{Hang: true}}, "arrived"},
		{"client leaves mid-stream", []testkit.Fault{{HoldAfter: 2}}, "first event"},
	}
	run := func(i int) {
		k := kinds[i%len(kinds)]
		faults := append([]testkit.Fault(nil), k.faults...)
		reached := make(chan struct{})
		faults[0].Reached = reached
		h.upstream.Script(faults...)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+engKey)
		if k.leave == "arrived" {
			go func() {
				select {
				case <-reached:
				case <-ctx.Done():
				}
				cancel()
			}()
		}
		resp, err := client.Do(req)
		if err != nil {
			if k.leave == "" {
				t.Fatalf("%s: %v", k.name, err)
			}
			return
		}
		if k.leave == "first event" {
			testkit.ReadEvent(t, bufio.NewReader(resp.Body))
			cancel()
		} else {
			readAll(t, resp.Body)
		}
		resp.Body.Close()
		if k.leave == "" && resp.StatusCode == 200 && len(h.upstream.Requests()) == 0 {
			t.Fatal("no request upstream")
		}
	}
	settled := func(limit int) int {
		deadline := time.Now().Add(10 * time.Second)
		for {
			client.CloseIdleConnections()
			runtime.GC()
			n := runtime.NumGoroutine()
			if n <= limit || time.Now().After(deadline) {
				return n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// One of each first, so that connection pools and lazily started
	// goroutines exist before the count is taken.
	for i := range len(kinds) {
		run(i)
	}
	// The count before: once it stops changing.
	before := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(20 * time.Millisecond)
		client.CloseIdleConnections()
		n := runtime.NumGoroutine()
		if n == before {
			break
		}
		before = n
	}
	for i := range 1000 {
		run(i)
	}
	// Each record is written as its handler returns.
	h.records.last(t, 1000+len(kinds))
	if after := settled(before + 5); after > before+5 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines: %d before, %d after 1,000 failed and cancelled streams\n%s", before, after, buf[:n])
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, _ := h.upstream.InFlight()
		ts := readyTargets(t, h.harness, "leaky")
		if now == 0 && ts[0].InFlight == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still in flight: %d at the provider, %d on the target", now, ts[0].InFlight)
		}
		time.Sleep(10 * time.Millisecond)
	}
	classes := map[string]int{}
	h.records.mu.Lock()
	for i, r := range h.records.records[len(kinds):] {
		classes[r.ErrorClass]++
		if r.ErrorClass == "" {
			t.Logf("record %d (%s) succeeded: %+v", i, kinds[i%len(kinds)].name, r.Attempts)
		}
	}
	h.records.mu.Unlock()
	if classes["upstream_stream_broken"] != 200 || classes["upstream_server_error"] != 400 || classes["client_disconnected"] != 400 {
		t.Errorf("records by class: %v; want 200 broken streams, 400 server errors, 400 disconnects", classes)
	}
}
