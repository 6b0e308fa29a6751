// Package testkit holds test helpers that several packages share: fake
// OpenAI and Anthropic upstreams that answer with the exact wire bytes of
// the reference fixtures (and fail as those providers fail), and let a
// test hold a stream open and see cancellations.
package testkit

import (
	"bytes"
	"embed"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

//go:embed testdata/openai/* testdata/anthropic/*
var fixtures embed.FS

// Fixture returns a file of testdata/openai, a byte-exact copy of the
// provider wire reference.
func Fixture(name string) []byte {
	b, err := fixtures.ReadFile("testdata/openai/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

// Received is one request the fake upstream got.
type Received struct {
	Header http.Header
	Body   []byte
	// Path is the request's path and query, for the fakes that record it
	// (CompatUpstream, ProviderUpstream).
	Path string
	// RemoteAddr is the connection the request came on, for the fakes
	// that record it (Upstream).
	RemoteAddr string
}

// Upstream is a fake OpenAI chat completions upstream; it answers
// embeddings requests (any path ending in /embeddings) too.
type Upstream struct {
	*httptest.Server

	mu       sync.Mutex
	received []Received
	failing  int

	// Status and Body, when Status is set, are the answer to every request
	// (an error, say); Header is added to it.
	Status int
	Body   []byte
	Header http.Header

	// Hold, when not nil, pauses every stream after its first event until
	// the channel is closed.
	Hold chan struct{}
	// HoldAfterEnd, when not nil, keeps every stream open after its last
	// event until the channel is closed or the caller goes away, as an
	// upstream that is slow to close its connection does.
	HoldAfterEnd chan struct{}
	// Cancelled receives one value each time a request's context ends
	// before its response was complete.
	Cancelled chan struct{}
	// Finished receives one value each time a stream was written to its end.
	Finished chan struct{}

	// faults are the failures of the next requests, one each (Script).
	faults []Fault
	// inflight counts the requests being answered; peak is its maximum.
	inflight, peak int
	// Arrived receives one value as each request arrives.
	Arrived chan struct{}
}

// Fault is one way the fake fails one request, for fault injection.
type Fault struct {
	// Status, Body and Header answer the request, when Status is set.
	Status int
	Body   []byte
	Header http.Header
	// Reached, when not nil, is closed when the request that gets this
	// fault arrives.
	Reached chan struct{}
	// Hang holds the request without a byte of answer until the caller
	// goes away, as an upstream that accepted and never answers does.
	Hang bool
	// HangBody sends a stream's headers, then holds it without an event
	// until the caller goes away.
	HangBody bool
	// HoldAfter, when positive, holds a stream after that many events
	// until the caller goes away.
	HoldAfter int
	// Cut drops a stream's connection after CutAfter events (none: after
	// its headers), without [DONE] and without its usage.
	Cut      bool
	CutAfter int
}

// Script makes the next requests fail, one fault each, in order; the
// requests after them are answered as usual.
func (u *Upstream) Script(faults ...Fault) {
	u.mu.Lock()
	u.faults = append(u.faults, faults...)
	u.mu.Unlock()
}

// Failing makes every later request answer status with an OpenAI error
// body (or, with status 0, answer again), safely while calls are in flight.
func (u *Upstream) Failing(status int) {
	u.mu.Lock()
	u.failing = status
	u.mu.Unlock()
}

// InFlight returns how many requests the upstream is answering now, and
// the most it answered at once.
func (u *Upstream) InFlight() (now, peak int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.inflight, u.peak
}

// nextFault pops the next scripted fault, if any.
func (u *Upstream) nextFault() (Fault, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.failing != 0 {
		return Fault{Status: u.failing, Body: []byte(`{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`)}, true
	}
	if len(u.faults) == 0 {
		return Fault{}, false
	}
	f := u.faults[0]
	u.faults = u.faults[1:]
	return f, true
}

// NewUpstream starts a fake upstream; it is closed when the test ends.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{Cancelled: make(chan struct{}, 16), Finished: make(chan struct{}, 16), Arrived: make(chan struct{}, 1024)}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// Requests returns what the upstream received so far.
func (u *Upstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

func (u *Upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.received = append(u.received, Received{Header: r.Header.Clone(), Body: body, RemoteAddr: r.RemoteAddr})
	u.inflight++
	u.peak = max(u.peak, u.inflight)
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.inflight--
		u.mu.Unlock()
	}()
	u.signal(u.Arrived)

	fault, faulty := u.nextFault()
	if fault.Reached != nil {
		close(fault.Reached)
	}
	if faulty && fault.Hang {
		<-r.Context().Done()
		u.signal(u.Cancelled)
		return
	}
	if faulty && fault.Status != 0 {
		for k, vs := range fault.Header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(fault.Status)
		w.Write(fault.Body)
		return
	}
	for k, vs := range u.Header {
		w.Header()[k] = vs
	}
	w.Header().Set("X-Request-Id", "req_upstream_1")
	if u.Status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(u.Status)
		w.Write(u.Body)
		return
	}
	if strings.HasSuffix(r.URL.Path, "/embeddings") {
		w.Header().Set("Content-Type", "application/json")
		w.Write(Fixture("embeddings_response.json"))
		return
	}
	var req struct {
		Stream        bool `json:"stream"`
		StreamOptions struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Tools    []json.RawMessage `json:"tools"`
		Messages []struct {
			Role string `json:"role"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(body, &req)
	// A request offering tools gets the tool call answer, unless it is
	// the turn that brings a tool's result back.
	prefix := "chat"
	if len(req.Tools) > 0 && (len(req.Messages) == 0 || req.Messages[len(req.Messages)-1].Role != "tool") {
		prefix = "tool_call"
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		w.Write(Fixture(prefix + "_response.json"))
		return
	}
	u.stream(w, r, prefix+"_stream.sse", req.StreamOptions.IncludeUsage, fault)
}

// stream replays a stream fixture, which ends with a usage chunk and
// [DONE]; the usage chunk is left out unless asked for, as OpenAI does.
func (u *Upstream) stream(w http.ResponseWriter, r *http.Request, fixture string, includeUsage bool, fault Fault) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if fault.HangBody {
		_ = rc.Flush()
		<-r.Context().Done()
		u.signal(u.Cancelled)
		return
	}
	if fault.Cut && fault.CutAfter == 0 {
		_ = rc.Flush()
		cut(rc)
		return
	}
	events := bytes.SplitAfter(Fixture(fixture), []byte("\n\n"))
	for i, ev := range events {
		if len(ev) == 0 {
			continue
		}
		if fault.HoldAfter > 0 && i == fault.HoldAfter {
			<-r.Context().Done()
			u.signal(u.Cancelled)
			return
		}
		if fault.Cut && i == fault.CutAfter {
			cut(rc)
			return
		}
		if !includeUsage && bytes.Contains(ev, []byte(`"choices":[]`)) {
			continue
		}
		if _, err := w.Write(ev); err != nil {
			u.signal(u.Cancelled)
			return
		}
		if err := rc.Flush(); err != nil {
			u.signal(u.Cancelled)
			return
		}
		if i == 0 && u.Hold != nil {
			select {
			case <-u.Hold:
			case <-r.Context().Done():
				u.signal(u.Cancelled)
				return
			}
		}
	}
	if u.HoldAfterEnd != nil {
		select {
		case <-u.HoldAfterEnd:
		case <-r.Context().Done():
		}
	}
	u.signal(u.Finished)
}

// cut drops the connection mid-answer, as a provider's crash or a proxy's
// idle cut does: no [DONE], no usage, not even the chunked encoding's end.
func cut(rc *http.ResponseController) {
	conn, _, err := rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

func (u *Upstream) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Wait waits for a value on ch, failing the test after a generous bound
// (a hang guard, not a timing assertion).
func Wait(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
	}
}

// ReadEvent reads one SSE event (up to its blank line) from r.
func ReadEvent(t testing.TB, r interface{ ReadString(byte) (string, error) }) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		b.WriteString(line)
		if line == "\n" || err != nil {
			if err != nil && b.Len() == 0 {
				t.Fatalf("read event: %v", err)
			}
			return b.String()
		}
	}
}
