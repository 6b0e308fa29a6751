package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"portcullis/internal/testkit"
	"portcullis/usage"
)

// newMeter is a meter over an in-memory store, with the shipped prices.
func newMeter(t *testing.T) *usage.Meter {
	t.Helper()
	prices, err := usage.NewPrices(nil)
	if err != nil {
		t.Fatal(err)
	}
	return usage.NewMeter(usage.NewMemoryStore(), prices, usage.Options{})
}

// budgetPolicy gives alice one daily token budget and the rate limits.
func budgetPolicy(t *testing.T, tokens, rpm int) string {
	return policyFolder(t, fmt.Sprintf(`{"allow": true, "budgets": [{"key": "user:alice", "window": "day", "tokens": %d}], "rate_limits": {"requests_per_minute": %d}}`, tokens, rpm))
}

// standing reads alice's daily budget.
func standing(t *testing.T, m *usage.Meter, tokens int) usage.Standing {
	t.Helper()
	st, err := m.Standings(context.Background(), &usage.Request{Budgets: []usage.Budget{{Key: "user:alice", Window: "day", Tokens: int64(tokens)}}})
	if err != nil {
		t.Fatal(err)
	}
	return st[0]
}

type errorAnswer struct {
	Type  string `json:"type"`
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func TestBudgetRefusalIn429WithHeaders(t *testing.T) {
	m := newMeter(t)
	h := newHarness(t, harnessOptions{policyDir: budgetPolicy(t, 20, 0), meter: m})
	// The estimate of this prompt is more than the 20-token budget holds.
	prompt := strings.Repeat("tell me about budgets and limits ", 10)
	resp := h.post(engKey, `{"model":"smart","messages":[{"role":"user","content":"`+prompt+`"}]}`)
	var e errorAnswer
	json.Unmarshal(readAll(t, resp.Body), &e)
	if resp.StatusCode != 429 || e.Error.Code != "budget_exceeded" || e.Error.Type != "insufficient_quota" || !strings.Contains(e.Error.Message, "user:alice") {
		t.Errorf("OpenAI shape: %d %+v", resp.StatusCode, e)
	}
	for _, k := range []string{"Retry-After", "X-Ratelimit-Limit-Tokens", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Tokens"} {
		if resp.Header.Get(k) == "" {
			t.Errorf("no %s header: %v", k, resp.Header)
		}
	}
	if resp.Header.Get("X-Ratelimit-Limit-Tokens") != "20" {
		t.Errorf("limit header %q", resp.Header.Get("X-Ratelimit-Limit-Tokens"))
	}
	if rec := h.records.last(t, 1); rec.ErrorClass != "budget_exceeded" || rec.Status != 429 || rec.Outcome() != "denied" {
		t.Errorf("record %s %d %s", rec.ErrorClass, rec.Status, rec.Outcome())
	}
	if n := len(h.upstream.Requests()); n != 0 {
		t.Errorf("%d calls reached the upstream", n)
	}
	// /v1/messages answers in Anthropic's shape.
	resp = h.postPath("/v1/messages", engKey, `{"model":"smart","max_tokens":100,"messages":[{"role":"user","content":"`+prompt+`"}]}`)
	json.Unmarshal(readAll(t, resp.Body), &e)
	if resp.StatusCode != 429 || e.Type != "error" || e.Error.Type != "rate_limit_error" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("Anthropic shape: %d %+v", resp.StatusCode, e)
	}
}

func TestRateLimitRefusal(t *testing.T) {
	h := newHarness(t, harnessOptions{policyDir: budgetPolicy(t, 1_000_000, 2), meter: newMeter(t)})
	body := `{"model":"smart","messages":[{"role":"user","content":"hi"}]}`
	for i := 0; i < 2; i++ {
		resp := h.post(engKey, body)
		readAll(t, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
	}
	resp := h.post(engKey, body)
	var e errorAnswer
	json.Unmarshal(readAll(t, resp.Body), &e)
	if resp.StatusCode != 429 || e.Error.Code != "rate_limit_exceeded" || e.Error.Type != "requests" ||
		resp.Header.Get("X-Ratelimit-Limit-Requests") != "2" || resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
		t.Errorf("third call: %d %+v %v", resp.StatusCode, e, resp.Header)
	}
	if rec := h.records.last(t, 3); rec.ErrorClass != "rate_limited" {
		t.Errorf("record class %q", rec.ErrorClass)
	}
}

// A budget with less room than the client's max_tokens lowers it, in the
// client's own field, instead of refusing.
func TestMaxTokensLoweredToWhatTheBudgetHolds(t *testing.T) {
	m := newMeter(t)
	h := newHarness(t, harnessOptions{policyDir: budgetPolicy(t, 300, 0), meter: m})
	resp := h.post(engKey, `{"model":"smart","max_completion_tokens":5000,"messages":[{"role":"user","content":"Name the three primary colors."}]}`)
	readAll(t, resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sent := upstreamJSON(t, h)
	var capSent int
	json.Unmarshal(sent["max_completion_tokens"], &capSent)
	if _, ok := sent["max_tokens"]; ok || capSent <= 0 || capSent >= 300 {
		t.Errorf("upstream got max_completion_tokens %s, max_tokens %s", sent["max_completion_tokens"], sent["max_tokens"])
	}
	// Settled to the fixture's usage: 27 + 7 tokens.
	if st := standing(t, m, 300); st.UsedTokens != 34 || st.UsedRequests != 1 {
		t.Errorf("settled %+v", st)
	}
	// Cost from the price table: gpt-4o-mini, 27 × $0.15/M + 7 × $0.60/M.
	if rec := h.records.last(t, 1); rec.CostUSD != (27*0.15+7*0.60)/1e6 || rec.PriceMissing {
		t.Errorf("cost %v (missing %v), want %v", rec.CostUSD, rec.PriceMissing, (27*0.15+7*0.60)/1e6)
	}
}

// longUpstream streams 400 words whatever max_tokens says, in OpenAI's
// format or Anthropic's, as a provider that ignores the cap would.
func longUpstream(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		flush := func() { http.NewResponseController(w).Flush() }
		if strings.HasSuffix(r.URL.Path, "/messages") {
			fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":20,\"output_tokens\":1}}}\n\n")
			fmt.Fprint(w, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")
			for i := 0; i < 400; i++ {
				if _, err := fmt.Fprintf(w, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" word\"}}\n\n"); err != nil {
					return
				}
				flush()
			}
			fmt.Fprint(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":400}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
			return
		}
		fmt.Fprint(w, "data: {\"id\":\"chatcmpl-long\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n")
		for i := 0; i < 400; i++ {
			if _, err := fmt.Fprint(w, "data: {\"id\":\"chatcmpl-long\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"finish_reason\":null}]}\n\n"); err != nil {
				return
			}
			flush()
		}
		fmt.Fprint(w, "data: {\"id\":\"chatcmpl-long\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		fmt.Fprint(w, "data: {\"id\":\"chatcmpl-long\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":400,\"total_tokens\":420}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// sseData reads a stream's data lines.
func sseData(t *testing.T, resp *http.Response) []string {
	t.Helper()
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// A streamed answer that would pass its budget is cut at the limit: the
// client gets a well-formed end in its own format, the record says why,
// and the budget is not overspent.
func TestStreamCutAtTheBudget(t *testing.T) {
	long := longUpstream(t)
	for _, tt := range []struct {
		name, path, body string
		anthropic        bool
	}{
		{"openai passthrough", "/v1/chat/completions", `{"model":"long","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say word a lot."}]}`, false},
		{"openai to anthropic client", "/v1/messages", `{"model":"long","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"Say word a lot."}]}`, true},
		{"anthropic passthrough", "/v1/messages", `{"model":"long-claude","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"Say word a lot."}]}`, true},
		{"anthropic to openai client", "/v1/chat/completions", `{"model":"long-claude","stream":true,"messages":[{"role":"user","content":"Say word a lot."}]}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeter(t)
			h := newHarness(t, harnessOptions{
				policyDir: budgetPolicy(t, 150, 0), meter: m,
				providers: "\n  - name: long\n    type: openai\n    base_url: " + long.URL + "/v1\n    api_key: k\n  - name: longant\n    type: anthropic\n    base_url: " + long.URL + "\n    api_key: k",
				models:    "\n  - name: long\n    provider: long\n    upstream_model: gpt-4o-mini\n  - name: long-claude\n    provider: longant\n    upstream_model: claude-sonnet-4-5",
			})
			var resp *http.Response
			if tt.path == "/v1/messages" {
				resp = h.postPath(tt.path, engKey, tt.body)
			} else {
				resp = h.post(engKey, tt.body)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp.Body))
			}
			data := sseData(t, resp)
			words := strings.Count(strings.Join(data, "\n"), `word`)
			if words == 0 || words >= 150 {
				t.Errorf("%d words relayed, want some and fewer than the 150-token budget", words)
			}
			if tt.anthropic {
				n := len(data)
				if n < 3 || !strings.Contains(data[n-3], `"content_block_stop"`) || !strings.Contains(data[n-2], `"stop_reason":"max_tokens"`) || data[n-1] != `{"type":"message_stop"}` {
					t.Errorf("stream end: %q", data[max(0, n-3):])
				}
			} else {
				var final, usageChunk struct {
					Choices []struct {
						FinishReason string `json:"finish_reason"`
					} `json:"choices"`
					Portcullis struct{ StreamCut, Message string } `json:"portcullis"`
					Usage      *struct {
						CompletionTokens int `json:"completion_tokens"`
					} `json:"usage"`
				}
				n := len(data)
				wantUsage := strings.Contains(tt.body, "include_usage")
				last := n - 2
				if wantUsage {
					last = n - 3
				}
				if last < 0 || data[n-1] != "[DONE]" {
					t.Fatalf("stream end: %q", data[max(0, n-3):])
				}
				json.Unmarshal([]byte(data[last]), &final)
				if len(final.Choices) != 1 || final.Choices[0].FinishReason != "length" || !strings.Contains(data[last], `"stream_cut":"budget"`) {
					t.Errorf("final chunk %s", data[last])
				}
				if wantUsage {
					json.Unmarshal([]byte(data[n-2]), &usageChunk)
					if usageChunk.Usage == nil || usageChunk.Usage.CompletionTokens != words {
						t.Errorf("usage chunk %s for %d words", data[n-2], words)
					}
				}
			}
			rec := h.records.last(t, 1)
			if !strings.Contains(rec.StreamCut, "budget") || rec.ErrorClass != "" || rec.Outcome() != "success" {
				t.Errorf("record: cut %q class %q", rec.StreamCut, rec.ErrorClass)
			}
			if st := standing(t, m, 150); st.UsedTokens > 150 || st.UsedRequests != 1 {
				t.Errorf("settled %+v against a budget of 150", st)
			}
		})
	}
}

// A client that leaves mid-stream is charged what was generated.
func TestClientLeavingMidStreamIsCharged(t *testing.T) {
	m := newMeter(t)
	h := newHarness(t, harnessOptions{policyDir: budgetPolicy(t, 100_000, 0), meter: m})
	req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"demo-hang","stream":true,"max_tokens":500,"messages":[{"role":"user","content":"hello there"}]}`))
	req.Header.Set("Authorization", "Bearer "+engKey)
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(line, `"content":"`) && !strings.Contains(line, `"content":""`) {
			break
		}
	}
	cancel()
	resp.Body.Close()
	rec := h.records.last(t, 1)
	st := standing(t, m, 100_000)
	// The reservation (input estimate ×1.25 + 500) is released down to the
	// estimated input and the word that was sent.
	if rec.ErrorClass != "client_disconnected" || st.UsedRequests != 1 || st.UsedTokens <= 1 || st.UsedTokens >= 100 {
		t.Errorf("class %q, settled %+v", rec.ErrorClass, st)
	}
}

// 200 concurrent calls against a budget that fits 50 never settle more than it.
func TestConcurrentCallsStayWithinTheBudget(t *testing.T) {
	prices, _ := usage.NewPrices(nil)
	m := usage.NewMeter(usage.NewMemoryStore(), prices, usage.Options{MinOutputTokens: 10})
	const budget = 50 * 40
	h := newHarness(t, harnessOptions{policyDir: budgetPolicy(t, budget, 0), meter: m})
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp := h.post(engKey, `{"model":"demo","max_tokens":10,"messages":[{"role":"user","content":"Count from one to ten, please, in words."}]}`)
			readAll(t, resp.Body)
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 429:
				refused.Add(1)
			default:
				t.Errorf("status %d", resp.StatusCode)
			}
		}()
	}
	close(start)
	wg.Wait()
	h.records.last(t, 200)
	st := standing(t, m, budget)
	if st.UsedTokens > budget || ok.Load() == 0 || refused.Load() == 0 || st.UsedRequests != ok.Load() {
		t.Errorf("%d answered, %d refused; settled %+v against %d", ok.Load(), refused.Load(), st, budget)
	}
	t.Logf("%d answered, %d refused, %d of %d tokens settled", ok.Load(), refused.Load(), st.UsedTokens, budget)
}

func TestUsageReportShowsOwnBudgets(t *testing.T) {
	m := newMeter(t)
	h := newHarness(t, harnessOptions{policyDir: budgetPolicy(t, 10_000, 5), meter: m})
	resp := h.post(engKey, `{"model":"smart","messages":[{"role":"user","content":"Name the three primary colors."}]}`)
	readAll(t, resp.Body)
	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+engKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Subject string `json:"subject"`
		Budgets []struct {
			Key, Window  string
			LimitTokens  int64  `json:"limit_tokens"`
			UsedTokens   int64  `json:"used_tokens"`
			UsedRequests int64  `json:"used_requests"`
			ResetsAt     string `json:"resets_at"`
		} `json:"budgets"`
		RateLimits []struct {
			LimitRequests int64 `json:"limit_requests"`
			UsedRequests  int64 `json:"used_requests"`
		} `json:"rate_limits"`
	}
	body := readAll(t, resp.Body)
	if err := json.Unmarshal(body, &rep); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if rep.Subject != "alice" || len(rep.Budgets) != 1 || rep.Budgets[0].Key != "user:alice" || rep.Budgets[0].UsedTokens != 34 ||
		rep.Budgets[0].LimitTokens != 10_000 || rep.Budgets[0].ResetsAt == "" || len(rep.RateLimits) != 1 || rep.RateLimits[0].UsedRequests != 1 || rep.RateLimits[0].LimitRequests != 5 {
		t.Errorf("report %s", body)
	}
}

// The cost of a mixed workload (OpenAI and Anthropic, streamed and not,
// passed through and translated, and an unpriced model) equals the hand
// computation from the price table, call by call, in total, and in the
// dollar budget's counter.
func TestMixedWorkloadCostMatchesPriceTable(t *testing.T) {
	m := newMeter(t)
	ant := testkit.NewAnthropicUpstream(t, anthropicKey)
	h := newHarness(t, harnessOptions{
		policyDir: policyFolder(t, `{"allow": true, "budgets": [{"key": "user:alice", "window": "month", "usd": 100}]}`),
		meter:     m,
		providers: "\n  - name: anthropic\n    type: anthropic\n    base_url: " + ant.URL + "\n    api_key: " + anthropicKey,
		models:    "\n  - name: claude\n    provider: anthropic\n    upstream_model: claude-sonnet-4-5",
	})
	// By hand, in microdollars, from usage/prices.json and the fixtures' usage:
	// gpt-4o-mini 27 in × 0.15 + 7 out × 0.60 = 8.25;
	// claude-sonnet-4-5 24 in × 3.00 + 10 out × 15.00 = 222.
	const mini, sonnet = 8.25, 222.0
	chat := `{"model":"smart","messages":[{"role":"user","content":"Name the three primary colors."}]`
	messages := `{"model":"claude","max_tokens":100,"messages":[{"role":"user","content":"Name the three primary colors."}]`
	calls := []struct {
		path, body string
		want       float64 // microdollars
		missing    bool
	}{
		{"/v1/chat/completions", chat + `}`, mini, false},
		{"/v1/chat/completions", chat + `}`, mini, false},
		{"/v1/chat/completions", chat + `,"stream":true,"stream_options":{"include_usage":true}}`, mini, false},
		{"/v1/chat/completions", chat + `,"stream":true}`, mini, false}, // the gateway asks for the usage itself
		{"/v1/messages", messages + `}`, sonnet, false},
		{"/v1/messages", messages + `,"stream":true}`, sonnet, false},
		{"/v1/chat/completions", `{"model":"claude","messages":[{"role":"user","content":"Name the three primary colors."}]}`, sonnet, false},
		{"/v1/chat/completions", `{"model":"demo","messages":[{"role":"user","content":"Name the three primary colors."}]}`, 0, true},
	}
	var total float64
	for i, c := range calls {
		var resp *http.Response
		if c.path == "/v1/messages" {
			resp = h.postPath(c.path, engKey, c.body)
		} else {
			resp = h.post(engKey, c.body)
		}
		readAll(t, resp.Body)
		resp.Body.Close()
		rec := h.records.last(t, i+1)
		if resp.StatusCode != 200 || math.Abs(rec.CostUSD*1e6-c.want) > 1e-9 || rec.PriceMissing != c.missing {
			t.Errorf("call %d (%s %s): status %d, cost %v µ$ (missing %v), want %v", i, c.path, c.body, resp.StatusCode, rec.CostUSD*1e6, rec.PriceMissing, c.want)
		}
		total += c.want
	}
	st, err := m.Standings(context.Background(), &usage.Request{Budgets: []usage.Budget{{Key: "user:alice", Window: "month", USD: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := 4*mini + 3*sonnet; total != want || math.Abs(st[0].UsedUSD*1e6-want) > 1e-9 {
		t.Errorf("budget holds %v µ$, want %v", st[0].UsedUSD*1e6, want)
	}
}

// The portal's home page shows the signed-in caller's usage against each
// of its budgets and its rate limits.
func TestPortalShowsUsage(t *testing.T) {
	s := newSignedInWith(t, map[string]any{"email": "alice@example.com", "email_verified": true, "groups": []string{"engineering"}}, harnessOptions{meter: newMeter(t)})
	for _, want := range []string{"Your usage", "Group <code>engineering</code>", "of 5,000,000", "<td>You</td>", "month", "of $50.00", "rolling:1m"} {
		if !strings.Contains(s.home, want) {
			t.Errorf("the home page lacks %q:\n%s", want, s.home)
		}
	}
	// Without a meter there is no usage table.
	if plain := newSignedIn(t, map[string]any{"email": "bob@example.com", "email_verified": true, "groups": []string{"engineering"}}); strings.Contains(plain.home, "Your usage") {
		t.Error("a usage table without a meter")
	}
}

// A policy shows a caller more budgets than its own through its decision
// for api "usage": here the engineering group sees the analysts' budget.
func TestUsageReportShowsWhatThePolicyAllows(t *testing.T) {
	m := newMeter(t)
	h := newHarness(t, harnessOptions{meter: m, policyDir: policyFolder(t, `{"allow": true, "budgets": b} if {
	b := [{"key": "user:alice", "window": "day", "tokens": 1000}]
	input.request.api != "usage"
} else := {"allow": true, "budgets": [{"key": "group:analysts", "window": "month", "usd": 20}]} if {
	"engineering" in input.identity.groups
} else := {"allow": false}`)})
	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/usage", nil)
	req.Header.Set("Authorization", "Bearer "+engKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := string(readAll(t, resp.Body))
	if resp.StatusCode != 200 || !strings.Contains(body, `"key":"group:analysts"`) || !strings.Contains(body, `"key":"user:alice"`) {
		t.Errorf("engineering: %d %s", resp.StatusCode, body)
	}
	req.Header.Set("Authorization", "Bearer "+demoKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := string(readAll(t, resp.Body)); strings.Contains(body, "group:analysts") {
		t.Errorf("the demo group sees the analysts' budget: %s", body)
	}
}
