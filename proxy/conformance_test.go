package proxy_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"portcullis/internal/testkit"
)

// The conformance table: every provider format × every kind of call,
// through both inbound APIs, checked against what an OpenAI client (and,
// on /v1/messages, an Anthropic client) must see. Streams must join into
// the non-streamed answer, tool arguments joined from deltas must parse,
// and usage must be right in both modes.
//
// To add a provider: start its fake in a func(testing.TB) conformanceFake
// that returns the YAML of its providers and models and, given the running
// gateway, one want row per model (what each call answers, how to make the
// fake fail, what the fake should have received); append that function to
// conformanceFakes from an init function of its own file, as
// conformance_compat_test.go does. Every test of the table then runs the
// new rows: plain and streamed chat, tool call and streamed tool call, the
// tool result turn, image input, embeddings (or their refusal), 429, auth
// and context-length errors, through /v1/chat/completions and /v1/messages.

const anthropicKey = "sk-ant-upstream-SECRET-9c2e41d0"

// conformanceFake is one fake provider of the conformance gateway: what it
// adds to the configuration's providers and models sections, and, once
// the gateway runs, the table rows of its models.
type conformanceFake struct {
	providers, models string
	rows              func(t *testing.T, h *harness) []want
}

// conformanceFakes start the fakes of the table, each once per gateway.
// Another file of this package adds its providers' fakes in an init
// function; every test of the table then runs their rows too.
var conformanceFakes = []func(t testing.TB) conformanceFake{openaiFake, anthropicFake}

// conformanceHarness is a gateway with every fake of conformanceFakes.
func conformanceHarness(t *testing.T) (*harness, []want) {
	t.Helper()
	var o harnessOptions
	var fakes []conformanceFake
	for _, start := range conformanceFakes {
		f := start(t)
		o.providers += f.providers
		o.models += f.models
		fakes = append(fakes, f)
	}
	h := newHarness(t, o)
	var rows []want
	for _, f := range fakes {
		rows = append(rows, f.rows(t, h)...)
	}
	return h, rows
}

// answer is what a client read from the gateway, in either format.
type answer struct {
	status     int
	text       string
	toolName   string
	toolArgs   map[string]any
	finish     string // OpenAI finish_reason or Anthropic stop_reason
	prompt     int
	completion int
	errCode    string // OpenAI error code, or Anthropic error type
	errParam   string // OpenAI error param
	retryAfter string
	vectors    int // embeddings returned
	raw        []byte
}

// want is one model's row of the table: what each kind of call must
// answer, and how to make its provider fail.
type want struct {
	model            string
	text, toolText   string
	usage, toolUsage [2]int // prompt, completion
	// noTools is set for a provider without function calling: every call
	// offering tools is refused with 400, param "tools".
	noTools bool
	// embeddings is the prompt token count of the embeddings call; 0 for a
	// provider without embeddings, which is refused with 400.
	embeddings          int
	rateLimitRetryAfter string
	failRateLimit       func()
	failAuth            func()
	failContext         func()
	reset               func()
	// upstreamSawToolResult and upstreamSawImages check the provider's
	// last request.
	upstreamSawToolResult func(t *testing.T)
	upstreamSawImages     func(t *testing.T)
	// chatPassthrough and messagesPassthrough are the exact bytes a
	// same-format client gets for the plain call, when they pass through.
	chatPassthrough, messagesPassthrough []byte
	// requests returns what the row's provider received.
	requests func() []testkit.Received
	// failOverloaded and failMidstream, when set, make the provider
	// answer overloaded, and break a stream with an error event.
	failOverloaded, failMidstream func()
}

// row returns the table's row of model.
func row(t *testing.T, rows []want, model string) want {
	t.Helper()
	for _, r := range rows {
		if r.model == model {
			return r
		}
	}
	t.Fatalf("no row for model %q", model)
	return want{}
}

var weatherArgs = map[string]any{"location": "Paris, France", "unit": "celsius"}

// openaiFake is the harness's own OpenAI-format fake, model "smart", and
// a vLLM server (model "vllm"), which speaks OpenAI's format exactly and
// so is played by a fake of the same kind.
func openaiFake(t testing.TB) conformanceFake {
	vllm := testkit.NewUpstream(t)
	return conformanceFake{
		providers: "\n  - name: vllm\n    type: vllm\n    base_url: " + vllm.URL + "/v1",
		models:    "\n  - name: vllm\n    provider: vllm\n    upstream_model: meta-llama/Llama-3.1-8B-Instruct",
		rows: func(t *testing.T, h *harness) []want {
			return []want{openaiRow("smart", h.upstream), openaiRow("vllm", vllm)}
		},
	}
}

// openaiRow is the row of a model served by the OpenAI-format fake up.
func openaiRow(model string, up *testkit.Upstream) want {
	fail := func(status int, fixture string, header http.Header) func() {
		return func() { up.Status, up.Body, up.Header = status, testkit.Fixture(fixture), header }
	}
	return want{
		model: model, text: "Red, yellow, and blue.", toolText: "",
		usage: [2]int{27, 7}, toolUsage: [2]int{71, 19}, embeddings: 12,
		rateLimitRetryAfter: "1",
		failRateLimit:       fail(429, "error_429.json", http.Header{"Retry-After": {"1"}}),
		failAuth:            fail(401, "error_401.json", nil),
		failContext:         fail(400, "error_400_context_length.json", nil),
		reset:               func() { up.Status, up.Body, up.Header = 0, nil, nil },
		upstreamSawToolResult: func(t *testing.T) {
			msgs := lastBody(t, up.Requests())["messages"].([]any)
			last := msgs[len(msgs)-1].(map[string]any)
			if last["role"] != "tool" || !strings.HasPrefix(last["tool_call_id"].(string), "toolu_") && !strings.HasPrefix(last["tool_call_id"].(string), "call_") {
				t.Errorf("upstream's last message = %v", last)
			}
		},
		upstreamSawImages: func(t *testing.T) {
			body, _ := json.Marshal(lastBody(t, up.Requests())["messages"])
			if !bytes.Contains(body, []byte(`"url":"data:image/png;base64,iVBORw0KGgo="`)) {
				t.Errorf("upstream messages lost the image: %s", body)
			}
		},
		chatPassthrough: testkit.Fixture("chat_response.json"),
		requests:        up.Requests,
	}
}

// anthropicFake is a fake Anthropic, model "claude".
func anthropicFake(t testing.TB) conformanceFake {
	ant := testkit.NewAnthropicUpstream(t, anthropicKey)
	lastAnthropic := func(t *testing.T) map[string]any { return lastBody(t, ant.Requests()) }
	return conformanceFake{
		providers: "\n  - name: anthropic\n    type: anthropic\n    base_url: " + ant.URL + "\n    api_key: " + anthropicKey,
		models:    "\n  - name: claude\n    provider: anthropic\n    upstream_model: claude-sonnet-4-5",
		rows: func(*testing.T, *harness) []want {
			return []want{{
				model: "claude", text: "Red, yellow, and blue.", toolText: "I'll check the current weather in Paris.",
				usage: [2]int{24, 10}, toolUsage: [2]int{412, 71},
				rateLimitRetryAfter: testkit.AnthropicRetryAfter,
				failRateLimit:       func() { ant.Fail(testkit.AnthropicRateLimited) },
				failAuth:            func() { ant.Fail(testkit.AnthropicAuth) },
				failContext:         func() { ant.Fail(testkit.AnthropicContextLength) },
				reset:               func() { ant.Fail("") },
				upstreamSawToolResult: func(t *testing.T) {
					msgs := lastAnthropic(t)["messages"].([]any)
					last := msgs[len(msgs)-1].(map[string]any)
					blocks, _ := last["content"].([]any)
					if last["role"] != "user" || len(blocks) == 0 || blocks[0].(map[string]any)["type"] != "tool_result" {
						t.Errorf("upstream's last message = %v, want a user turn starting with a tool_result", last)
					}
					prev := msgs[len(msgs)-2].(map[string]any)
					if b, _ := json.Marshal(prev); !bytes.Contains(b, []byte(`"type":"tool_use"`)) || !bytes.Contains(b, []byte(`"input":{`)) {
						t.Errorf("assistant turn = %s, want a tool_use block with an input object", b)
					}
				},
				upstreamSawImages: func(t *testing.T) {
					b, _ := json.Marshal(lastAnthropic(t)["messages"])
					if !bytes.Contains(b, []byte(`"source":{"data":"iVBORw0KGgo=","media_type":"image/png","type":"base64"}`)) {
						t.Errorf("upstream messages lost the image: %s", b)
					}
				},
				messagesPassthrough: testkit.AnthropicFixture("chat_response.json"),
				requests:            ant.Requests,
				failOverloaded:      func() { ant.Fail(testkit.AnthropicOverloaded) },
				failMidstream:       func() { ant.Fail(testkit.AnthropicMidstream) },
			}}
		},
	}
}

// lastBody decodes the body of the last request a fake received.
func lastBody(t *testing.T, reqs []testkit.Received) map[string]any {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	var m map[string]any
	if err := json.Unmarshal(reqs[len(reqs)-1].Body, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// withModel rewrites a fixture request for model, streamed or not.
func withModel(t *testing.T, fixture []byte, model string, stream bool, extra map[string]any) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(fixture, &m); err != nil {
		t.Fatal(err)
	}
	m["model"] = model
	m["stream"] = stream
	delete(m, "stream_options")
	if _, isMessages := m["max_tokens"]; stream && !isMessages {
		m["stream_options"] = map[string]any{"include_usage": true}
	}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// refusedForTools is the answer to a call offering tools to a provider
// without function calling.
var refusedForTools = answer{status: 400, errCode: "invalid_request", errParam: "tools"}

func TestConformanceChatCompletions(t *testing.T) {
	h, rows := conformanceHarness(t)
	records := 0
	for _, p := range rows {
		chat := func(t *testing.T, body string, stream bool) answer {
			t.Helper()
			resp := h.post(engKey, body)
			defer resp.Body.Close()
			records++
			a := readOpenAIAnswer(t, resp, stream)
			rec := h.records.last(t, records)
			if a.status == 200 && (rec.PromptTokens != a.prompt || rec.CompletionTokens != a.completion || !rec.UsageReported) {
				t.Errorf("audit tokens %d/%d, client saw %d/%d", rec.PromptTokens, rec.CompletionTokens, a.prompt, a.completion)
			}
			return a
		}
		plain := func(stream bool) string {
			return withModel(t, []byte(`{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Name the three primary colors."}],"max_completion_tokens":64}`), p.model, stream, nil)
		}
		toolAnswer := answer{status: 200, text: p.toolText, toolName: "get_weather", toolArgs: weatherArgs, finish: "tool_calls", prompt: p.toolUsage[0], completion: p.toolUsage[1]}
		if p.noTools {
			toolAnswer = refusedForTools
		}
		t.Run(p.model+"/plain chat", func(t *testing.T) {
			a := chat(t, plain(false), false)
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "stop", prompt: p.usage[0], completion: p.usage[1]})
			if p.chatPassthrough != nil && !bytes.Equal(a.raw, p.chatPassthrough) {
				t.Errorf("same-format answer changed on the way:\n%s", a.raw)
			}
		})
		t.Run(p.model+"/streamed chat", func(t *testing.T) {
			a := chat(t, plain(true), true)
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "stop", prompt: p.usage[0], completion: p.usage[1]})
		})
		t.Run(p.model+"/tool call", func(t *testing.T) {
			a := chat(t, withModel(t, testkit.Fixture("tool_call_request.json"), p.model, false, nil), false)
			checkAnswer(t, a, toolAnswer)
		})
		t.Run(p.model+"/streamed tool call", func(t *testing.T) {
			a := chat(t, withModel(t, testkit.Fixture("tool_call_request.json"), p.model, true, nil), true)
			checkAnswer(t, a, toolAnswer)
		})
		t.Run(p.model+"/tool result turn", func(t *testing.T) {
			a := chat(t, withModel(t, testkit.Fixture("tool_result_request.json"), p.model, false, nil), false)
			if p.noTools {
				checkAnswer(t, a, refusedForTools)
				return
			}
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "stop", prompt: p.usage[0], completion: p.usage[1]})
			p.upstreamSawToolResult(t)
		})
		t.Run(p.model+"/image input", func(t *testing.T) {
			body := withModel(t, []byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]}]}`), p.model, false, nil)
			a := chat(t, body, false)
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "stop", prompt: p.usage[0], completion: p.usage[1]})
			p.upstreamSawImages(t)
		})
		t.Run(p.model+"/embeddings", func(t *testing.T) {
			resp := h.postPath("/v1/embeddings", engKey, `{"model":"`+p.model+`","input":["The cat sat on the mat.","A dog barked twice."],"encoding_format":"float"}`)
			records++
			a := readEmbeddingsAnswer(t, resp)
			rec := h.records.last(t, records)
			if p.embeddings == 0 {
				checkAnswer(t, a, answer{status: 400, errCode: "unsupported_endpoint"})
				return
			}
			if a.status != 200 || a.vectors != 2 || a.prompt != p.embeddings {
				t.Fatalf("status %d, %d vectors, %d prompt tokens, want 2 vectors and %d: %s", a.status, a.vectors, a.prompt, p.embeddings, a.raw)
			}
			if rec.Endpoint != "/v1/embeddings" || !rec.Decision.Evaluated || !rec.UsageReported || rec.PromptTokens != p.embeddings || rec.CompletionTokens != 0 {
				t.Errorf("record: endpoint %q, decision %+v, tokens %d/%d", rec.Endpoint, rec.Decision, rec.PromptTokens, rec.CompletionTokens)
			}
			if m := lastBody(t, p.requests()); m["model"] == p.model || m["input"] == nil {
				t.Errorf("upstream embeddings request %v: the model should be the upstream's", m)
			}
		})
		if p.embeddings > 0 {
			t.Run(p.model+"/embeddings 429", func(t *testing.T) {
				p.failRateLimit()
				defer p.reset()
				resp := h.postPath("/v1/embeddings", engKey, `{"model":"`+p.model+`","input":"hi"}`)
				records++
				checkAnswer(t, readEmbeddingsAnswer(t, resp), answer{status: 429, errCode: "rate_limit_exceeded", retryAfter: p.rateLimitRetryAfter})
				if rec := h.records.last(t, records); rec.ErrorClass != "upstream_rate_limited" || rec.Endpoint != "/v1/embeddings" {
					t.Errorf("record class %q endpoint %q", rec.ErrorClass, rec.Endpoint)
				}
			})
		}
		for _, f := range []struct {
			name       string
			fail       func()
			status     int
			code       string
			retryAfter string
		}{
			{"429", p.failRateLimit, 429, "rate_limit_exceeded", p.rateLimitRetryAfter},
			{"auth error", p.failAuth, 502, "upstream_auth_failed", ""},
			{"context-length error", p.failContext, 400, "context_length_exceeded", ""},
		} {
			t.Run(p.model+"/"+f.name, func(t *testing.T) {
				f.fail()
				defer p.reset()
				a := chat(t, plain(false), false)
				checkAnswer(t, a, answer{status: f.status, errCode: f.code, retryAfter: f.retryAfter})
			})
		}
	}
	claude := row(t, rows, "claude")
	t.Run("claude/529 overloaded is a 503 to OpenAI clients", func(t *testing.T) {
		claude.failOverloaded()
		defer claude.reset()
		resp := h.post(engKey, withModel(t, []byte(`{"messages":[{"role":"user","content":"hi"}]}`), "claude", false, nil))
		records++
		a := readOpenAIAnswer(t, resp, false)
		checkAnswer(t, a, answer{status: 503, errCode: "overloaded", retryAfter: testkit.AnthropicRetryAfter})
	})
	t.Run("claude/mid-stream error ends the stream with an error chunk", func(t *testing.T) {
		claude.failMidstream()
		defer claude.reset()
		resp := h.post(engKey, withModel(t, []byte(`{"messages":[{"role":"user","content":"hi"}]}`), "claude", true, nil))
		records++
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if !bytes.Contains(body, []byte(`data: {"error":{"message":"Overloaded"`)) || bytes.Contains(body, []byte("[DONE]")) {
			t.Errorf("stream:\n%s", body)
		}
		if rec := h.records.last(t, records); rec.ErrorClass != "upstream_stream_error" {
			t.Errorf("record class %q", rec.ErrorClass)
		}
	})
	t.Run("claude/the gateway speaks Anthropic's headers upstream", func(t *testing.T) {
		reqs := claude.requests()
		r := reqs[len(reqs)-1]
		if r.Header.Get("X-Api-Key") != anthropicKey || r.Header.Get("Anthropic-Version") != "2023-06-01" || r.Header.Get("Authorization") != "" {
			t.Errorf("upstream headers %v", r.Header)
		}
		var m map[string]any
		_ = json.Unmarshal(reqs[0].Body, &m)
		if m["model"] != "claude-sonnet-4-5" || m["system"] != "You are terse." || m["max_tokens"] != float64(64) {
			t.Errorf("translated request %s", reqs[0].Body)
		}
	})
}

func TestConformanceMessages(t *testing.T) {
	h, rows := conformanceHarness(t)
	records := 0
	for _, p := range rows {
		msgs := func(t *testing.T, body string, stream bool) answer {
			t.Helper()
			resp := h.postPath("/v1/messages", engKey, body)
			defer resp.Body.Close()
			records++
			a := readAnthropicAnswer(t, resp, stream)
			rec := h.records.last(t, records)
			if a.status == 200 && (rec.PromptTokens != a.prompt || rec.CompletionTokens != a.completion || !rec.UsageReported) {
				t.Errorf("audit tokens %d/%d, client saw %d/%d", rec.PromptTokens, rec.CompletionTokens, a.prompt, a.completion)
			}
			if rec.Endpoint != "/v1/messages" || rec.Decision.Evaluated != true {
				t.Errorf("record endpoint %q decision %+v", rec.Endpoint, rec.Decision)
			}
			return a
		}
		plain := func(stream bool) string {
			return withModel(t, testkit.AnthropicFixture("chat_request.json"), p.model, stream, nil)
		}
		toolAnswer := answer{status: 200, text: p.toolText, toolName: "get_weather", toolArgs: weatherArgs, finish: "tool_use", prompt: p.toolUsage[0], completion: p.toolUsage[1]}
		if p.noTools {
			toolAnswer = answer{status: 400, errCode: "invalid_request_error"}
		}
		t.Run(p.model+"/plain", func(t *testing.T) {
			a := msgs(t, plain(false), false)
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "end_turn", prompt: p.usage[0], completion: p.usage[1]})
			if p.messagesPassthrough != nil && !bytes.Equal(a.raw, p.messagesPassthrough) {
				t.Errorf("same-format answer changed on the way:\n%s", a.raw)
			}
		})
		t.Run(p.model+"/streamed", func(t *testing.T) {
			a := msgs(t, plain(true), true)
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "end_turn", prompt: p.usage[0], completion: p.usage[1]})
		})
		t.Run(p.model+"/tool call", func(t *testing.T) {
			a := msgs(t, withModel(t, testkit.AnthropicFixture("tool_call_request.json"), p.model, false, nil), false)
			checkAnswer(t, a, toolAnswer)
		})
		t.Run(p.model+"/streamed tool call", func(t *testing.T) {
			a := msgs(t, withModel(t, testkit.AnthropicFixture("tool_call_request.json"), p.model, true, nil), true)
			checkAnswer(t, a, toolAnswer)
		})
		t.Run(p.model+"/tool result turn", func(t *testing.T) {
			a := msgs(t, withModel(t, testkit.AnthropicFixture("tool_result_request.json"), p.model, false, nil), false)
			if p.noTools {
				checkAnswer(t, a, toolAnswer)
				return
			}
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "end_turn", prompt: p.usage[0], completion: p.usage[1]})
			p.upstreamSawToolResult(t)
		})
		t.Run(p.model+"/image input", func(t *testing.T) {
			body := withModel(t, []byte(`{"max_tokens":64,"messages":[{"role":"user","content":[{"type":"text","text":"What is in this picture?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]}]}`), p.model, false, nil)
			a := msgs(t, body, false)
			checkAnswer(t, a, answer{status: 200, text: p.text, finish: "end_turn", prompt: p.usage[0], completion: p.usage[1]})
			p.upstreamSawImages(t)
		})
		for _, f := range []struct {
			name       string
			fail       func()
			status     int
			errType    string
			retryAfter string
		}{
			{"429", p.failRateLimit, 429, "rate_limit_error", p.rateLimitRetryAfter},
			{"auth error", p.failAuth, 502, "api_error", ""},
			{"context-length error", p.failContext, 400, "invalid_request_error", ""},
		} {
			t.Run(p.model+"/"+f.name, func(t *testing.T) {
				f.fail()
				defer p.reset()
				a := msgs(t, plain(false), false)
				checkAnswer(t, a, answer{status: f.status, errCode: f.errType, retryAfter: f.retryAfter})
			})
		}
	}
	claude := row(t, rows, "claude")
	t.Run("claude/529 stays 529 for Anthropic clients", func(t *testing.T) {
		claude.failOverloaded()
		defer claude.reset()
		resp := h.postPath("/v1/messages", engKey, withModel(t, testkit.AnthropicFixture("chat_request.json"), "claude", false, nil))
		records++
		a := readAnthropicAnswer(t, resp, false)
		checkAnswer(t, a, answer{status: 529, errCode: "overloaded_error", retryAfter: testkit.AnthropicRetryAfter})
	})
	t.Run("claude/passthrough rewrites only the model", func(t *testing.T) {
		want := strings.Replace(withModel(t, testkit.AnthropicFixture("chat_request.json"), "claude", false, nil), `"model":"claude"`, `"model":"claude-sonnet-4-5"`, 1)
		for _, r := range claude.requests() {
			if string(r.Body) == want {
				return
			}
		}
		t.Errorf("no upstream request is the client's body with only the model rewritten:\n%s", want)
	})
	t.Run("errors are in Anthropic's shape", func(t *testing.T) {
		resp := h.postPath("/v1/messages", "pcx_wrong", withModel(t, testkit.AnthropicFixture("chat_request.json"), "claude", false, nil))
		records++
		a := readAnthropicAnswer(t, resp, false)
		checkAnswer(t, a, answer{status: 401, errCode: "authentication_error"})
		resp = h.postPath("/v1/messages", engKey, `{"model":"claude","messages":[{"role":"user","content":"hi"}]}`)
		records++
		a = readAnthropicAnswer(t, resp, false)
		checkAnswer(t, a, answer{status: 400, errCode: "invalid_request_error"})
	})
}

// postPath sends a request to path with the key in x-api-key, as
// Anthropic's SDKs do.
func (h *harness) postPath(path, key, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", key)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func checkAnswer(t *testing.T, got, want answer) {
	t.Helper()
	if got.status != want.status {
		t.Fatalf("status %d, want %d: %s", got.status, want.status, got.raw)
	}
	if want.status != 200 {
		if got.errCode != want.errCode || got.retryAfter != want.retryAfter || (want.errParam != "" && got.errParam != want.errParam) {
			t.Errorf("error %q param %q retry-after %q, want %q %q %q: %s", got.errCode, got.errParam, got.retryAfter, want.errCode, want.errParam, want.retryAfter, got.raw)
		}
		return
	}
	if got.text != want.text || got.finish != want.finish || got.toolName != want.toolName {
		t.Errorf("text %q finish %q tool %q, want %q %q %q", got.text, got.finish, got.toolName, want.text, want.finish, want.toolName)
	}
	if want.toolArgs != nil && !reflect.DeepEqual(got.toolArgs, want.toolArgs) {
		t.Errorf("tool arguments %v, want %v", got.toolArgs, want.toolArgs)
	}
	if got.prompt != want.prompt || got.completion != want.completion {
		t.Errorf("usage %d/%d, want %d/%d", got.prompt, got.completion, want.prompt, want.completion)
	}
}

// sseEvents splits a stream body into its events' names and data.
func sseEvents(t *testing.T, body []byte) (names []string, data [][]byte) {
	t.Helper()
	for _, ev := range bytes.Split(body, []byte("\n\n")) {
		if len(bytes.TrimSpace(ev)) == 0 {
			continue
		}
		var name string
		var d []byte
		for _, line := range bytes.Split(ev, []byte("\n")) {
			if v, ok := bytes.CutPrefix(line, []byte("event: ")); ok {
				name = string(v)
			}
			if v, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				d = v
			}
		}
		names, data = append(names, name), append(data, d)
	}
	return names, data
}

func parseArgs(t *testing.T, args string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(args), &m); err != nil {
		t.Errorf("tool arguments %q do not parse as JSON: %v", args, err)
	}
	return m
}

func readOpenAIAnswer(t *testing.T, resp *http.Response, stream bool) answer {
	t.Helper()
	a, body := readOpenAIResponse(t, resp)
	if a.status != 200 {
		return a
	}
	type usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	type toolCall struct {
		Index    int `json:"index"`
		Function struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	if !stream {
		var c struct {
			Choices []struct {
				Message struct {
					Content   *string    `json:"content"`
					ToolCalls []toolCall `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage usage `json:"usage"`
		}
		if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 {
			t.Fatalf("not a chat completion: %s", body)
		}
		m := c.Choices[0].Message
		if m.Content != nil {
			a.text = *m.Content
		}
		if len(m.ToolCalls) > 0 {
			a.toolName, a.toolArgs = m.ToolCalls[0].Function.Name, parseArgs(t, m.ToolCalls[0].Function.Arguments)
		}
		a.finish = c.Choices[0].FinishReason
		a.prompt, a.completion = c.Usage.PromptTokens, c.Usage.CompletionTokens
		if c.Usage.TotalTokens != a.prompt+a.completion {
			t.Errorf("total_tokens %d", c.Usage.TotalTokens)
		}
		return a
	}
	_, data := sseEvents(t, body)
	if len(data) == 0 || string(data[len(data)-1]) != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]:\n%s", body)
	}
	var text, args strings.Builder
	for i, d := range data[:len(data)-1] {
		var c struct {
			Choices []struct {
				Delta struct {
					Role      string     `json:"role"`
					Content   string     `json:"content"`
					ToolCalls []toolCall `json:"tool_calls"`
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal(d, &c); err != nil {
			t.Fatalf("chunk %d is not JSON: %s", i, d)
		}
		if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant") {
			t.Errorf("first chunk has no assistant role: %s", d)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Function.Name != "" {
					a.toolName = tc.Function.Name
				}
				args.WriteString(tc.Function.Arguments)
			}
			if ch.FinishReason != nil {
				a.finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 || i != len(data)-2 {
				t.Errorf("usage chunk %d is not the last before [DONE] with no choices: %s", i, d)
			}
			a.prompt, a.completion = c.Usage.PromptTokens, c.Usage.CompletionTokens
		}
	}
	a.text = text.String()
	if args.Len() > 0 {
		a.toolArgs = parseArgs(t, args.String())
	}
	return a
}

func readAnthropicAnswer(t *testing.T, resp *http.Response, stream bool) answer {
	t.Helper()
	body := readAll(t, resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, raw: body, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != 200 {
		var e struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Type != "error" || e.Error.Message == "" {
			t.Fatalf("error body is not Anthropic's shape: %s", body)
		}
		a.errCode = e.Error.Type
		return a
	}
	type usage struct {
		InputTokens              *int `json:"input_tokens"`
		CacheCreationInputTokens int  `json:"cache_creation_input_tokens"`
		CacheReadInputTokens     int  `json:"cache_read_input_tokens"`
		OutputTokens             int  `json:"output_tokens"`
	}
	promptOf := func(u usage) int {
		if u.InputTokens == nil {
			return -1
		}
		return *u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
	}
	type block struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	if !stream {
		var m struct {
			Type       string  `json:"type"`
			Content    []block `json:"content"`
			StopReason string  `json:"stop_reason"`
			Usage      usage   `json:"usage"`
		}
		if err := json.Unmarshal(body, &m); err != nil || m.Type != "message" {
			t.Fatalf("not a Messages response: %s", body)
		}
		for _, b := range m.Content {
			switch b.Type {
			case "text":
				a.text += b.Text
			case "tool_use":
				a.toolName, a.toolArgs = b.Name, parseArgs(t, string(b.Input))
			}
		}
		a.finish, a.prompt, a.completion = m.StopReason, promptOf(m.Usage), m.Usage.OutputTokens
		return a
	}
	names, data := sseEvents(t, body)
	if len(names) < 2 || names[0] != "message_start" || names[len(names)-1] != "message_stop" {
		t.Fatalf("stream does not run message_start … message_stop:\n%s", body)
	}
	var text, args strings.Builder
	for i, d := range data {
		var ev struct {
			Type    string `json:"type"`
			Message struct {
				Usage usage `json:"usage"`
			} `json:"message"`
			ContentBlock block `json:"content_block"`
			Delta        struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal(d, &ev); err != nil {
			t.Fatalf("event %d is not JSON: %s", i, d)
		}
		if ev.Type != names[i] {
			t.Errorf("event %q carries type %q", names[i], ev.Type)
		}
		switch ev.Type {
		case "message_start":
			a.prompt = promptOf(ev.Message.Usage)
		case "content_block_start":
			if ev.ContentBlock.Type == "tool_use" {
				a.toolName = ev.ContentBlock.Name
			}
		case "content_block_delta":
			text.WriteString(ev.Delta.Text)
			args.WriteString(ev.Delta.PartialJSON)
		case "message_delta":
			a.finish, a.completion = ev.Delta.StopReason, ev.Usage.OutputTokens
			if p := promptOf(*ev.Usage); p >= 0 {
				a.prompt = p
			}
		}
	}
	a.text = text.String()
	if args.Len() > 0 {
		a.toolArgs = parseArgs(t, args.String())
	}
	return a
}

// readOpenAIResponse reads a response of an OpenAI-format endpoint: its
// status, body and Retry-After, and for an error its code and param.
func readOpenAIResponse(t *testing.T, resp *http.Response) (answer, []byte) {
	t.Helper()
	body := readAll(t, resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, raw: body, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode != 200 {
		a.errCode, a.errParam = readOpenAIError(t, body)
	}
	return a, body
}

// readOpenAIError reads the code and param of an error in OpenAI's shape.
func readOpenAIError(t *testing.T, body []byte) (code, param string) {
	t.Helper()
	var e struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Code    *string `json:"code"`
			Param   *string `json:"param"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("error body is not OpenAI's shape: %s", body)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	if e.Error.Param != nil {
		param = *e.Error.Param
	}
	return code, param
}

// readEmbeddingsAnswer reads an embeddings response: how many vectors,
// and the prompt tokens of its usage.
func readEmbeddingsAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	a, body := readOpenAIResponse(t, resp)
	if a.status != 200 {
		return a
	}
	var e struct {
		Object string `json:"object"`
		Data   []struct {
			Object    string    `json:"object"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Object != "list" {
		t.Fatalf("not an embeddings list: %s", body)
	}
	for _, d := range e.Data {
		if d.Object != "embedding" || len(d.Embedding) == 0 {
			t.Errorf("not an embedding: %+v", d)
		}
	}
	a.vectors, a.prompt = len(e.Data), e.Usage.PromptTokens
	if e.Usage.TotalTokens != a.prompt {
		t.Errorf("total_tokens %d, prompt_tokens %d", e.Usage.TotalTokens, a.prompt)
	}
	return a
}
