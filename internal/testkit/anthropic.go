package testkit

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// AnthropicFixture returns a file of testdata/anthropic, a byte-exact copy
// of the provider wire reference.
func AnthropicFixture(name string) []byte {
	b, err := fixtures.ReadFile("testdata/anthropic/" + name)
	if err != nil {
		panic(err)
	}
	return b
}

// AnthropicFailure is a way the fake Anthropic upstream fails.
type AnthropicFailure string

// The failures Anthropic is known for, each answered with its fixture.
const (
	// AnthropicRateLimited is a 429 rate_limit_error with retry-after.
	AnthropicRateLimited AnthropicFailure = "429"
	// AnthropicOverloaded is a 529 overloaded_error with retry-after.
	AnthropicOverloaded AnthropicFailure = "529"
	// AnthropicContextLength is a 400 "prompt is too long".
	AnthropicContextLength AnthropicFailure = "400"
	// AnthropicAuth is a 401 authentication_error, as for a bad key.
	AnthropicAuth AnthropicFailure = "401"
	// AnthropicMidstream is a 200 stream cut by an error event.
	AnthropicMidstream AnthropicFailure = "midstream"
	// AnthropicOverloadedStream is a 200 stream whose first event is an
	// overloaded_error, as Anthropic answers a stream it cannot start.
	AnthropicOverloadedStream AnthropicFailure = "overloaded-stream"
)

// AnthropicUpstream is a fake Anthropic Messages API (and its token
// counting endpoint). It checks the
// headers Anthropic requires (a wrong x-api-key gets Anthropic's 401),
// and answers with the fixtures: the tool call answer when the request
// offers tools (unless its last turn brings tool results back), the plain
// answer otherwise, streamed when asked.
type AnthropicUpstream struct {
	*httptest.Server
	// Key is the x-api-key the upstream accepts.
	Key string

	mu       sync.Mutex
	received []Received
	fail     AnthropicFailure
}

// AnthropicCountedTokens is the fake's answer to POST
// /v1/messages/count_tokens, as {"input_tokens": N}.
const AnthropicCountedTokens = "14"

// AnthropicRetryAfter is the retry-after the fake sends on 429 and 529.
const AnthropicRetryAfter = "7"

// NewAnthropicUpstream starts a fake Anthropic that accepts key; it is
// closed when the test ends.
func NewAnthropicUpstream(t testing.TB, key string) *AnthropicUpstream {
	u := &AnthropicUpstream{Key: key}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

// Fail makes every later answer fail in the given way; "" answers again.
func (u *AnthropicUpstream) Fail(f AnthropicFailure) {
	u.mu.Lock()
	u.fail = f
	u.mu.Unlock()
}

// Requests returns what the upstream received so far.
func (u *AnthropicUpstream) Requests() []Received {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]Received(nil), u.received...)
}

func (u *AnthropicUpstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.received = append(u.received, Received{Header: r.Header.Clone(), Body: body})
	fail := u.fail
	u.mu.Unlock()

	w.Header().Set("Request-Id", "req_011CVxUpstream")
	countTokens := r.URL.Path == "/v1/messages/count_tokens"
	if r.Method != http.MethodPost || (r.URL.Path != "/v1/messages" && !countTokens) {
		u.errorAnswer(w, http.StatusNotFound, []byte(`{"type":"error","error":{"type":"not_found_error","message":"Not found"}}`))
		return
	}
	if r.Header.Get("X-Api-Key") != u.Key || fail == AnthropicAuth {
		u.errorAnswer(w, http.StatusUnauthorized, AnthropicFixture("error_401.json"))
		return
	}
	if r.Header.Get("Anthropic-Version") == "" {
		u.errorAnswer(w, http.StatusBadRequest, []byte(`{"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version: header is required"}}`))
		return
	}
	var req struct {
		Stream   bool              `json:"stream"`
		Tools    []json.RawMessage `json:"tools"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		u.errorAnswer(w, http.StatusBadRequest, []byte(`{"type":"error","error":{"type":"invalid_request_error","message":"messages: Field required"}}`))
		return
	}
	if countTokens && fail == "" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"input_tokens":` + AnthropicCountedTokens + `}`))
		return
	}
	switch fail {
	case AnthropicRateLimited:
		w.Header().Set("Retry-After", AnthropicRetryAfter)
		w.Header().Set("Anthropic-Ratelimit-Requests-Remaining", "0")
		u.errorAnswer(w, http.StatusTooManyRequests, AnthropicFixture("error_429.json"))
		return
	case AnthropicOverloaded:
		w.Header().Set("Retry-After", AnthropicRetryAfter)
		u.errorAnswer(w, 529, AnthropicFixture("error_529_overloaded.json"))
		return
	case AnthropicContextLength:
		u.errorAnswer(w, http.StatusBadRequest, AnthropicFixture("error_400_context_length.json"))
		return
	}
	if fail == AnthropicOverloadedStream && req.Stream {
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"))
		return
	}
	prefix := "chat"
	last := req.Messages[len(req.Messages)-1]
	if len(req.Tools) > 0 && !bytes.Contains(last.Content, []byte(`"tool_result"`)) {
		prefix = "tool_call"
	}
	if fail == AnthropicMidstream {
		req.Stream, prefix = true, "stream_error_midstream"
	}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		w.Write(AnthropicFixture(prefix + "_response.json"))
		return
	}
	name := prefix + "_stream.sse"
	if fail == AnthropicMidstream {
		name = "stream_error_midstream.sse"
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	for _, ev := range bytes.SplitAfter(AnthropicFixture(name), []byte("\n\n")) {
		if len(ev) == 0 {
			continue
		}
		if _, err := w.Write(ev); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (u *AnthropicUpstream) errorAnswer(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
