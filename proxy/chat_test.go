package proxy_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"portcullis/internal/testkit"
)

const chatBody = `{"model":"smart","messages":[{"role":"user","content":"Name the three primary colors."}],"temperature":0.2,"user":"u-1"}`

func TestChatPassthrough(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp := h.post(engKey, chatBody)
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if string(body) != string(testkit.Fixture("chat_response.json")) {
		t.Errorf("response body changed on the way:\n%s", body)
	}
	if got := resp.Header.Get("X-Portcullis-Provider"); got != "upstream" {
		t.Errorf("x-portcullis-provider = %q", got)
	}
	reqID := resp.Header.Get("X-Request-Id")
	if !strings.HasPrefix(reqID, "req_") {
		t.Errorf("x-request-id = %q", reqID)
	}

	got := h.upstream.Requests()
	if len(got) != 1 {
		t.Fatalf("upstream got %d requests", len(got))
	}
	sent := got[0]
	wantBody := strings.Replace(chatBody, `"model":"smart"`, `"model":"gpt-4o-mini"`, 1)
	if string(sent.Body) != wantBody {
		t.Errorf("upstream body:\n got %s\nwant %s", sent.Body, wantBody)
	}
	if auth := sent.Header.Get("Authorization"); auth != "Bearer "+upstreamKey {
		t.Errorf("upstream Authorization = %q, want the provider key", auth)
	}
	if org := sent.Header.Get("OpenAI-Organization"); org != "org-test" {
		t.Errorf("configured header not sent: %q", org)
	}
	for k, v := range sent.Header {
		if strings.Contains(strings.Join(v, ","), engKey) {
			t.Errorf("client credential forwarded upstream in %s", k)
		}
	}

	rec := h.records.last(t, 1)
	if rec.RequestID != reqID || rec.Status != 200 || rec.ErrorClass != "" {
		t.Errorf("record id/status/class = %s/%d/%q", rec.RequestID, rec.Status, rec.ErrorClass)
	}
	if rec.Identity.Subject != "alice" || rec.Identity.Type != "apikey" || len(rec.Identity.Groups) != 1 || rec.Identity.Groups[0] != "engineering" {
		t.Errorf("record identity = %+v", rec.Identity)
	}
	if rec.Model != "smart" || rec.UpstreamModel != "gpt-4o-mini" || rec.ModelServed != "gpt-4o-mini-2024-07-18" || rec.Provider != "upstream" {
		t.Errorf("record route = %s → %s/%s served %s", rec.Model, rec.Provider, rec.UpstreamModel, rec.ModelServed)
	}
	if !rec.Decision.Evaluated || !rec.Decision.Allow || len(rec.Decision.Revision) != 16 {
		t.Errorf("record decision = %+v", rec.Decision)
	}
	if rec.PromptTokens != 27 || rec.CompletionTokens != 7 || !rec.UsageReported {
		t.Errorf("record tokens = %d/%d reported=%v", rec.PromptTokens, rec.CompletionTokens, rec.UsageReported)
	}
	if rec.UpstreamRequestID != "req_upstream_1" || rec.ClientIP != "127.0.0.1" || rec.UserAgent == "" || rec.Endpoint != "/v1/chat/completions" {
		t.Errorf("record request facts = %+v", rec)
	}
	if rec.Latency <= 0 || rec.TimeToFirstByte <= 0 || rec.TimeToFirstByte > rec.Latency {
		t.Errorf("record latency %v ttfb %v", rec.Latency, rec.TimeToFirstByte)
	}
}

func TestStreamUsageIsForcedUpstreamAndHiddenUnlessAsked(t *testing.T) {
	for _, tc := range []struct {
		name        string
		body        string
		wantUsageIn bool
	}{
		{"client did not ask", `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`, false},
		{"client asked", `{"model":"smart","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			resp := h.post(engKey, tc.body)
			body := string(readAll(t, resp.Body))
			resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("content-type %q", ct)
			}
			var sent struct {
				StreamOptions struct {
					IncludeUsage bool `json:"include_usage"`
				} `json:"stream_options"`
			}
			if err := json.Unmarshal(h.upstream.Requests()[0].Body, &sent); err != nil || !sent.StreamOptions.IncludeUsage {
				t.Errorf("upstream was not asked for usage: %s", h.upstream.Requests()[0].Body)
			}
			if got := strings.Contains(body, `"choices":[]`); got != tc.wantUsageIn {
				t.Errorf("usage chunk forwarded = %v, want %v", got, tc.wantUsageIn)
			}
			if !strings.HasSuffix(body, "data: [DONE]\n\n") {
				t.Errorf("stream does not end with [DONE]: %q", body[max(0, len(body)-80):])
			}
			if n := strings.Count(body, "data: "); n != 9+boolToInt(tc.wantUsageIn) {
				t.Errorf("forwarded %d events", n)
			}
			rec := h.records.last(t, 1)
			if !rec.Stream || rec.PromptTokens != 27 || rec.CompletionTokens != 7 || rec.ModelServed != "gpt-4o-mini-2024-07-18" {
				t.Errorf("record = stream %v tokens %d/%d served %q", rec.Stream, rec.PromptTokens, rec.CompletionTokens, rec.ModelServed)
			}
		})
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The first chunk must reach the client while the upstream is still
// holding the rest of its stream: the gateway flushes per event.
func TestStreamFirstChunkArrivesBeforeUpstreamFinishes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.upstream.Hold = make(chan struct{})
	resp := h.post(engKey, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	defer resp.Body.Close()

	got := make(chan string, 1)
	r := bufio.NewReader(resp.Body)
	go func() { got <- testkit.ReadEvent(t, r) }()
	var first string
	select {
	case first = <-got:
	case <-h.upstream.Finished:
		t.Fatal("upstream finished before the client saw a chunk")
	}
	if !strings.Contains(first, `"role":"assistant"`) {
		t.Errorf("first event = %q", first)
	}
	select {
	case <-h.upstream.Finished:
		t.Fatal("upstream finished while it was held")
	default:
	}
	close(h.upstream.Hold)
	rest := string(readAll(t, r))
	if !strings.Contains(rest, `"content":" yellow"`) || !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Errorf("rest of stream = %q", rest)
	}
	testkit.Wait(t, h.upstream.Finished, "the upstream to finish")
}

// A client that goes away mid-stream cancels the upstream request, and the
// call is audited as abandoned.
func TestClientDisconnectCancelsUpstream(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.upstream.Hold = make(chan struct{})
	defer close(h.upstream.Hold)
	resp := h.post(engKey, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	testkit.ReadEvent(t, bufio.NewReader(resp.Body))
	resp.Body.Close() // the client hangs up after the first chunk

	testkit.Wait(t, h.upstream.Cancelled, "the upstream request to be cancelled")
	rec := h.records.last(t, 1)
	if rec.ErrorClass != "client_disconnected" || rec.Status != 499 {
		t.Errorf("record class %q status %d", rec.ErrorClass, rec.Status)
	}
}

// The in-process demo provider takes the same path: disconnecting from a
// hanging demo stream ends the call.
func TestClientDisconnectEndsDemoStream(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp := h.post(demoKey, `{"model":"demo-hang","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	r := bufio.NewReader(resp.Body)
	testkit.ReadEvent(t, r) // role chunk
	testkit.ReadEvent(t, r) // first word, then the demo hangs
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if rec.ErrorClass != "client_disconnected" {
		t.Errorf("record class %q", rec.ErrorClass)
	}
}

func TestDemoModelStreamsWordByWord(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp := h.post(demoKey, `{"model":"demo","stream":true,"messages":[{"role":"user","content":"Name the three primary colors."}]}`)
	defer resp.Body.Close()
	var text strings.Builder
	r := bufio.NewReader(resp.Body)
	for {
		ev := testkit.ReadEvent(t, r)
		data := strings.TrimSuffix(strings.TrimPrefix(ev, "data: "), "\n\n")
		if data == "[DONE]" {
			break
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if len(chunk.Choices) > 0 {
			text.WriteString(chunk.Choices[0].Delta.Content)
		}
	}
	if !strings.Contains(text.String(), `You said: "Name the three primary colors."`) {
		t.Errorf("demo answer = %q", text.String())
	}
	rec := h.records.last(t, 1)
	if !rec.UsageReported || rec.CompletionTokens == 0 || rec.Provider != "demo" {
		t.Errorf("record = %+v", rec)
	}
}

// A client that hangs up right after [DONE], while the upstream is still
// closing its side, received the whole answer: the call succeeded.
func TestClientLeavingAfterDoneIsNotADisconnect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.upstream.HoldAfterEnd = make(chan struct{})
	defer close(h.upstream.HoldAfterEnd)
	resp := h.post(engKey, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	r := bufio.NewReader(resp.Body)
	for {
		if ev := testkit.ReadEvent(t, r); strings.HasPrefix(ev, "data: [DONE]") {
			break
		}
	}
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if rec.Status != 200 || rec.ErrorClass != "" || rec.CompletionTokens != 7 {
		t.Errorf("record status %d class %q tokens %d; the client got the whole answer", rec.Status, rec.ErrorClass, rec.CompletionTokens)
	}
}
