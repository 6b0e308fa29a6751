package proxy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"portcullis/internal/testkit"
)

// The conformance table's rows for the native-format providers (Gemini,
// Cohere, Ollama's /api/chat, Bedrock's Converse), added to
// conformanceFakes so that every test of the table runs them, against
// fakes that answer with the providers' wire fixtures; and the checks
// that only these providers need.

const (
	geminiKey  = "AIza-upstream-SECRET-6b1d93f0"
	cohereKey  = "co-upstream-SECRET-0e7c5a21"
	bedrockKey = "ABSK-upstream-SECRET-7d20e4c9"
)

func init() {
	conformanceFakes = append(conformanceFakes, func(t testing.TB) conformanceFake { return nativeFake(t, nil) })
}

// nativeUpstreams are the fakes behind the native models.
type nativeUpstreams struct {
	gemini, cohere, ollama, bedrock *testkit.ProviderUpstream
}

// nativeFake starts the fakes of the models "gemini" (Gemini), "command"
// (Cohere), "llama" (a local Ollama, no key) and "nova" (Bedrock), and
// hands them to started when it is not nil.
func nativeFake(t testing.TB, started func(nativeUpstreams)) conformanceFake {
	n := nativeUpstreams{
		gemini:  testkit.NewGeminiUpstream(t, geminiKey),
		cohere:  testkit.NewCohereUpstream(t, cohereKey),
		ollama:  testkit.NewOllamaUpstream(t, ""),
		bedrock: testkit.NewBedrockUpstream(t, bedrockKey),
	}
	if started != nil {
		started(n)
	}
	return conformanceFake{
		providers: "\n  - name: google\n    type: gemini\n    base_url: " + n.gemini.URL + "/v1beta\n    api_key: " + geminiKey +
			"\n  - name: cohere\n    type: cohere\n    base_url: " + n.cohere.URL + "\n    api_key: " + cohereKey +
			"\n  - name: ollama\n    type: ollama\n    base_url: " + n.ollama.URL +
			"\n  - name: aws\n    type: bedrock\n    base_url: " + n.bedrock.URL + "\n    api_key: " + bedrockKey,
		models: "\n  - name: gemini\n    provider: google\n    upstream_model: gemini-2.5-flash" +
			"\n  - name: command\n    provider: cohere\n    upstream_model: command-a-03-2025" +
			"\n  - name: llama\n    provider: ollama\n    upstream_model: llama3.2" +
			"\n  - name: nova\n    provider: aws\n    upstream_model: anthropic.claude-sonnet-4-5-20250929-v1:0",
		rows: func(*testing.T, *harness) []want { return nativeProviders(n) },
	}
}

// nativeHarness is a gateway with only the native models, for the checks
// below.
func nativeHarness(t *testing.T) (*harness, nativeUpstreams) {
	t.Helper()
	var n nativeUpstreams
	f := nativeFake(t, func(started nativeUpstreams) { n = started })
	return newHarness(t, harnessOptions{providers: f.providers, models: f.models}), n
}

// lastMessage is the last entry of the list key of the last request.
func lastMessage(t *testing.T, u *testkit.ProviderUpstream, key string) (last, prev map[string]any) {
	t.Helper()
	list, _ := lastBody(t, u.Requests())[key].([]any)
	if len(list) < 2 {
		t.Fatalf("upstream %s = %v", key, list)
	}
	return list[len(list)-1].(map[string]any), list[len(list)-2].(map[string]any)
}

func mustContain(t *testing.T, v any, wants ...string) {
	t.Helper()
	b, _ := json.Marshal(v)
	for _, w := range wants {
		if !bytes.Contains(b, []byte(w)) {
			t.Errorf("upstream sent %s, want %s in it", b, w)
		}
	}
}

// nativeProviders are the table's rows of the native models.
func nativeProviders(n nativeUpstreams) []want {
	failing := func(u *testkit.ProviderUpstream, f testkit.Failure) func() { return func() { u.Fail(f) } }
	return []want{
		{
			// Thinking tokens count as output: 7 + 81 and 21 + 57.
			model: "gemini", text: "Red, yellow, and blue.", toolText: "",
			usage: [2]int{14, 88}, toolUsage: [2]int{58, 78},
			// RetryInfo.retryDelay "41s", Gemini sends no Retry-After.
			rateLimitRetryAfter: "41",
			failRateLimit:       failing(n.gemini, testkit.FailRateLimit),
			failAuth:            failing(n.gemini, testkit.FailAuth),
			failContext:         failing(n.gemini, testkit.FailContextLength),
			reset:               failing(n.gemini, ""),
			requests:            n.gemini.Requests,
			failMidstream:       failing(n.gemini, testkit.FailMidstream),
			upstreamSawToolResult: func(t *testing.T) {
				last, prev := lastMessage(t, n.gemini, "contents")
				mustContain(t, last, `"role":"user"`, `"functionResponse":{"name":"get_weather","response":{"condition":"cloudy","temperature":18}}`)
				mustContain(t, prev, `"role":"model"`, `"functionCall":{"args":{"location":"Paris, France","unit":"celsius"},"name":"get_weather"}`)
			},
			upstreamSawImages: func(t *testing.T) {
				mustContain(t, lastBody(t, n.gemini.Requests())["contents"], `"inlineData":{"data":"iVBORw0KGgo=","mimeType":"image/png"}`)
			},
		},
		{
			// Cohere's tokens, not its billed units; the tool plan is reasoning, not text.
			model: "command", text: "Red, yellow, and blue.", toolText: "",
			usage: [2]int{503, 9}, toolUsage: [2]int{1042, 57},
			failRateLimit: failing(n.cohere, testkit.FailRateLimit),
			failAuth:      failing(n.cohere, testkit.FailAuth),
			failContext:   failing(n.cohere, testkit.FailContextLength),
			reset:         failing(n.cohere, ""),
			requests:      n.cohere.Requests,
			failMidstream: failing(n.cohere, testkit.FailMidstream),
			upstreamSawToolResult: func(t *testing.T) {
				last, prev := lastMessage(t, n.cohere, "messages")
				mustContain(t, last, `"role":"tool"`, `"tool_call_id":"`, `"type":"document"`, `temperature\":18`)
				mustContain(t, prev, `"role":"assistant"`, `"tool_calls":[{"function":{"arguments":"{\"location\":\"Paris, France\",\"unit\":\"celsius\"}","name":"get_weather"}`)
				if last["tool_call_id"] != prev["tool_calls"].([]any)[0].(map[string]any)["id"] {
					t.Errorf("the tool result answers %v, the call was %v", last["tool_call_id"], prev["tool_calls"])
				}
			},
			upstreamSawImages: func(t *testing.T) {
				mustContain(t, lastBody(t, n.cohere.Requests())["messages"], `"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}`)
			},
		},
		{
			model: "llama", text: "Red, yellow, and blue.", toolText: "",
			usage: [2]int{38, 8}, toolUsage: [2]int{169, 24},
			failRateLimit: failing(n.ollama, testkit.FailRateLimit),
			failAuth:      failing(n.ollama, testkit.FailAuth),
			failContext:   failing(n.ollama, testkit.FailContextLength),
			reset:         failing(n.ollama, ""),
			requests:      n.ollama.Requests,
			failMidstream: failing(n.ollama, testkit.FailMidstream),
			upstreamSawToolResult: func(t *testing.T) {
				last, prev := lastMessage(t, n.ollama, "messages")
				mustContain(t, last, `"role":"tool"`, `"tool_name":"get_weather"`, `"content":"{\"temperature\":18,\"condition\":\"cloudy\"}"`)
				// Ollama takes arguments as an object, not a string.
				mustContain(t, prev, `"role":"assistant"`, `"arguments":{"location":"Paris, France","unit":"celsius"}`)
			},
			upstreamSawImages: func(t *testing.T) {
				mustContain(t, lastBody(t, n.ollama.Requests())["messages"], `"content":"What is in this picture?"`, `"images":["iVBORw0KGgo="]`)
			},
		},
		{
			model: "nova", text: "Red, yellow, and blue.", toolText: "I'll check the current weather in Paris.",
			usage: [2]int{24, 10}, toolUsage: [2]int{412, 71},
			failRateLimit: failing(n.bedrock, testkit.FailRateLimit),
			failAuth:      failing(n.bedrock, testkit.FailAuth),
			failContext:   failing(n.bedrock, testkit.FailContextLength),
			reset:         failing(n.bedrock, ""),
			requests:      n.bedrock.Requests,
			failMidstream: failing(n.bedrock, testkit.FailMidstream),
			upstreamSawToolResult: func(t *testing.T) {
				last, prev := lastMessage(t, n.bedrock, "messages")
				mustContain(t, last, `"role":"user"`, `"toolResult":{"content":[{"json":{"condition":"cloudy","temperature":18}}],"status":"success","toolUseId":"`)
				mustContain(t, prev, `"role":"assistant"`, `"toolUse":{"input":{"location":"Paris, France","unit":"celsius"},"name":"get_weather"`)
				mustContain(t, lastBody(t, n.bedrock.Requests()), `"toolConfig":{"tools":[{"toolSpec":`)
			},
			upstreamSawImages: func(t *testing.T) {
				mustContain(t, lastBody(t, n.bedrock.Requests())["messages"], `{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}`)
			},
		},
	}
}

// Each native provider gets its own paths, its key in its own header, an
// explicit stream flag where it needs one, and is asked for a stream in
// its own framing.
func TestNativeProvidersWire(t *testing.T) {
	h, n := nativeHarness(t)
	for _, p := range nativeProviders(n) {
		for _, stream := range []bool{false, true} {
			for _, fixture := range []string{"chat_request.json", "tool_call_request.json"} {
				resp := h.post(engKey, withModel(t, testkit.Fixture(fixture), p.model, stream, nil))
				readAll(t, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s %s stream=%v: status %d", p.model, fixture, stream, resp.StatusCode)
				}
			}
		}
	}
	t.Run("each provider got its own paths, key and stream flag", func(t *testing.T) {
		for u, want := range map[*testkit.ProviderUpstream][]string{
			n.gemini:  {"/v1beta/models/gemini-2.5-flash:generateContent", "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"},
			n.cohere:  {"/v2/chat"},
			n.ollama:  {"/api/chat"},
			n.bedrock: {"/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse", "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse-stream"},
		} {
			for _, path := range want {
				if !slices.Contains(u.Paths(), path) {
					t.Errorf("no request to %s among %v", path, u.Paths())
				}
			}
		}
		for _, r := range n.gemini.Requests() {
			if r.Header.Get("X-Goog-Api-Key") != geminiKey || r.Header.Get("Authorization") != "" {
				t.Errorf("Gemini headers %v", r.Header)
			}
		}
		for _, r := range n.cohere.Requests() {
			if r.Header.Get("Authorization") != "Bearer "+cohereKey {
				t.Errorf("Cohere headers %v", r.Header)
			}
		}
		// Ollama streams unless told not to, so "stream" is always sent.
		for _, r := range n.ollama.Requests() {
			if !bytes.Contains(r.Body, []byte(`"stream":false`)) && !bytes.Contains(r.Body, []byte(`"stream":true`)) {
				t.Errorf("Ollama request without a stream flag: %s", r.Body)
			}
			if r.Header.Get("Authorization") != "" {
				t.Errorf("a local Ollama got credentials: %v", r.Header)
			}
		}
		for _, r := range n.bedrock.Requests() {
			if r.Header.Get("Authorization") != "Bearer "+bedrockKey {
				t.Errorf("Bedrock headers %v", r.Header)
			}
		}
		// A stream is asked for in the provider's own framing.
		for u, accept := range map[*testkit.ProviderUpstream]string{
			n.gemini: "text/event-stream", n.cohere: "text/event-stream", n.ollama: "application/x-ndjson", n.bedrock: "application/vnd.amazon.eventstream",
		} {
			paths, reqs := u.Paths(), u.Requests()
			for i, r := range reqs {
				streamed := bytes.Contains(r.Body, []byte(`"stream":true`)) || strings.Contains(paths[i], "stream")
				if got := r.Header.Get("Accept"); streamed && got != accept || !streamed && got != "application/json" {
					t.Errorf("%s with %s: Accept %q, want %q", paths[i], r.Body, got, accept)
				}
			}
		}
	})
}

// geminiSignature is the thoughtSignature of the Gemini tool call fixtures.
const geminiSignature = "CiQBcsjafBHpD0v3qLrF3m1lq9cJ8mJ6Yv2mT4kQ0lW1xZbN2o8KdgEBcsjafD8kq"

// A Gemini thinking model's thoughtSignature reaches the client inside
// the tool call id, and comes back to Gemini on the function call part of
// the next turn when the client echoes that id, whether the call was
// streamed or not and whichever inbound API the client speaks.
func TestGeminiThoughtSignatureCrossesTurns(t *testing.T) {
	h, n := nativeHarness(t)
	sentBack := func(t *testing.T) {
		t.Helper()
		_, prev := lastMessage(t, n.gemini, "contents")
		parts, _ := prev["parts"].([]any)
		var sig any
		for _, p := range parts {
			if m := p.(map[string]any); m["functionCall"] != nil {
				sig = m["thoughtSignature"]
			}
		}
		if sig != geminiSignature {
			t.Errorf("the model turn sent back is %v, want its function call with thoughtSignature %s", prev, geminiSignature)
		}
	}
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "chat completions", true: "chat completions streamed"}[stream]
		t.Run(name, func(t *testing.T) {
			resp := h.post(engKey, withModel(t, testkit.Fixture("tool_call_request.json"), "gemini", stream, nil))
			body := readAll(t, resp.Body)
			resp.Body.Close()
			id := ""
			if !stream {
				var c struct {
					Choices []struct {
						Message struct {
							ToolCalls []struct{ ID string } `json:"tool_calls"`
						} `json:"message"`
					} `json:"choices"`
				}
				_ = json.Unmarshal(body, &c)
				if len(c.Choices) == 1 && len(c.Choices[0].Message.ToolCalls) == 1 {
					id = c.Choices[0].Message.ToolCalls[0].ID
				}
			} else {
				_, data := sseEvents(t, body)
				for _, d := range data {
					var c struct {
						Choices []struct {
							Delta struct {
								ToolCalls []struct{ ID string } `json:"tool_calls"`
							} `json:"delta"`
						} `json:"choices"`
					}
					_ = json.Unmarshal(d, &c)
					for _, ch := range c.Choices {
						for _, tc := range ch.Delta.ToolCalls {
							id += tc.ID
						}
					}
				}
			}
			if id == "" {
				t.Fatalf("no tool call id in %s", body)
			}
			turn := `{"model":"gemini","messages":[{"role":"user","content":"What is the weather in Paris right now?"},` +
				`{"role":"assistant","content":null,"tool_calls":[{"id":"` + id + `","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris, France\",\"unit\":\"celsius\"}"}}]},` +
				`{"role":"tool","tool_call_id":"` + id + `","content":"{\"temperature\":18,\"condition\":\"cloudy\"}"}],` +
				`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}`
			a := readOpenAIAnswer(t, h.post(engKey, turn), false)
			checkAnswer(t, a, answer{status: 200, text: "Red, yellow, and blue.", finish: "stop", prompt: 14, completion: 88})
			sentBack(t)
		})
	}
	t.Run("messages", func(t *testing.T) {
		resp := h.postPath("/v1/messages", engKey, withModel(t, testkit.AnthropicFixture("tool_call_request.json"), "gemini", false, nil))
		body := readAll(t, resp.Body)
		resp.Body.Close()
		var m struct {
			Content []struct{ Type, ID string } `json:"content"`
		}
		_ = json.Unmarshal(body, &m)
		id := ""
		for _, b := range m.Content {
			if b.Type == "tool_use" {
				id = b.ID
			}
		}
		if !strings.HasPrefix(id, "toolu_") {
			t.Fatalf("tool_use id %q in %s", id, body)
		}
		turn := `{"model":"gemini","max_tokens":64,"messages":[{"role":"user","content":"What is the weather in Paris right now?"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"` + id + `","name":"get_weather","input":{"location":"Paris, France","unit":"celsius"}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"` + id + `","content":"{\"temperature\":18,\"condition\":\"cloudy\"}"}]}],` +
			`"tools":[{"name":"get_weather","input_schema":{"type":"object"}}]}`
		resp = h.postPath("/v1/messages", engKey, turn)
		a := readAnthropicAnswer(t, resp, false)
		checkAnswer(t, a, answer{status: 200, text: "Red, yellow, and blue.", finish: "end_turn", prompt: 14, completion: 88})
		sentBack(t)
	})
}

// Usage reaches OpenAI clients with its details, streamed or not: Gemini's
// thinking tokens are reasoning tokens (and output tokens), and the cached
// counts the providers report (0 in these fixtures) are passed on.
func TestNativeUsageDetails(t *testing.T) {
	h, _ := nativeHarness(t)
	type details struct {
		PromptTokensDetails struct {
			CachedTokens int `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
		CompletionTokensDetails struct {
			ReasoningTokens int `json:"reasoning_tokens"`
		} `json:"completion_tokens_details"`
	}
	for _, tc := range []struct {
		model, fixture    string
		cached, reasoning int
	}{
		{"gemini", "chat_request.json", 0, 81},
		{"gemini", "tool_call_request.json", 0, 57},
		{"command", "chat_request.json", 0, 0},
		{"llama", "chat_request.json", 0, 0},
		{"nova", "chat_request.json", 0, 0},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(tc.model+"/"+tc.fixture+map[bool]string{false: "", true: "/streamed"}[stream], func(t *testing.T) {
				resp := h.post(engKey, withModel(t, testkit.Fixture(tc.fixture), tc.model, stream, nil))
				body := readAll(t, resp.Body)
				resp.Body.Close()
				var u struct {
					Usage *details `json:"usage"`
				}
				if !stream {
					_ = json.Unmarshal(body, &u)
				} else {
					_, data := sseEvents(t, body)
					for _, d := range data {
						var c struct {
							Usage *details `json:"usage"`
						}
						if json.Unmarshal(d, &c) == nil && c.Usage != nil {
							u.Usage = c.Usage
						}
					}
				}
				if u.Usage == nil || u.Usage.PromptTokensDetails.CachedTokens != tc.cached || u.Usage.CompletionTokensDetails.ReasoningTokens != tc.reasoning {
					t.Errorf("usage %+v, want cached %d reasoning %d: %s", u.Usage, tc.cached, tc.reasoning, body)
				}
			})
		}
	}
}

// An error a provider reports inside a stream (Gemini's error chunk,
// Cohere's message-end with ERROR, Ollama's error line, Bedrock's
// exception frame) ends the client's stream with an error event in the
// client's format, and is recorded as such.
func TestNativeErrorMidStream(t *testing.T) {
	h, n := nativeHarness(t)
	records := 0
	for model, u := range map[string]*testkit.ProviderUpstream{"gemini": n.gemini, "command": n.cohere, "llama": n.ollama, "nova": n.bedrock} {
		t.Run(model, func(t *testing.T) {
			u.Fail(testkit.FailMidstream)
			defer u.Fail("")
			resp := h.post(engKey, withModel(t, testkit.Fixture("chat_request.json"), model, true, nil))
			body := readAll(t, resp.Body)
			resp.Body.Close()
			records++
			if !bytes.Contains(body, []byte(`data: {"error":{"message":`)) || !bytes.Contains(body, []byte(`"type":"server_error"`)) || bytes.Contains(body, []byte("[DONE]")) {
				t.Errorf("OpenAI stream:\n%s", body)
			}
			if rec := h.records.last(t, records); rec.ErrorClass != "upstream_stream_error" {
				t.Errorf("record class %q", rec.ErrorClass)
			}
			resp = h.postPath("/v1/messages", engKey, withModel(t, testkit.AnthropicFixture("chat_request.json"), model, true, nil))
			body = readAll(t, resp.Body)
			resp.Body.Close()
			records++
			errType := map[string]string{"gemini": "overloaded_error"}[model] // Gemini said UNAVAILABLE
			if errType == "" {
				errType = "api_error"
			}
			if !bytes.Contains(body, []byte("event: error\n")) || !bytes.Contains(body, []byte(`"error":{"type":"`+errType+`"`)) || bytes.Contains(body, []byte("message_stop")) {
				t.Errorf("Anthropic stream, want a %s:\n%s", errType, body)
			}
			if rec := h.records.last(t, records); rec.ErrorClass != "upstream_stream_error" {
				t.Errorf("record class %q", rec.ErrorClass)
			}
		})
	}
}

// heldAfterText is how many events each native fake writes before its
// stream has carried the first text, "Red".
func heldAfterText(n nativeUpstreams) map[string]*testkit.ProviderUpstream {
	n.gemini.HoldAfter, n.cohere.HoldAfter, n.ollama.HoldAfter, n.bedrock.HoldAfter = 1, 3, 1, 2
	return map[string]*testkit.ProviderUpstream{"gemini": n.gemini, "command": n.cohere, "llama": n.ollama, "nova": n.bedrock}
}

// A translated stream reaches the client event by event: the first text
// arrives while the provider still holds the rest of its stream.
func TestNativeStreamFirstTextArrivesBeforeUpstreamFinishes(t *testing.T) {
	h, n := nativeHarness(t)
	for model, u := range heldAfterText(n) {
		t.Run(model, func(t *testing.T) {
			u.Hold = make(chan struct{})
			defer func() { u.Hold = nil }()
			resp := h.post(engKey, withModel(t, testkit.Fixture("chat_request.json"), model, true, nil))
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			got := make(chan string, 1)
			go func() {
				for {
					ev := testkit.ReadEvent(t, r)
					if strings.Contains(ev, `"content":"Red"`) || ev == "" {
						got <- ev
						return
					}
				}
			}()
			select {
			case ev := <-got:
				if ev == "" {
					t.Fatal("the stream ended before its first text")
				}
			case <-u.Finished:
				t.Fatal("the upstream finished before the client saw its first text")
			}
			close(u.Hold)
			if rest := string(readAll(t, r)); !strings.HasSuffix(rest, "data: [DONE]\n\n") {
				t.Errorf("rest of the stream %q", rest)
			}
		})
	}
}

// A client that hangs up mid-stream cancels the provider's stream, and
// the call is recorded as abandoned.
func TestNativeClientDisconnectCancelsUpstream(t *testing.T) {
	h, n := nativeHarness(t)
	records := 0
	for model, u := range heldAfterText(n) {
		t.Run(model, func(t *testing.T) {
			u.Hold = make(chan struct{})
			defer func() { close(u.Hold); u.Hold = nil }()
			resp := h.post(engKey, withModel(t, testkit.Fixture("chat_request.json"), model, true, nil))
			records++
			testkit.ReadEvent(t, bufio.NewReader(resp.Body))
			resp.Body.Close()
			testkit.Wait(t, u.Cancelled, "the upstream stream to be cancelled")
			if rec := h.records.last(t, records); rec.ErrorClass != "client_disconnected" || rec.Status != 499 {
				t.Errorf("record class %q status %d", rec.ErrorClass, rec.Status)
			}
		})
	}
}
