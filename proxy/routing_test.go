package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"portcullis/audit"
	"portcullis/internal/testkit"
	"portcullis/metrics"
	"portcullis/proxy"
)

// The fault-injection tests of the router: each model below routes to
// the harness's fake OpenAI ("upstream") and to the fakes a test adds,
// which fail in their providers' own ways.

// routed is a harness whose extra providers are a fake Anthropic
// ("claude") and a second fake OpenAI ("backup"), with models as given.
type routed struct {
	*harness
	claude *testkit.AnthropicUpstream
	backup *testkit.Upstream
}

func newRouted(t *testing.T, models string) *routed {
	t.Helper()
	return newRoutedWith(t, models, nil)
}

func newRoutedWith(t *testing.T, models string, observer proxy.Observer) *routed {
	t.Helper()
	ant := testkit.NewAnthropicUpstream(t, anthropicKey)
	backup := testkit.NewUpstream(t)
	h := newHarness(t, harnessOptions{
		providers: "\n  - name: claude\n    type: anthropic\n    base_url: " + ant.URL + "\n    api_key: " + anthropicKey +
			"\n  - name: backup\n    type: openai\n    base_url: " + backup.URL + "/v1\n    api_key: sk-backup-key-0123456789",
		models:   models,
		observer: observer,
	})
	return &routed{harness: h, claude: ant, backup: backup}
}

func chatFor(model string, stream bool) string {
	s := ""
	if stream {
		s = `"stream":true,`
	}
	return `{"model":"` + model + `",` + s + `"messages":[{"role":"user","content":"Name the three primary colors."}]}`
}

// attemptsOf sums a record's attempts as provider:status:class.
func attemptsOf(rec audit.Record) []string {
	out := make([]string, len(rec.Attempts))
	for i, a := range rec.Attempts {
		out[i] = a.Provider + ":" + itoa(a.Status) + ":" + a.ErrorClass
	}
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func sameList(got, want []string) bool {
	return strings.Join(got, ",") == strings.Join(want, ",")
}

var serverError = testkit.Fault{Status: 500, Body: []byte(`{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`)}

// A 429 with Retry-After is retried after the wait the provider asked
// for, and the retry's answer is the call's.
func TestRetryAfterThenSuccess(t *testing.T) {
	h := newRouted(t, `
  - name: patient
    provider: upstream
    upstream_model: gpt-4o-mini
    retry: {attempts: 3, backoff: 1ms, max_retry_after: 5s}`)
	h.upstream.Script(testkit.Fault{Status: 429, Header: http.Header{"Retry-After": {"1"}},
		Body: []byte(`{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)})
	resp := h.post(engKey, chatFor("patient", false))
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(testkit.Fixture("chat_response.json")) {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Portcullis-Attempts"); got != "2" {
		t.Errorf("x-portcullis-attempts = %q, want 2", got)
	}
	if p, m := resp.Header.Get("X-Portcullis-Provider"), resp.Header.Get("X-Portcullis-Model"); p != "upstream" || m != "gpt-4o-mini" {
		t.Errorf("served by %s/%s", p, m)
	}
	rec := h.records.last(t, 1)
	if want := []string{"upstream:429:upstream_rate_limited", "upstream:200:"}; !sameList(attemptsOf(rec), want) {
		t.Errorf("attempts = %v, want %v", attemptsOf(rec), want)
	}
	if len(rec.Attempts) == 2 && rec.Attempts[1].Wait != time.Second {
		t.Errorf("the retry waited %v, want the Retry-After of 1s", rec.Attempts[1].Wait)
	}
	if rec.ErrorClass != "" || rec.Status != 200 || !rec.UsageReported {
		t.Errorf("record = %s %d usage %v", rec.ErrorClass, rec.Status, rec.UsageReported)
	}
	if n := len(h.upstream.Requests()); n != 2 {
		t.Errorf("upstream got %d requests, want 2", n)
	}
}

// A Retry-After longer than the cap is not waited for: the call moves to
// the next target at once.
func TestLongRetryAfterMovesOn(t *testing.T) {
	h := newRouted(t, `
  - name: impatient
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    retry: {attempts: 3, max_retry_after: 2s}`)
	h.upstream.Script(testkit.Fault{Status: 429, Header: http.Header{"Retry-After": {"3600"}},
		Body: []byte(`{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)})
	resp := h.post(engKey, chatFor("impatient", false))
	readAll(t, resp.Body)
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if want := []string{"upstream:429:upstream_rate_limited", "backup:200:"}; resp.StatusCode != 200 || !sameList(attemptsOf(rec), want) {
		t.Errorf("status %d, attempts %v, want 200 and %v", resp.StatusCode, attemptsOf(rec), want)
	}
}

// A provider that keeps answering 500 is retried, then the call falls
// back to a provider of another format: the OpenAI client gets
// Anthropic's answer in OpenAI's shape, streamed or not.
func TestServerErrorsFallBackToAnotherFormat(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "stream"}[stream], func(t *testing.T) {
			h := newRouted(t, `
  - name: resilient
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: claude, upstream_model: claude-sonnet-4-5}
    retry: {attempts: 3, backoff: 1ms, max_backoff: 2ms}`)
			h.upstream.Failing(500)
			resp := h.post(engKey, chatFor("resilient", stream))
			body := string(readAll(t, resp.Body))
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if stream {
				if !strings.Contains(body, `"object":"chat.completion.chunk"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
					t.Errorf("not an OpenAI stream:\n%s", body)
				}
			} else if !strings.Contains(body, `"object":"chat.completion"`) || !strings.Contains(body, `"model":"resilient"`) {
				t.Errorf("not an OpenAI chat completion: %s", body)
			}
			if p, a := resp.Header.Get("X-Portcullis-Provider"), resp.Header.Get("X-Portcullis-Attempts"); p != "claude" || a != "4" {
				t.Errorf("x-portcullis-provider %q attempts %q, want claude and 4", p, a)
			}
			rec := h.records.last(t, 1)
			want := []string{"upstream:500:upstream_server_error", "upstream:500:upstream_server_error", "upstream:500:upstream_server_error", "claude:200:"}
			if !sameList(attemptsOf(rec), want) {
				t.Errorf("attempts = %v, want %v", attemptsOf(rec), want)
			}
			if rec.Provider != "claude" || rec.UpstreamModel != "claude-sonnet-4-5" || rec.ErrorClass != "" || !rec.UsageReported {
				t.Errorf("record: %s/%s class %q usage %v", rec.Provider, rec.UpstreamModel, rec.ErrorClass, rec.UsageReported)
			}
			if n := len(h.upstream.Requests()); n != 3 {
				t.Errorf("the failing provider got %d requests, want 3", n)
			}
			if n := len(h.claude.Requests()); n != 1 {
				t.Errorf("the fallback got %d requests, want 1", n)
			}
		})
	}
}

// When every target fails, the client gets the last provider's error, in
// its own format, and the record lists every attempt.
func TestEveryTargetFailing(t *testing.T) {
	h := newRouted(t, `
  - name: doomed
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    retry: {attempts: 2, backoff: 1ms, max_backoff: 2ms}`)
	h.upstream.Failing(500)
	h.backup.Failing(503)
	resp := h.post(engKey, chatFor("doomed", false))
	body := readAll(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("X-Portcullis-Provider") != "backup" || resp.Header.Get("X-Portcullis-Attempts") != "4" {
		t.Errorf("status %d provider %q attempts %q: %s", resp.StatusCode, resp.Header.Get("X-Portcullis-Provider"), resp.Header.Get("X-Portcullis-Attempts"), body)
	}
	rec := h.records.last(t, 1)
	if want := []string{"upstream:500:upstream_server_error", "upstream:500:upstream_server_error", "backup:503:upstream_server_error", "backup:503:upstream_server_error"}; !sameList(attemptsOf(rec), want) {
		t.Errorf("attempts = %v, want %v", attemptsOf(rec), want)
	}
}

// A refusal of the request itself (400) is the answer: no retry, no
// fallback.
func TestNonRetryableErrorReturnedAtOnce(t *testing.T) {
	h := newRouted(t, `
  - name: strict
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    retry: {attempts: 3, backoff: 1ms}`)
	h.upstream.Script(testkit.Fault{Status: 400, Body: []byte(`{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}`)})
	resp := h.post(engKey, chatFor("strict", false))
	readAll(t, resp.Body)
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if resp.StatusCode != 400 || !sameList(attemptsOf(rec), []string{"upstream:400:upstream_bad_request"}) || len(h.backup.Requests()) != 0 {
		t.Errorf("status %d attempts %v backup requests %d; want 400 after one attempt", resp.StatusCode, attemptsOf(rec), len(h.backup.Requests()))
	}
}

// A prompt too long for the model goes to its context fallback.
func TestContextLengthFallsBackToLargerModel(t *testing.T) {
	h := newRouted(t, `
  - name: small
    provider: upstream
    upstream_model: gpt-4o-mini
    context_fallback: large
  - name: large
    provider: claude
    upstream_model: claude-sonnet-4-5`)
	h.upstream.Script(testkit.Fault{Status: 400, Body: []byte(`{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`)})
	resp := h.post(engKey, chatFor("small", false))
	body := readAll(t, resp.Body)
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if resp.StatusCode != 200 || !sameList(attemptsOf(rec), []string{"upstream:400:upstream_bad_request", "claude:200:"}) {
		t.Errorf("status %d attempts %v: %s", resp.StatusCode, attemptsOf(rec), body)
	}
}

// A target's own max_tokens reaches only that target: the next one gets
// the request as the client sent it.
func TestTargetMaxTokensStaysWithItsTarget(t *testing.T) {
	h := newRouted(t, `
  - name: capped
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini, max_tokens: 64}
      - {provider: backup, upstream_model: gpt-4.1}`)
	h.upstream.Script(serverError)
	resp := h.post(engKey, `{"model":"capped","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}`)
	readAll(t, resp.Body)
	resp.Body.Close()
	first, second := h.upstream.Requests(), h.backup.Requests()
	if resp.StatusCode != 200 || len(first) != 1 || len(second) != 1 {
		t.Fatalf("status %d, requests %d and %d", resp.StatusCode, len(first), len(second))
	}
	if !strings.Contains(string(first[0].Body), `"max_tokens":64`) {
		t.Errorf("the capped target got %s", first[0].Body)
	}
	if !strings.Contains(string(second[0].Body), `"max_tokens":500`) || !strings.Contains(string(second[0].Body), `"model":"gpt-4.1"`) {
		t.Errorf("the next target got %s", second[0].Body)
	}
}

// A target that never sends its first byte times out, and the call falls
// back; nothing of the silent attempt reached the client.
func TestHangBeforeFirstByteFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  testkit.Fault
		status int
	}{
		{"no headers", testkit.Fault{Hang: true}, 0},
		{"headers, no event", testkit.Fault{HangBody: true}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRouted(t, `
  - name: hasty
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini, timeouts: {first_byte: 300ms}}
      - {provider: claude, upstream_model: claude-sonnet-4-5}`)
			h.upstream.Script(tc.fault)
			resp := h.post(engKey, chatFor("hasty", true))
			body := string(readAll(t, resp.Body))
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Count(body, `"role":"assistant"`) != 1 {
				t.Fatalf("status %d:\n%s", resp.StatusCode, body)
			}
			rec := h.records.last(t, 1)
			if want := []string{"upstream:" + itoa(tc.status) + ":upstream_timeout", "claude:200:"}; !sameList(attemptsOf(rec), want) {
				t.Errorf("attempts = %v, want %v", attemptsOf(rec), want)
			}
			testkit.Wait(t, h.upstream.Cancelled, "the silent attempt to be cancelled")
		})
	}
}

// A stream whose connection drops after its headers, before any event,
// falls back as transparently.
func TestStreamCutBeforeFirstEventFallsBack(t *testing.T) {
	h := newRouted(t, `
  - name: fragile
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}`)
	h.upstream.Script(testkit.Fault{Cut: true})
	resp := h.post(engKey, chatFor("fragile", true))
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || !sameList(attemptsOf(rec), []string{"upstream:200:upstream_broken", "backup:200:"}) {
		t.Errorf("status %d attempts %v:\n%s", resp.StatusCode, attemptsOf(rec), body)
	}
}

// A stream cut after 3 events has reached the client: it ends with a
// well-formed error event in the client's format, and the record counts
// the tokens delivered.
func TestStreamCutAfterThreeEvents(t *testing.T) {
	for _, tc := range []struct {
		name, path, body string
		wantErr          string
	}{
		{"openai client", "/v1/chat/completions", chatFor("cut", true),
			`data: {"error":{"message":"the upstream provider broke off the stream; the answer is incomplete","type":"upstream_error","param":null,"code":"upstream_stream_broken"}}` + "\n\n"},
		{"anthropic client", "/v1/messages", `{"model":"cut","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Name the three primary colors."}]}`,
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the upstream provider broke off the stream; the answer is incomplete\"}}\n\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRouted(t, `
  - name: cut
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    retry: {attempts: 2, backoff: 1ms}`)
			h.upstream.Script(testkit.Fault{Cut: true, CutAfter: 3})
			req, _ := http.NewRequest("POST", h.url+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+engKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := string(readAll(t, resp.Body))
			resp.Body.Close()
			if !strings.HasSuffix(body, tc.wantErr) {
				t.Errorf("the stream does not end with the error event:\n%s", body)
			}
			if strings.Contains(body, "[DONE]") || strings.Contains(body, "message_stop") {
				t.Errorf("a cut stream ended as complete:\n%s", body)
			}
			if !strings.Contains(body, "Red") || strings.Contains(body, "yellow") {
				t.Errorf("the client should have the events before the cut only:\n%s", body)
			}
			rec := h.records.last(t, 1)
			if rec.ErrorClass != "upstream_stream_broken" || rec.Outcome() != "failed" {
				t.Errorf("record class %q", rec.ErrorClass)
			}
			// Delivered: "Red" and "," (the first event only names the role).
			if rec.CompletionTokens != 2 || !rec.UsageEstimated {
				t.Errorf("record tokens %d estimated %v, want the 2 delivered", rec.CompletionTokens, rec.UsageEstimated)
			}
			if !sameList(attemptsOf(rec), []string{"upstream:200:upstream_stream_broken"}) || len(h.backup.Requests()) != 0 {
				t.Errorf("attempts %v, backup requests %d: a stream the client saw part of is never retried", attemptsOf(rec), len(h.backup.Requests()))
			}
		})
	}
}

// readyTargets reads the targets of a model from /readyz.
func readyTargets(t *testing.T, h *harness, model string) []proxy.TargetStatus {
	t.Helper()
	resp, err := http.Get(h.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ready struct {
		Routes []struct {
			Name    string               `json:"name"`
			Targets []proxy.TargetStatus `json:"targets"`
		} `json:"routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil {
		t.Fatal(err)
	}
	for _, r := range ready.Routes {
		if r.Name == model {
			return r.Targets
		}
	}
	t.Fatalf("/readyz has no route for %s", model)
	return nil
}

// Repeated failures take a target out of rotation; after the cooldown one
// probe goes through, and its success puts the target back.
func TestCooldownOpensAndProbeCloses(t *testing.T) {
	h := newRouted(t, `
  - name: flaky
    provider: upstream
    upstream_model: gpt-4o-mini
    cooldown: {failures: 2, period: 30s}`)
	state := func() string { return readyTargets(t, h.harness, "flaky")[0].State }
	call := func() *http.Response {
		resp := h.post(engKey, chatFor("flaky", false))
		readAll(t, resp.Body)
		resp.Body.Close()
		return resp
	}
	h.upstream.Failing(500)
	for i := range 2 {
		if resp := call(); resp.StatusCode != 500 {
			t.Fatalf("failure %d: status %d", i+1, resp.StatusCode)
		}
	}
	if s := state(); s != "open" {
		t.Fatalf("after 2 failures the target is %s, want open", s)
	}
	resp := call()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || len(h.upstream.Requests()) != 2 {
		t.Errorf("while open: status %d retry-after %q, upstream requests %d; want 503, a Retry-After and no request sent",
			resp.StatusCode, resp.Header.Get("Retry-After"), len(h.upstream.Requests()))
	}
	if rec := h.records.last(t, 3); rec.ErrorClass != "upstream_cooling_down" || len(rec.Attempts) != 0 {
		t.Errorf("record while open: %q, %d attempts", rec.ErrorClass, len(rec.Attempts))
	}

	// A probe that fails opens it again.
	proxy.AdvanceClock(h.srv, 31*time.Second)
	if s := state(); s != "half-open" {
		t.Fatalf("after the cooldown the target is %s, want half-open", s)
	}
	if resp := call(); resp.StatusCode != 500 || state() != "open" {
		t.Fatalf("failed probe: status %d, state %s; want 500 and open", resp.StatusCode, state())
	}

	// A probe that succeeds closes it.
	h.upstream.Failing(0)
	proxy.AdvanceClock(h.srv, 31*time.Second)
	if resp := call(); resp.StatusCode != 200 {
		t.Fatalf("probe: status %d", resp.StatusCode)
	}
	if s := state(); s != "closed" {
		t.Errorf("after a successful probe the target is %s, want closed", s)
	}
	if ts := readyTargets(t, h.harness, "flaky"); ts[0].Cooldowns != 2 {
		t.Errorf("cooldowns = %d, want 2", ts[0].Cooldowns)
	}
	if resp := call(); resp.StatusCode != 200 {
		t.Errorf("after closing: status %d", resp.StatusCode)
	}
}

// A target out of rotation is passed over for the next one, without
// being tried.
func TestCooledDownTargetIsSkipped(t *testing.T) {
	h := newRouted(t, `
  - name: pair
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    cooldown: {failures: 1, period: 1m}`)
	h.upstream.Failing(500)
	for i := range 3 {
		resp := h.post(engKey, chatFor("pair", false))
		readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Portcullis-Provider") != "backup" {
			t.Fatalf("call %d: status %d from %q", i+1, resp.StatusCode, resp.Header.Get("X-Portcullis-Provider"))
		}
	}
	if n := len(h.upstream.Requests()); n != 1 {
		t.Errorf("the cooled-down target got %d requests, want only the first", n)
	}
}

// A client that leaves while the gateway waits to retry stops every
// further attempt.
func TestClientDisconnectDuringBackoff(t *testing.T) {
	h := newRouted(t, `
  - name: persistent
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    retry: {attempts: 5, backoff: 20s, max_backoff: 20s}`)
	h.upstream.Failing(500)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", h.url+"/v1/chat/completions", strings.NewReader(chatFor("persistent", true)))
	req.Header.Set("Authorization", "Bearer "+engKey)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testkit.Wait(t, h.upstream.Arrived, "the first attempt")
	// The first attempt is over once the target has no call in flight:
	// the gateway is in its back-off (10s at the least).
	for deadline := time.Now().Add(10 * time.Second); readyTargets(t, h.harness, "persistent")[0].InFlight != 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	rec := h.records.last(t, 1)
	if rec.ErrorClass != "client_disconnected" || rec.Status != 499 {
		t.Errorf("record %q %d, want client_disconnected 499", rec.ErrorClass, rec.Status)
	}
	if !sameList(attemptsOf(rec), []string{"upstream:500:upstream_server_error"}) {
		t.Errorf("attempts = %v, want the first only", attemptsOf(rec))
	}
	if a, b := len(h.upstream.Requests()), len(h.backup.Requests()); a != 1 || b != 0 {
		t.Errorf("after the client left: %d and %d upstream requests, want 1 and 0", a, b)
	}
}

// Weighted balancing spreads calls by weight; the headers and records say
// which target served each.
func TestWeightedSpreadsCalls(t *testing.T) {
	h := newRouted(t, `
  - name: spread
    strategy: weighted
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini, weight: 1}
      - {provider: backup, upstream_model: gpt-4o-mini, weight: 3}`)
	served := map[string]int{}
	for range 200 {
		resp := h.post(engKey, chatFor("spread", false))
		readAll(t, resp.Body)
		resp.Body.Close()
		served[resp.Header.Get("X-Portcullis-Provider")]++
	}
	if served["upstream"] == 0 || served["backup"] <= served["upstream"] || served["upstream"]+served["backup"] != 200 {
		t.Errorf("served = %v; want both, backup about three times as often", served)
	}
}

// Least-busy keeps the targets' in-flight counts level when one target
// is much slower than the other: calls go where fewest are waiting.
func TestLeastBusyUnderUnevenLatency(t *testing.T) {
	h := newRouted(t, `
  - name: balanced
    strategy: least-busy
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}`)
	// upstream holds every stream after its first event: the slow one.
	h.upstream.Hold = make(chan struct{})
	var open []*http.Response
	defer func() {
		close(h.upstream.Hold)
		for _, r := range open {
			readAll(t, r.Body)
			r.Body.Close()
		}
	}()
	for i := range 12 {
		resp := h.post(engKey, chatFor("balanced", true))
		if resp.Header.Get("X-Portcullis-Provider") == "upstream" {
			testkit.ReadEvent(t, bufio.NewReader(resp.Body))
			open = append(open, resp)
		} else {
			readAll(t, resp.Body)
			resp.Body.Close()
			h.records.last(t, i+1-len(open)) // its record: it is no longer in flight
		}
		ts := readyTargets(t, h.harness, "balanced")
		if d := ts[0].InFlight - ts[1].InFlight; d > 1 || d < -1 {
			t.Fatalf("after call %d: in flight %d and %d", i+1, ts[0].InFlight, ts[1].InFlight)
		}
	}
	if len(open) != 1 {
		t.Errorf("the slow target got %d calls, want 1", len(open))
	}
}

// Weighted balancing through the gateway: over 10,000 calls each target
// serves its weight's share, within 2 points. The calls go to the
// in-process demo provider, under two upstream model names, straight
// through the handler.
func TestWeightedOver10000Requests(t *testing.T) {
	h := newHarness(t, harnessOptions{models: `
  - name: spread
    strategy: weighted
    targets:
      - {provider: demo, upstream_model: demo-a, weight: 1}
      - {provider: demo, upstream_model: demo-b, weight: 3}
      - {provider: demo, upstream_model: demo-c, weight: 6}`})
	const n = 10000
	served := map[string]int{}
	body := chatFor("spread", false)
	for range n {
		req := httptest.NewRequest("POST", "/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+engKey)
		w := httptest.NewRecorder()
		h.srv.Handler().ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		served[w.Header().Get("X-Portcullis-Model")]++
	}
	for model, weight := range map[string]float64{"demo-a": 0.1, "demo-b": 0.3, "demo-c": 0.6} {
		if got := float64(served[model]) / n; got < weight-0.02 || got > weight+0.02 {
			t.Errorf("%s served %.3f of the calls, want %.1f±0.02 (%v)", model, got, weight, served)
		}
	}
}

// The routing metrics: attempts by result, retries, fallbacks, and each
// target's cooldowns and state, read at the scrape.
func TestRoutingMetrics(t *testing.T) {
	reg := metrics.New()
	h := newRoutedWith(t, `
  - name: counted
    targets:
      - {provider: upstream, upstream_model: gpt-4o-mini}
      - {provider: backup, upstream_model: gpt-4o-mini}
    retry: {attempts: 2, backoff: 1ms, max_backoff: 1ms}
    cooldown: {failures: 2, period: 1m}`, reg)
	reg.WatchTargets(func() []metrics.Target {
		var out []metrics.Target
		for _, ts := range h.srv.Targets() {
			out = append(out, metrics.Target{Model: ts.Model, Provider: ts.Provider, UpstreamModel: ts.UpstreamModel,
				Open: ts.State == "open", Cooldowns: ts.Cooldowns, InFlight: ts.InFlight})
		}
		return out
	})
	h.upstream.Failing(500)
	for range 2 {
		resp := h.post(engKey, chatFor("counted", false))
		readAll(t, resp.Body)
		resp.Body.Close()
	}
	h.records.last(t, 2)
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		// Call 1: upstream 500, retried 500 (it opens), backup answers.
		// Call 2: upstream skipped, backup answers.
		`portcullis_upstream_attempts_total{model="counted",provider="upstream",result="upstream_server_error"} 2`,
		`portcullis_upstream_attempts_total{model="counted",provider="backup",result="ok"} 2`,
		`portcullis_retries_total{model="counted",provider="upstream"} 1`,
		`portcullis_fallbacks_total{from="upstream",model="counted",to="backup"} 1`,
		`portcullis_target_cooldowns_total{model="counted",provider="upstream",upstream_model="gpt-4o-mini"} 1`,
		`portcullis_target_cooling_down{model="counted",provider="upstream",upstream_model="gpt-4o-mini"} 1`,
		`portcullis_target_cooling_down{model="counted",provider="backup",upstream_model="gpt-4o-mini"} 0`,
		`portcullis_target_in_flight{model="counted",provider="backup",upstream_model="gpt-4o-mini"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// A stream that goes quiet for longer than its idle time-out after
// reaching the client ends with an error event; an attempt that runs past
// its total time-out before answering is a 504 when no target is left.
func TestIdleAndTotalTimeouts(t *testing.T) {
	h := newRouted(t, `
  - name: quiet
    provider: upstream
    upstream_model: gpt-4o-mini
    timeouts: {idle: 300ms}
  - name: slow
    provider: upstream
    upstream_model: gpt-4o-mini
    timeouts: {total: 300ms}`)
	h.upstream.Script(testkit.Fault{HoldAfter: 2})
	resp := h.post(engKey, chatFor("quiet", true))
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	if !strings.Contains(body, "Red") || !strings.HasSuffix(body, `"code":"upstream_stream_broken"}}`+"\n\n") {
		t.Errorf("idle stream:\n%s", body)
	}
	if rec := h.records.last(t, 1); rec.ErrorClass != "upstream_stream_broken" || !strings.Contains(rec.Error, "idle time-out") {
		t.Errorf("record %q: %s", rec.ErrorClass, rec.Error)
	}

	h.upstream.Script(testkit.Fault{Hang: true})
	resp = h.post(engKey, chatFor("slow", false))
	body = string(readAll(t, resp.Body))
	resp.Body.Close()
	rec := h.records.last(t, 2)
	if resp.StatusCode != 504 || !strings.Contains(body, `"code":"upstream_timeout"`) || rec.ErrorClass != "upstream_timeout" {
		t.Errorf("status %d class %q: %s", resp.StatusCode, rec.ErrorClass, body)
	}
}

// An Anthropic client's call whose Anthropic target is overloaded and
// asks to wait longer than the model allows moves on at once to an
// OpenAI target, and gets the answer in Anthropic's shape.
func TestOverloadedAnthropicFallsBackForAnthropicClient(t *testing.T) {
	h := newRouted(t, `
  - name: claude-first
    targets:
      - {provider: claude, upstream_model: claude-sonnet-4-5}
      - {provider: upstream, upstream_model: gpt-4o-mini}
    retry: {attempts: 3, max_retry_after: 1s}`)
	h.claude.Fail(testkit.AnthropicOverloaded) // 529, retry-after 7
	req, _ := http.NewRequest("POST", h.url+"/v1/messages", strings.NewReader(`{"model":"claude-first","max_tokens":100,"messages":[{"role":"user","content":"Name the three primary colors."}]}`))
	req.Header.Set("X-Api-Key", engKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body, `"type":"message"`) || resp.Header.Get("X-Portcullis-Provider") != "upstream" {
		t.Fatalf("status %d from %q: %s", resp.StatusCode, resp.Header.Get("X-Portcullis-Provider"), body)
	}
	rec := h.records.last(t, 1)
	if want := []string{"claude:529:upstream_server_error", "upstream:200:"}; !sameList(attemptsOf(rec), want) {
		t.Errorf("attempts = %v, want %v", attemptsOf(rec), want)
	}
}

// Each provider has one connection pool: sequential calls to a provider
// reuse one connection instead of opening one per call.
func TestCallsReuseTheProvidersConnection(t *testing.T) {
	h := newRouted(t, "")
	for range 20 {
		resp := h.post(engKey, chatFor("smart", false))
		readAll(t, resp.Body)
		resp.Body.Close()
	}
	conns := map[string]bool{}
	for _, r := range h.upstream.Requests() {
		conns[r.RemoteAddr] = true
	}
	if len(conns) != 1 {
		t.Errorf("20 calls came on %d connections, want 1", len(conns))
	}
}

// An Anthropic stream that opens with overloaded_error has sent nothing
// of an answer: the call falls back unseen; with no target left, the
// client gets the overload as an error status, not a 200 stream.
func TestStreamOpeningWithOverloadFallsBack(t *testing.T) {
	h := newRouted(t, `
  - name: claude-stream
    targets:
      - {provider: claude, upstream_model: claude-sonnet-4-5}
      - {provider: upstream, upstream_model: gpt-4o-mini}
  - name: claude-only
    provider: claude
    upstream_model: claude-sonnet-4-5`)
	h.claude.Fail(testkit.AnthropicOverloadedStream)
	resp := h.post(engKey, chatFor("claude-stream", true))
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	rec := h.records.last(t, 1)
	if resp.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Contains(body, "overloaded") ||
		!sameList(attemptsOf(rec), []string{"claude:200:upstream_server_error", "upstream:200:"}) {
		t.Errorf("status %d attempts %v:\n%s", resp.StatusCode, attemptsOf(rec), body)
	}

	resp = h.post(engKey, chatFor("claude-only", true))
	body = string(readAll(t, resp.Body))
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(body, `"code":"overloaded"`) {
		t.Errorf("alone: status %d: %s", resp.StatusCode, body)
	}
}
