package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The fake upstream answers with OpenAI's own bytes, copied from the wire
// reference, so the gateway parses exactly what it would get in production.
var (
	//go:embed wire/chat_response.json
	chatResponse []byte
	//go:embed wire/chat_stream.sse
	chatStream []byte
)

// Upstream is a fast fake of OpenAI's POST /v1/chat/completions: it answers
// every call with the same completion, as one JSON body or as an event
// stream, with no work beyond reading the request. It also answers
// GET /healthz, so the harness knows when it is up.
type Upstream struct {
	// EventDelay is a pause before each streamed event and before a
	// non-streamed body. Zero value: no pause, the upstream is as fast as
	// it can be, so that everything measured is the proxy in front of it.
	EventDelay time.Duration

	events    [][]byte // the stream's events, each with its blank line
	usage     int      // index in events of the usage-only chunk
	bodyBytes string   // Content-Length of chatResponse
}

// NewUpstream prepares the canned answers.
func NewUpstream(eventDelay time.Duration) (*Upstream, error) {
	u := &Upstream{EventDelay: eventDelay, usage: -1, bodyBytes: strconv.Itoa(len(chatResponse))}
	for ev := range bytes.SplitAfterSeq(chatStream, []byte("\n\n")) {
		if len(bytes.TrimSpace(ev)) == 0 {
			continue
		}
		if bytes.Contains(ev, []byte(`"choices":[]`)) {
			u.usage = len(u.events)
		}
		u.events = append(u.events, ev)
	}
	if u.usage < 0 || !bytes.Equal(u.events[len(u.events)-1], []byte("data: [DONE]\n\n")) {
		return nil, fmt.Errorf("upstream: wire/chat_stream.sse needs a usage chunk and a final data: [DONE]")
	}
	return u, nil
}

// chatRequest is what the upstream reads from a request.
type chatRequest struct {
	Stream        bool `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// ServeHTTP implements http.Handler.
func (u *Upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/healthz":
		w.Write([]byte("ok\n"))
		return
	case r.URL.Path != "/v1/chat/completions":
		writeUpstreamError(w, http.StatusNotFound, "unknown_url", "unknown request URL: "+r.Method+" "+r.URL.Path)
		return
	case r.Method != http.MethodPost:
		writeUpstreamError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed; use POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return // the client went away
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeUpstreamError(w, http.StatusBadRequest, "invalid_json", "the request body is not valid JSON: "+err.Error())
		return
	}
	h := w.Header()
	h.Set("X-Request-Id", "req_bench_upstream")
	if req.Stream {
		u.stream(w, req.StreamOptions.IncludeUsage)
		return
	}
	u.pause()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", u.bodyBytes)
	w.Write(chatResponse)
}

// stream writes the canned event stream, one flush per event as OpenAI
// does, with the usage chunk only when the caller asked for it.
func (u *Upstream) stream(w http.ResponseWriter, includeUsage bool) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for i, ev := range u.events {
		if i == u.usage && !includeUsage {
			continue
		}
		u.pause()
		if _, err := w.Write(ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (u *Upstream) pause() {
	if u.EventDelay > 0 {
		time.Sleep(u.EventDelay)
	}
}

// writeUpstreamError answers in OpenAI's error shape.
func writeUpstreamError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": message, "type": "invalid_request_error", "param": nil, "code": code,
	}})
}
